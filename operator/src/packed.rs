//! Packing of the parts of cached objects that are read only when one
//! object is reconciled.
//!
//! A typed object holds each of its strings in its own allocation next to a
//! struct with a slot for every optional field: a product or an agreement
//! takes 2-3 KB in memory against ~1-1.5 KB of JSON. The caches keep typed
//! what is searched across the whole cache and pack the rest as an LZ4 block
//! of its JSON against a [`Dictionary`]: the first object of the same sort
//! this process packs. Objects of one sort share most of their text (field
//! names, the operator's phrases, what a deployment repeats), so each packs
//! to the little that is its own, a few hundred bytes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::sync::OnceLock;

/// The JSON blocks of one sort of object are packed against: learned from
/// the first block packed with it, then never replaced (blocks packed
/// against it must stay readable).
#[derive(Default)]
pub struct Dictionary(OnceLock<Vec<u8>>);

impl Dictionary {
    /// A dictionary not yet learned (for a `static`).
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    fn learn(&self, json: &[u8]) -> &[u8] {
        self.0.get_or_init(|| json.to_vec())
    }

    fn bytes(&self) -> &[u8] {
        self.0.get().map(Vec::as_slice).unwrap_or_default()
    }
}

/// A value packed as an LZ4 block of its JSON.
#[derive(Clone)]
pub struct Packed {
    dict: &'static Dictionary,
    bytes: Box<[u8]>,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed({} bytes)", self.bytes.len())
    }
}

/// A cached object could not be packed or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Its packed part did not (de)serialise.
    #[error("cached {kind} {name}: {source}")]
    Json {
        /// The object's kind.
        kind: &'static str,
        /// `namespace/name`.
        name: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// Its packed block did not decompress.
    #[error("cached {kind} {name}: {source}")]
    Lz4 {
        /// The object's kind.
        kind: &'static str,
        /// `namespace/name`.
        name: String,
        /// The cause.
        source: lz4_flex::block::DecompressError,
    },
}

impl Packed {
    /// Packs `value` against `dict` (learning it from `value` if it is new).
    /// `kind` and `meta` name the object in an error.
    pub fn pack<T: Serialize>(
        value: &T,
        dict: &'static Dictionary,
        kind: &'static str,
        meta: &ObjectMeta,
    ) -> Result<Self, PackError> {
        let json = serde_json::to_vec(value).map_err(|source| PackError::Json {
            kind,
            name: name_of(meta),
            source,
        })?;
        let bytes = lz4_flex::block::compress_prepend_size_with_dict(&json, dict.learn(&json));
        Ok(Self {
            dict,
            bytes: bytes.into_boxed_slice(),
        })
    }

    /// Packs an object's spec and status (read back as [`SpecAndStatus`]).
    pub fn spec_and_status<S: Serialize, T: Serialize>(
        spec: &S,
        status: &Option<T>,
        dict: &'static Dictionary,
        kind: &'static str,
        meta: &ObjectMeta,
    ) -> Result<Self, PackError> {
        Self::pack(&SpecAndStatusRef { spec, status }, dict, kind, meta)
    }

    /// The value packed.
    pub fn unpack<T: DeserializeOwned>(
        &self,
        kind: &'static str,
        meta: &ObjectMeta,
    ) -> Result<T, PackError> {
        let json =
            lz4_flex::block::decompress_size_prepended_with_dict(&self.bytes, self.dict.bytes())
                .map_err(|source| PackError::Lz4 {
                    kind,
                    name: name_of(meta),
                    source,
                })?;
        serde_json::from_slice(&json).map_err(|source| PackError::Json {
            kind,
            name: name_of(meta),
            source,
        })
    }

    /// Bytes the packed block takes.
    pub fn packed_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The part of an object its cached copy packs, as written: spec and status.
#[derive(Serialize)]
struct SpecAndStatusRef<'a, S, T> {
    spec: &'a S,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: &'a Option<T>,
}

/// The same, as read back (a missing status is None).
#[derive(Deserialize)]
pub struct SpecAndStatus<S, T> {
    /// `spec`.
    pub spec: S,
    /// `status`.
    pub status: Option<T>,
}

/// Implements [`kube::Resource`] for `$cached`, the cached copy of `$kind`:
/// the same kind and URLs (so a watch of the cached type reads the API
/// server's objects), and its own `metadata`.
macro_rules! cached_resource {
    ($cached:ty, $kind:ty) => {
        impl kube::Resource for $cached {
            type DynamicType = ();
            type Scope = <$kind as kube::Resource>::Scope;

            fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
                <$kind as kube::Resource>::kind(dt)
            }
            fn group(dt: &()) -> std::borrow::Cow<'_, str> {
                <$kind as kube::Resource>::group(dt)
            }
            fn version(dt: &()) -> std::borrow::Cow<'_, str> {
                <$kind as kube::Resource>::version(dt)
            }
            fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
                <$kind as kube::Resource>::plural(dt)
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use cached_resource;

/// `namespace/name` of an object, for errors.
fn name_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The metadata of `namespace/name`.
    fn meta(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn unpacks_what_was_packed_and_later_values_pack_against_the_first() -> anyhow::Result<()> {
        static DICT: Dictionary = Dictionary::new();
        let first = json!({"title": "Bus punctuality", "description": "On-time performance of every route, by day", "owner": "transport"});
        let second = json!({"title": "Bus punctuality", "description": "On-time performance of every route, by hour", "owner": "transport"});
        let a = Packed::pack(&first, &DICT, "Test", &meta("t", "a"))?;
        let b = Packed::pack(&second, &DICT, "Test", &meta("t", "b"))?;
        assert_eq!(a.unpack::<Value>("Test", &meta("t", "a"))?, first);
        assert_eq!(b.unpack::<Value>("Test", &meta("t", "b"))?, second);
        let json_len = serde_json::to_vec(&second)?.len();
        assert!(
            b.packed_len() * 4 < json_len,
            "{} of {json_len} bytes",
            b.packed_len()
        );
        Ok(())
    }

    #[test]
    fn a_damaged_block_names_the_object() -> anyhow::Result<()> {
        static DICT: Dictionary = Dictionary::new();
        let mut p = Packed::pack(&json!({"a": 1}), &DICT, "Test", &meta("t", "x"))?;
        p.bytes = vec![0xff; 8].into_boxed_slice();
        let e = p
            .unpack::<Value>("Test", &meta("t", "x"))
            .err()
            .ok_or_else(|| anyhow::anyhow!("a damaged block unpacked"))?;
        assert!(e.to_string().starts_with("cached Test t/x: "), "{e}");
        Ok(())
    }
}
