//! The cluster's policy set, built the way the operator builds it: the
//! shipped defaults plus every GovernancePolicy's text in force (the spec
//! when it is Valid, otherwise its last valid text from status).

use crate::cluster::{CliError, Cluster};
use datamesh_crds::GovernancePolicy;
use datamesh_crds::condition::{VALID, is_true};
use datamesh_policies::{PolicyEngine, PolicySource};

/// The engine, the GovernancePolicies it came from, and why it may differ
/// from the operator's (a note for the user).
pub struct LiveSet {
    /// The engine.
    pub engine: PolicyEngine,
    /// The GovernancePolicy objects read, when the user may list them.
    pub objects: Vec<GovernancePolicy>,
    /// Set when the set is not exactly the operator's.
    pub note: Option<String>,
}

/// The text of one GovernancePolicy the operator enforces, if any.
pub fn in_force(gp: &GovernancePolicy) -> Option<PolicySource> {
    let status = gp.status.as_ref();
    let valid = status.is_some_and(|s| is_true(&s.conditions, VALID));
    if valid {
        return Some(PolicySource::from_governance_policy(gp));
    }
    let text = status.and_then(|s| s.in_force.clone())?;
    let mut source = PolicySource::from_governance_policy(gp);
    source.text = text;
    Some(source)
}

/// Reads the cluster's GovernancePolicies and builds the engine. A user who
/// may not list them gets the shipped defaults, with a note saying so.
pub async fn load(cluster: &Cluster) -> Result<LiveSet, CliError> {
    let (objects, note) = match cluster.list_cluster::<GovernancePolicy>().await {
        Ok(objects) => (objects, None),
        Err(CliError::Forbidden { .. }) => (
            Vec::new(),
            Some(
                "you may not list GovernancePolicies: decided with the shipped default policies only"
                    .to_string(),
            ),
        ),
        Err(e) => return Err(e),
    };
    let sources: Vec<PolicySource> = objects.iter().filter_map(in_force).collect();
    match PolicyEngine::with_defaults(sources) {
        Ok(engine) => Ok(LiveSet {
            engine,
            objects,
            note,
        }),
        Err(e) => {
            // The operator keeps the last set that validated together; without
            // its history, fall back to the defaults and say so.
            let engine = PolicyEngine::with_defaults([])
                .map_err(|e| CliError::Output(format!("the shipped policies do not build: {e}")))?;
            Ok(LiveSet {
                engine,
                objects,
                note: Some(format!(
                    "the cluster's GovernancePolicies do not build together ({e}); decided with the shipped default policies only"
                )),
            })
        }
    }
}

/// The cluster's agreements and the Domains, DataProducts and Licences they
/// refer to, as documents for `policy diff --live`.
pub async fn live_documents(cluster: &Cluster) -> Result<Vec<serde_yaml::Value>, CliError> {
    use datamesh_crds::{DataProduct, DataSharingAgreement, Domain, Licence};
    fn docs<T: serde::Serialize>(items: &[T]) -> Result<Vec<serde_yaml::Value>, CliError> {
        items
            .iter()
            .map(|i| serde_yaml::to_value(i).map_err(|e| CliError::Output(e.to_string())))
            .collect()
    }
    let mut out = docs(&cluster.list_cluster::<Domain>().await?)?;
    out.extend(docs(&cluster.list_cluster::<Licence>().await?)?);
    out.extend(docs(&cluster.list_in::<DataProduct>(None).await?)?);
    out.extend(docs(&cluster.list_in::<DataSharingAgreement>(None).await?)?);
    Ok(out)
}
