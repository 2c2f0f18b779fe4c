//! Publishing Kubernetes Events (events.k8s.io/v1) about the objects the
//! operator decides.
//!
//! Events are best effort here, as in Kubernetes' own recorder (client-go's
//! `EventBroadcaster`). A Normal Event (Activated, Revoked, Ready...) is put
//! on a bounded queue and [`Publisher::publish`] returns at once; a
//! background task sends the queue to the API server one Event at a time, in
//! order, under a token bucket. When the queue is full the Event is dropped
//! and counted in `datamesh_events_dropped_total`. An operator starting with
//! 50,000 agreements would otherwise await tens of thousands of Event
//! writes inside its reconciles, each holding a reconcile worker and
//! competing with the status writes that matter. Losing an Event is
//! acceptable because Events are not the record: the audit trail is, and it
//! holds every decision, grant and revocation before it takes effect.
//!
//! kube's `Recorder` keeps every Event it published for six minutes, to
//! turn repeats into a series, and sweeps that whole cache on each publish:
//! at tens of thousands of agreements that is tens of MB held and a sweep
//! quadratic in the Events of the last six minutes. Normal Events here are
//! one-off transitions that never repeat for the same object and reason
//! within minutes, so they are created directly. Warnings (a grant failing
//! on every retry) are rare and still go through the `Recorder`,
//! synchronously, so their repeats become one Event with a count.

use crate::metrics::{DropLabels, Metrics};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;

/// Normal Events waiting to be sent, at most. client-go's recorder queues
/// 1000 (`maxQueuedEvents`) and drops what does not fit
/// (`DropIfChannelFull`); the same bound here keeps a slow or unreachable
/// API server from costing more than about a thousand Events of memory
/// (one to two MB: a note holds up to 1,000 characters), and a burst of transitions larger than that (an
/// operator start deciding tens of thousands of agreements) loses its
/// surplus Events, counted, instead of slowing the decisions down.
pub const QUEUE: usize = 1024;

/// Normal Events sent per second once the burst is spent. client-go sends
/// Events through a rate-limited client too; the kubelet's defaults are 50
/// per second with a burst of 100 (`eventRecordQPS`, `eventBurst`). One
/// operator sharing the API server with every other controller takes a
/// fifth of that rate: its Events must never crowd out its status writes.
pub const PER_SECOND: u32 = 10;

/// Normal Events sent at once after a quiet spell (the kubelet's
/// `eventBurst`): a handful of transitions shows at once, a storm is paced.
pub const BURST: u32 = 100;

/// Pause before the one retry of a send that failed for a reason that may
/// pass (no answer, 429, 5xx). client-go retries 12 times 10 s apart; here
/// an Event is retried once and then dropped, as the queue behind it waits.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How Normal Events are queued and paced.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Events waiting to be sent, at most.
    pub queue: usize,
    /// Events sent per second once the burst is spent.
    pub per_second: u32,
    /// Events sent at once after a quiet spell.
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            queue: QUEUE,
            per_second: PER_SECOND,
            burst: BURST,
        }
    }
}

/// Where the sender task delivers queued Events: the API server, or a
/// test's record of what was sent.
pub trait Sink: Send + Sync + 'static {
    /// Creates `event`.
    fn send(&self, event: &K8sEvent) -> impl Future<Output = Result<(), kube::Error>> + Send;
}

/// Creates Events in the API server.
struct ApiServer(Client);

impl Sink for ApiServer {
    async fn send(&self, event: &K8sEvent) -> Result<(), kube::Error> {
        let ns = event.metadata.namespace.as_deref().unwrap_or("default");
        Api::<K8sEvent>::namespaced(self.0.clone(), ns)
            .create(&PostParams::default(), event)
            .await
            .map(|_| ())
    }
}

/// Events queued and not yet sent or given up, and a wake-up when none is.
#[derive(Default)]
struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

impl Pending {
    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// Publishes Events as the operator.
pub struct Publisher {
    reporter: Reporter,
    warnings: Recorder,
    queue: mpsc::Sender<K8sEvent>,
    pending: Arc<Pending>,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// A publisher reporting as `reporter`; starts the task that sends
    /// Normal Events to the API server (needs a tokio runtime).
    pub fn new(client: Client, reporter: Reporter, metrics: Arc<Metrics>) -> Self {
        Self::with_sink(
            client.clone(),
            reporter,
            metrics,
            ApiServer(client),
            Limits::default(),
        )
    }

    /// A publisher whose Normal Events go to `sink`, queued and paced by
    /// `limits`; Warnings still go to the API server through `client`.
    pub fn with_sink<S: Sink>(
        client: Client,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        sink: S,
        limits: Limits,
    ) -> Self {
        let (queue, rx) = mpsc::channel(limits.queue.max(1));
        let pending = Arc::new(Pending::default());
        tokio::spawn(send_all(
            rx,
            sink,
            Bucket::new(limits.per_second, limits.burst),
            metrics.clone(),
            pending.clone(),
        ));
        Self {
            warnings: Recorder::new(client, reporter.clone()),
            reporter,
            queue,
            pending,
            metrics,
        }
    }

    /// Publishes `ev` about `regarding`, in its namespace. A Warning is sent
    /// before this returns; a Normal Event is queued (or dropped if the
    /// queue is full) and this returns at once, always Ok.
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        if ev.type_ == EventType::Warning {
            return self.warnings.publish(ev, regarding).await;
        }
        self.enqueue(self.normal(ev, regarding, jiff::Timestamp::now()));
        Ok(())
    }

    /// Queues `event` for the sender task, or drops and counts it.
    fn enqueue(&self, event: K8sEvent) {
        // counted before it is queued, so the sender never finishes it first
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        let (why, event) = match self.queue.try_send(event) {
            Ok(()) => return,
            Err(TrySendError::Full(e)) => ("queue_full", e),
            Err(TrySendError::Closed(e)) => ("stopped", e),
        };
        self.pending.done();
        self.metrics
            .events_dropped
            .get_or_create(&DropLabels { reason: why })
            .inc();
        tracing::debug!(
            why,
            reason = event.reason.as_deref().unwrap_or_default(),
            regarding = event
                .regarding
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .unwrap_or_default(),
            "Event dropped"
        );
    }

    /// Waits until every queued Event was sent or given up, for at most
    /// `within`; for a graceful stop. What is still queued then is lost.
    pub async fn drain(&self, within: Duration) {
        let drained = tokio::time::timeout(within, async {
            loop {
                // registered before the check, so a wake-up between is not lost
                let idle = self.pending.idle.notified();
                if self.pending.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::info!(
                queued = self.pending.count.load(Ordering::Acquire),
                "stopping with Events not yet sent"
            );
        }
    }

    /// The Event the `Recorder` would create for a first occurrence.
    fn normal(&self, ev: &Event, regarding: &ObjectReference, now: jiff::Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some("Normal".into()),
            ..Default::default()
        }
    }
}

/// Sends queued Events to `sink` one at a time, in order, each after a
/// token from `bucket`; a send that fails for a reason that may pass is
/// retried once. Ends when the publisher is dropped and the queue is empty.
async fn send_all<S: Sink>(
    mut queue: mpsc::Receiver<K8sEvent>,
    sink: S,
    mut bucket: Bucket,
    metrics: Arc<Metrics>,
    pending: Arc<Pending>,
) {
    while let Some(event) = queue.recv().await {
        bucket.take().await;
        let mut sent = sink.send(&event).await;
        if let Err(e) = &sent
            && may_pass(e)
        {
            tracing::debug!(error = %e, "cannot publish event; retrying once");
            tokio::time::sleep(RETRY_AFTER).await;
            bucket.take().await;
            sent = sink.send(&event).await;
        }
        if let Err(e) = sent {
            metrics
                .events_dropped
                .get_or_create(&DropLabels {
                    reason: "send_failed",
                })
                .inc();
            tracing::warn!(
                error = %e,
                reason = event.reason.as_deref().unwrap_or_default(),
                "cannot publish event"
            );
        }
        pending.done();
    }
}

/// Whether a failed send may succeed if tried again: no answer, throttled
/// (429) or a server error. A refusal (403, 422, 409) would be refused again.
fn may_pass(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A token bucket on tokio's clock (so a test can pause it): up to `burst`
/// takes at once, then one per `interval`. Kept as the time at which the
/// bucket would be full again (GCRA), which needs no float and no refill
/// loop. A few lines, where `governor` would add a crate whose clock is not
/// tokio's.
struct Bucket {
    interval: Duration,
    /// How far ahead of now the full-again time may run: `burst - 1` intervals.
    tolerance: Duration,
    full_at: Instant,
}

impl Bucket {
    fn new(per_second: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(1) / per_second.max(1);
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            full_at: Instant::now(),
        }
    }

    /// Waits for a token and takes it.
    async fn take(&mut self) {
        let now = Instant::now();
        let full_at = self.full_at.max(now);
        if let Some(ready) = full_at.checked_sub(self.tolerance)
            && ready > now
        {
            tokio::time::sleep_until(ready).await;
        }
        self.full_at = full_at + self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Mutex, MutexGuard, PoisonError};
    use tokio::sync::Semaphore;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A sink that records what it was sent, when, and how often each Event
    /// was tried. A send waits for a permit of `gate`, then for the delay
    /// set for its Event, and fails with the codes set for it.
    #[derive(Clone)]
    struct Record {
        start: Instant,
        gate: Arc<Semaphore>,
        sent: Arc<Mutex<Vec<(Duration, String)>>>,
        tries: Arc<Mutex<HashMap<String, u32>>>,
        failures: Arc<Mutex<HashMap<String, Vec<u16>>>>,
        delays: Arc<Mutex<HashMap<String, Duration>>>,
    }

    impl Record {
        /// A sink whose sends wait until [`Record::open`].
        fn closed() -> Self {
            Self {
                start: Instant::now(),
                gate: Arc::new(Semaphore::new(0)),
                sent: Arc::default(),
                tries: Arc::default(),
                failures: Arc::default(),
                delays: Arc::default(),
            }
        }

        fn open(&self) -> &Self {
            self.gate.add_permits(1_000_000);
            self
        }

        /// The notes of the Events sent, in order.
        fn notes(&self) -> Vec<String> {
            lock(&self.sent).iter().map(|(_, n)| n.clone()).collect()
        }

        fn tries(&self, note: &str) -> u32 {
            lock(&self.tries).get(note).copied().unwrap_or(0)
        }

        fn tried(&self) -> u32 {
            lock(&self.tries).values().sum()
        }
    }

    impl Sink for Record {
        async fn send(&self, event: &K8sEvent) -> Result<(), kube::Error> {
            let note = event.note.clone().unwrap_or_default();
            *lock(&self.tries).entry(note.clone()).or_default() += 1;
            if let Ok(permit) = self.gate.acquire().await {
                permit.forget();
            }
            let delay = lock(&self.delays).get(&note).copied();
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let failure = lock(&self.failures)
                .get_mut(&note)
                .filter(|codes| !codes.is_empty())
                .map(|codes| codes.remove(0));
            if let Some(code) = failure {
                return Err(kube::Error::Api(
                    kube::core::Status::failure("injected", "Injected")
                        .with_code(code)
                        .boxed(),
                ));
            }
            lock(&self.sent).push((self.start.elapsed(), note));
            Ok(())
        }
    }

    fn reporter() -> Reporter {
        Reporter {
            controller: "datamesh-operator".into(),
            instance: Some("pod-1".into()),
        }
    }

    /// A publisher to `sink`; its client (for Warnings) is never called.
    fn publisher(
        sink: Record,
        limits: Limits,
    ) -> Result<(Publisher, Arc<Metrics>), Box<dyn std::error::Error>> {
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:9".parse()?))?;
        let metrics = Arc::new(Metrics::default());
        let p = Publisher::with_sink(client, reporter(), metrics.clone(), sink, limits);
        Ok((p, metrics))
    }

    fn regarding() -> ObjectReference {
        ObjectReference {
            kind: Some("DataSharingAgreement".into()),
            namespace: Some("planning".into()),
            name: Some("bus-stops".into()),
            ..Default::default()
        }
    }

    fn normal(note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: "Activated".into(),
            note: Some(note.into()),
            action: "Decide".into(),
            secondary: None,
        }
    }

    fn dropped(m: &Metrics, reason: &'static str) -> u64 {
        m.events_dropped.get_or_create(&DropLabels { reason }).get()
    }

    fn numbered(n: std::ops::Range<usize>) -> Vec<String> {
        n.map(|i| format!("e{i}")).collect()
    }

    #[tokio::test]
    async fn a_normal_event_names_its_object_reporter_and_reason() -> TestResult {
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:9".parse()?))?;
        let p = Publisher::new(client, reporter(), Arc::new(Metrics::default()));
        let ev = normal("granted");
        let e = p.normal(&ev, &regarding(), jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(e.metadata.namespace.as_deref(), Some("planning"));
        assert!(
            e.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("bus-stops."))
        );
        assert_eq!(e.reason.as_deref(), Some("Activated"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.reporting_controller.as_deref(), Some("datamesh-operator"));
        assert_eq!(e.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(
            e.regarding.and_then(|r| r.name).as_deref(),
            Some("bus-stops")
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_and_counts_and_never_waits() -> TestResult {
        let sink = Record::closed();
        let (p, metrics) = publisher(sink.clone(), Limits::default())?;
        // the sender takes the first Event and waits on the sink with it
        p.publish(&normal("e0"), &regarding()).await?;
        while sink.tried() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // the queue fills, then five more are dropped, and no publish waits
        // (the clock is paused: only a wait on a timer would move it)
        let before = Instant::now();
        for i in 1..=QUEUE + 5 {
            tokio::time::timeout(
                Duration::from_secs(1),
                p.publish(&normal(&format!("e{i}")), &regarding()),
            )
            .await??;
        }
        assert_eq!(Instant::now(), before);
        assert_eq!(dropped(&metrics, "queue_full"), 5);
        assert!(
            metrics
                .encode()
                .contains("datamesh_events_dropped_total{reason=\"queue_full\"} 5")
        );
        // once the API server answers, the queued Events go out, the dropped never
        sink.open();
        p.drain(Duration::from_secs(600)).await;
        assert_eq!(sink.notes(), numbered(0..QUEUE + 1));
        assert_eq!(dropped(&metrics, "send_failed"), 0);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn the_sender_keeps_to_the_rate_limit() -> TestResult {
        let sink = Record::closed();
        sink.open();
        let (p, _) = publisher(sink.clone(), Limits::default())?;
        let burst = BURST as usize;
        let n = burst + 30;
        for i in 0..n {
            p.publish(&normal(&format!("e{i}")), &regarding()).await?;
        }
        p.drain(Duration::from_secs(60)).await;
        let sent = lock(&sink.sent).clone();
        assert_eq!(sent.len(), n);
        // the burst at once, then one Event per interval
        let interval = Duration::from_secs(1) / PER_SECOND;
        let due = |i: usize| interval * u32::try_from((i + 1).saturating_sub(burst)).unwrap_or(0);
        for (i, (at, _)) in sent.iter().enumerate() {
            assert!(
                *at >= due(i) && *at < due(i) + Duration::from_millis(2),
                "Event {i} sent at {at:?}, due at {:?}",
                due(i)
            );
        }
        // after a quiet spell long enough to refill the bucket, a new burst
        // goes out at once, and the next Event waits an interval
        tokio::time::sleep(interval * BURST).await;
        let quiet = sink.start.elapsed();
        for i in n..n + burst + 1 {
            p.publish(&normal(&format!("e{i}")), &regarding()).await?;
        }
        p.drain(Duration::from_secs(60)).await;
        let sent = lock(&sink.sent).clone();
        assert_eq!(sent.len(), n + burst + 1);
        assert!(sent[n..n + burst].iter().all(|(at, _)| *at == quiet));
        assert!(sent[n + burst].0 >= quiet + interval);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn events_are_sent_in_the_order_published() -> TestResult {
        let sink = Record::closed();
        sink.open();
        // sends take uneven times: Events sent side by side would overtake
        for i in 0..200u64 {
            lock(&sink.delays).insert(format!("e{i}"), Duration::from_millis(i * 7 % 5));
        }
        let (p, metrics) = publisher(sink.clone(), Limits::default())?;
        for i in 0..200 {
            p.publish(&normal(&format!("e{i}")), &regarding()).await?;
        }
        p.drain(Duration::from_secs(60)).await;
        assert_eq!(sink.notes(), numbered(0..200));
        assert_eq!(dropped(&metrics, "queue_full"), 0);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_send_is_retried_once_then_dropped_and_counted() -> TestResult {
        let sink = Record::closed();
        sink.open();
        lock(&sink.failures).extend([
            ("e1".to_string(), vec![503]),      // passes on its retry
            ("e2".to_string(), vec![503, 503]), // fails its retry too
            ("e3".to_string(), vec![403]),      // refused: not retried
        ]);
        let (p, metrics) = publisher(sink.clone(), Limits::default())?;
        for i in 0..5 {
            p.publish(&normal(&format!("e{i}")), &regarding()).await?;
        }
        p.drain(Duration::from_secs(60)).await;
        assert_eq!(sink.notes(), ["e0", "e1", "e4"]);
        assert_eq!(
            ["e0", "e1", "e2", "e3", "e4"].map(|n| sink.tries(n)),
            [1, 2, 2, 1, 1]
        );
        assert_eq!(dropped(&metrics, "send_failed"), 2);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_the_queue_no_longer_than_asked() -> TestResult {
        let sink = Record::closed();
        let (p, _) = publisher(sink.clone(), Limits::default())?;
        for i in 0..3 {
            p.publish(&normal(&format!("e{i}")), &regarding()).await?;
        }
        let t = Instant::now();
        p.drain(Duration::from_secs(1)).await;
        assert_eq!(t.elapsed(), Duration::from_secs(1));
        assert!(sink.notes().is_empty());
        sink.open();
        let t = Instant::now();
        p.drain(Duration::from_secs(1)).await;
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(sink.notes(), numbered(0..3));
        Ok(())
    }
}
