//! The controllers: one module per reconciled kind. Each gathers inputs from
//! the watch caches, runs the pure checks, writes status only when it
//! changed, and emits Events on transitions.

pub mod agreement;
pub mod domain;
pub mod licence;
pub mod policy;
pub mod product;

use crate::context::Context;
use crate::error::Error;
use futures::StreamExt;
use kube::Resource;
use kube::runtime::controller::Action;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs every controller until a shutdown signal; in-flight reconciles
/// finish. Convergence of database grants runs alongside every `converge`.
pub async fn run_all(ctx: Arc<Context>, converge: Duration) -> anyhow::Result<()> {
    let convergence = tokio::spawn(crate::enforcement::convergence::run(ctx.clone(), converge));
    tokio::join!(
        domain::run(ctx.clone()),
        product::run(ctx.clone()),
        licence::run(ctx.clone()),
        policy::run(ctx.clone()),
        agreement::run(ctx.clone()),
    );
    convergence.abort();
    Ok(())
}

/// Reconciles of one kind running at once. Bounded, so that a start with
/// tens of thousands of objects queues them instead of holding all of them
/// in flight (memory, database pool waits); enough to keep the API server
/// and the grant pool busy.
pub const WORKERS: u16 = 64;

/// The controller runtime's settings shared by every controller.
pub fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(WORKERS)
}

/// Waits until `store` has its first full list. Store readiness is a
/// oneshot that wakes only the task that polled it last, and the
/// controller runtime waits on the same store, so this asks again every
/// 200 ms instead of sleeping on it alone. False if its watch stopped.
pub async fn cache_ready<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
            Ok(r) => return r.is_ok(),
            Err(_) => continue,
        }
    }
}

/// The changes of a cache that can change what depends on the object (see
/// [`crate::context::Change::reaches_dependents`]), for a controller's
/// watch of a kind its objects depend on. From the cache the reconcilers
/// read, so a reconcile sees what triggered it, and not its first list:
/// each controller goes through all its objects at start anyway.
pub(crate) fn dependent_changes<K>(
    changes: impl futures::Stream<Item = crate::context::Change<K>> + Send + 'static,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static
where
    K: Resource + Send + Sync + 'static,
{
    changes
        .filter(|c| std::future::ready(c.reaches_dependents()))
        .map(|c| c.now)
}

/// Drops what a cached object never needs and what costs the most memory at
/// scale: `managedFields` (often larger than the object) and kubectl's
/// last-applied copy of the whole object.
pub fn strip<K: kube::ResourceExt>(o: &mut K) {
    // dropped, not cleared: a cleared Vec keeps its allocation
    o.meta_mut().managed_fields = None;
    o.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Wraps a reconcile with its metrics and a tracing span.
pub(crate) async fn instrumented<F>(
    ctx: &Context,
    kind: &'static str,
    fut: F,
) -> Result<Action, Error>
where
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let start = Instant::now();
    let result = fut.await;
    ctx.metrics.reconciled(
        kind,
        start.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

/// Backs off after a failed reconcile.
pub(crate) fn error_policy<K>(_obj: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    if let Error::Waiting(what) = error {
        tracing::debug!(%what, "waiting");
        return Action::requeue(Duration::from_millis(500));
    }
    if crate::status::is_conflict(error) {
        tracing::debug!(%error, "decided on a stale copy; retrying on a fresh one");
        return Action::requeue(Duration::from_millis(200));
    }
    if let Error::Finalizer(what) = error {
        // usually a stale cache racing our own finalizer write; the next try sees it
        tracing::debug!(%what, "finalizer update raced; retrying");
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Logs each reconcile result of a controller stream.
pub(crate) async fn drain<S, T, E>(kind: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    T: std::fmt::Debug,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    stream
        .for_each(|r| async move {
            match r {
                Ok(o) => tracing::debug!(kind, object = ?o, "reconciled"),
                Err(e) => tracing::debug!(kind, error = %e, "reconcile error"),
            }
        })
        .await;
}

/// Backoff for a controller's watches after a watch error (an API server or
/// etcd restart). All of a controller's watches share one backoff, and while
/// it sleeps no event is handled, so the stock exponential backoff (up to 30 s
/// per error, several errors per restart) could leave a controller deaf for
/// minutes. This one retries quickly and caps at a few seconds.
#[derive(Debug, Clone)]
pub(crate) struct TriggerBackoff {
    next: Duration,
}

impl Default for TriggerBackoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl TriggerBackoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(3);
}

impl Iterator for TriggerBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for TriggerBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Whether watches start as streaming lists; see [`watch_config`].
static STREAMING_LISTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Chooses how every watch starts (`--streaming-lists`); once, at start.
pub fn set_streaming_lists(on: bool) {
    let _ = STREAMING_LISTS.set(on);
}

/// How every watch of the operator starts. By default with a LIST from the
/// watch cache (`resourceVersion=0`): after an API server restart a quorum
/// list can return a resourceVersion older than the new watch cache's
/// window, and the watch that follows then fails with 410 Gone over and
/// over. With `--streaming-lists`, as a streaming list (`sendInitialEvents`,
/// the API server's WatchList feature), served from the watch cache one
/// object at a time: such a LIST ignores `limit` and returns every object in
/// one body, the operator's memory peak at start at 50,000 agreements.
pub fn watch_config() -> kube::runtime::watcher::Config {
    let config = kube::runtime::watcher::Config::default();
    if *STREAMING_LISTS.get().unwrap_or(&false) {
        config.streaming_lists()
    } else {
        config.any_semantic()
    }
}

/// Emits the Event for a change of an object's Ready condition.
pub(crate) async fn publish_readiness<K>(ctx: &Context, obj: &K, r: &crate::checks::Readiness)
where
    K: kube::Resource<DynamicType = ()>,
{
    use kube::runtime::events::{Event, EventType};
    let event = Event {
        type_: if r.ready {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: r.reason.into(),
        note: Some(r.message.clone()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}
