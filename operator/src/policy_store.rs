//! The policy set in force. Each GovernancePolicy contributes its last valid
//! text; a new text is tried together with everything else in force and
//! only replaces the old one when the whole set validates. Subscribers are
//! told the new version so every agreement is decided again.

use datamesh_policies::{PolicyEngine, PolicyError, PolicySource};
use std::collections::BTreeMap;
use std::sync::RwLock;
use tokio::sync::watch;

/// The engine in force and the sources it was built from.
pub struct PolicyStore {
    state: RwLock<State>,
    version: watch::Sender<String>,
}

struct State {
    engine: PolicyEngine,
    in_force: BTreeMap<String, PolicySource>,
}

impl PolicyStore {
    /// A store with the shipped defaults and the given last-valid sources
    /// (from GovernancePolicy status at start-up). If those no longer build
    /// together, each is tried alone and the ones that fail are left out and logged.
    pub fn new(
        seed: impl IntoIterator<Item = (String, PolicySource)>,
    ) -> Result<Self, datamesh_policies::PolicySetError> {
        let mut in_force = BTreeMap::new();
        let mut engine = PolicyEngine::with_defaults([])?;
        for (name, source) in seed {
            let mut candidate = in_force.clone();
            candidate.insert(name.clone(), source);
            match PolicyEngine::with_defaults(candidate.values().cloned()) {
                Ok(e) => {
                    engine = e;
                    in_force = candidate;
                }
                Err(e) => {
                    tracing::error!(policy = %name, error = %e, "last valid policies no longer validate; left out")
                }
            }
        }
        let (version, _) = watch::channel(engine.version().to_string());
        Ok(Self {
            state: RwLock::new(State { engine, in_force }),
            version,
        })
    }

    /// The engine in force (cheap to clone).
    pub fn engine(&self) -> PolicyEngine {
        match self.state.read() {
            Ok(s) => s.engine.clone(),
            Err(poisoned) => poisoned.into_inner().engine.clone(),
        }
    }

    /// Tries `source` as the text of GovernancePolicy `name`. On success it
    /// is in force and the new set's version is returned; on failure nothing
    /// changes and the errors in this source are returned.
    pub fn propose(&self, name: &str, source: PolicySource) -> Result<String, Vec<PolicyError>> {
        let mut state = match self.state.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.in_force.get(name) == Some(&source) {
            return Ok(state.engine.version().to_string());
        }
        let mut candidate = state.in_force.clone();
        let source_name = source.name.clone();
        candidate.insert(name.to_string(), source);
        match PolicyEngine::with_defaults(candidate.values().cloned()) {
            Ok(engine) => {
                let version = engine.version().to_string();
                state.engine = engine;
                state.in_force = candidate;
                drop(state);
                self.version.send_replace(version.clone());
                Ok(version)
            }
            Err(e) => {
                let mine: Vec<PolicyError> = e.for_source(&source_name).cloned().collect();
                // Errors elsewhere (e.g. a duplicate id with another source) still belong to this change.
                Err(if mine.is_empty() {
                    e.errors.clone()
                } else {
                    mine
                })
            }
        }
    }

    /// Removes GovernancePolicy `name`'s policies from the set in force.
    pub fn remove(&self, name: &str) -> Result<String, datamesh_policies::PolicySetError> {
        let mut state = match self.state.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !state.in_force.contains_key(name) {
            return Ok(state.engine.version().to_string());
        }
        let mut candidate = state.in_force.clone();
        candidate.remove(name);
        let engine = PolicyEngine::with_defaults(candidate.values().cloned())?;
        let version = engine.version().to_string();
        state.engine = engine;
        state.in_force = candidate;
        drop(state);
        self.version.send_replace(version.clone());
        Ok(version)
    }

    /// Notified with the new version whenever the set in force changes.
    pub fn subscribe(&self) -> watch::Receiver<String> {
        self.version.subscribe()
    }
}
