//! Writing status with server-side apply, only when it changed.

use crate::{MANAGER, Result};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Applies `status` to the object's status subresource when it differs from
/// `current`. Returns whether a write was made.
pub async fn apply_if_changed<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    status: &S,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(true)
}

/// Like [`apply_if_changed`], but only if the object is still at
/// `resource_version`: a decision made on a stale copy from the watch cache
/// (which can lag behind our own last write) is refused by the API server
/// with a conflict instead of repeating a transition. The caller retries on
/// a fresh copy. Returns the object's new resourceVersion when a write was
/// made (see [`crate::own_writes`]).
pub async fn apply_if_unchanged_since<K, S>(
    api: &Api<K>,
    name: &str,
    resource_version: Option<&str>,
    current: Option<&S>,
    status: &S,
) -> Result<Option<String>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
    }
    let mut patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    let written = api
        .patch_status(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(Some(
        written.meta().resource_version.clone().unwrap_or_default(),
    ))
}

/// Whether an error is the API server refusing a write made on a stale copy.
pub fn is_conflict(error: &crate::Error) -> bool {
    matches!(error, crate::Error::Kube(kube::Error::Api(e)) if e.code == 409)
}
