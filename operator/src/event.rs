//! Publishing Kubernetes Events (events.k8s.io/v1) about the objects the
//! operator decides.
//!
//! kube's `Recorder` keeps every Event it published for six minutes, to
//! turn repeats into a series, and sweeps that whole cache on each publish:
//! at tens of thousands of agreements that is tens of MB held and a sweep
//! quadratic in the Events of the last six minutes. Normal Events here are
//! one-off transitions (Activated, Revoked, Ready...) that never repeat for
//! the same object and reason within minutes, so they are created directly;
//! Warnings (a grant failing on every retry) go through the `Recorder` so
//! their repeats become one Event with a count.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};

/// Publishes Events as the operator.
pub struct Publisher {
    client: Client,
    reporter: Reporter,
    warnings: Recorder,
}

impl Publisher {
    /// A publisher reporting as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            warnings: Recorder::new(client.clone(), reporter.clone()),
            client,
            reporter,
        }
    }

    /// Publishes `ev` about `regarding`, in its namespace.
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        if ev.type_ == EventType::Warning {
            return self.warnings.publish(ev, regarding).await;
        }
        let event = self.normal(ev, regarding, jiff::Timestamp::now());
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        Api::<K8sEvent>::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &event)
            .await
            .map(|_| ())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_normal_event_names_its_object_reporter_and_reason()
    -> Result<(), Box<dyn std::error::Error>> {
        // a client is needed to build the publisher; it is never called here
        let config = kube::Config::new("http://127.0.0.1:9".parse()?);
        let client = Client::try_from(config)?;
        let p = Publisher::new(
            client,
            Reporter {
                controller: "datamesh-operator".into(),
                instance: Some("pod-1".into()),
            },
        );
        let regarding = ObjectReference {
            kind: Some("DataSharingAgreement".into()),
            namespace: Some("planning".into()),
            name: Some("bus-stops".into()),
            ..Default::default()
        };
        let ev = Event {
            type_: EventType::Normal,
            reason: "Activated".into(),
            note: Some("granted".into()),
            action: "Decide".into(),
            secondary: None,
        };
        let e = p.normal(&ev, &regarding, jiff::Timestamp::UNIX_EPOCH);
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
}
