//! The datamesh decision core: who may use which data product, for what,
//! under which licence. Pure: no Kubernetes client, no async runtime, no file
//! or network I/O. The operator and the CLI give it the same inputs and get
//! the same answers.
//!
//! ```text
//!  GovernancePolicy ─┐                      ┌─ central policies ─────────┐
//!  shipped *.cedar ──┼─▶ PolicyEngine::new ─┤                            ├─▶ Cedar set for domain D
//!                    │   (parse, @id/@reason,└─ policies scoped to D ────┘        │
//!                    │    validate strictly)                                       ▼
//!  Domain ×2, DataProduct, Licence, DataSharingAgreementSpec ──▶ decide ──▶ Decision
//!                                                   licence terms ─┘      (outcome, reasons,
//!                                                                          fields, end, licence)
//! ```
//!
//! A decision is Allow, NeedsApproval or Deny; every policy and licence term
//! that determined it is a [`Reason`]. Anything that goes wrong denies.
#![forbid(unsafe_code)]

pub mod batch;
mod conjuncts;
pub mod decision;
pub mod engine;
pub mod error;
mod index;
pub mod licence;
pub mod prepared;
mod request;
pub mod testfile;

pub use batch::{OutcomeChange, redecide, redecide_against, redecide_inputs};
pub use decision::{
    AccessAction, Decision, DecisionInput, ManageAction, Outcome, Reason, ReasonKind,
};
pub use engine::{
    DEFAULT_DENY_ID, PolicyEffect, PolicyEngine, PolicyInfo, PolicySource, SCHEMA,
    SHIPPED_POLICIES, shipped_sources,
};
pub use error::{PolicyError, PolicyErrorKind, PolicySetError};
pub use prepared::{
    PreparedDomain, PreparedInput, PreparedLicence, PreparedObjects, PreparedProduct,
};
