//! Prometheus metrics of the operator.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Labels naming a reconciled kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The kind reconciled.
    pub kind: &'static str,
}

/// Labels naming a kind and an error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The kind reconciled.
    pub kind: &'static str,
    /// The error's metric label.
    pub error: &'static str,
}

/// Labels naming a write the operator made.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The kind written.
    pub kind: &'static str,
    /// What was written (status, labels, rbac...).
    pub what: &'static str,
}

/// Labels of a request to the API server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method: GET (get, list, watch), POST, PUT, PATCH, DELETE.
    pub method: String,
}

/// Labels of a Normal Event that was not published.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Why: `queue_full` (the queue to the API server was full),
    /// `send_failed` (the API server refused it, or failed twice) or
    /// `stopped` (the sender task had ended).
    pub reason: &'static str,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by kind.
    pub reconciles: Family<KindLabels, Counter>,
    /// Failed reconciles by kind and error.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration by kind.
    pub reconcile_duration: Family<KindLabels, Histogram>,
    /// Writes to the API server by kind and what was written.
    pub writes: Family<WriteLabels, Counter>,
    /// Every request to the API server (reads too), by HTTP method.
    pub api_requests: Family<RequestLabels, Counter>,
    /// Decisions by outcome.
    pub decisions: Family<OutcomeLabels, Counter>,
    /// Time to decide one agreement, in seconds.
    pub decision_duration: Histogram,
    /// Agreements in phase Active.
    pub active_agreements: prometheus_client::metrics::gauge::Gauge,
    /// 1 while this replica is the leader.
    pub leader: prometheus_client::metrics::gauge::Gauge,
    /// Grants and revocations by port type, operation and outcome.
    pub enforcement: Family<crate::enforcement::OperationLabels, Counter>,
    /// Corrections made by convergence, by action.
    pub corrections: Family<crate::enforcement::convergence::CorrectionLabels, Counter>,
    /// Normal Events dropped (they are best effort), by why.
    pub events_dropped: Family<DropLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("datamesh");
        let reconciles = Family::<KindLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind and error",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            reconcile_duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes to the API server by kind and what",
            writes.clone(),
        );
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests to the API server by HTTP method (reads and watches too)",
            api_requests.clone(),
        );
        let decisions = Family::<OutcomeLabels, Counter>::default();
        let decision_duration = Histogram::new(exponential_buckets(0.000_005, 2.0, 16));
        let active_agreements = prometheus_client::metrics::gauge::Gauge::default();
        let leader = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "decisions",
            "Access decisions by outcome",
            decisions.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time to decide one agreement",
            decision_duration.clone(),
        );
        registry.register(
            "active_agreements",
            "Agreements in phase Active",
            active_agreements.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica is the leader",
            leader.clone(),
        );
        let enforcement = Family::<crate::enforcement::OperationLabels, Counter>::default();
        let corrections =
            Family::<crate::enforcement::convergence::CorrectionLabels, Counter>::default();
        registry.register(
            "enforcement_operations",
            "Grants and revocations by port type, operation and outcome",
            enforcement.clone(),
        );
        registry.register(
            "convergence_corrections",
            "Grants corrected by convergence, by action",
            corrections.clone(),
        );
        let events_dropped = Family::<DropLabels, Counter>::default();
        registry.register(
            "events_dropped",
            "Normal Events not published (best effort), by why: queue_full, send_failed, stopped",
            events_dropped.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            writes,
            api_requests,
            decisions,
            decision_duration,
            active_agreements,
            leader,
            enforcement,
            corrections,
            events_dropped,
        }
    }
}

impl Metrics {
    /// Records a finished reconcile.
    pub fn reconciled(&self, kind: &'static str, took: Duration, error: Option<&'static str>) {
        self.reconciles.get_or_create(&KindLabels { kind }).inc();
        self.reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
        if let Some(error) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels { kind, error })
                .inc();
        }
    }

    /// Records one write to the API server.
    pub fn wrote(&self, kind: &'static str, what: &'static str) {
        self.writes.get_or_create(&WriteLabels { kind, what }).inc();
    }

    /// Gives mutable access to the registry, for metrics registered elsewhere.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Labels naming a decision outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Allow, NeedsApproval or Deny.
    pub outcome: &'static str,
}
