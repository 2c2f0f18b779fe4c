//! Status writes a reconciler made that its watch cache does not show yet.
//!
//! A reconcile that runs again before the cache holds its own last write
//! decides on the copy it already acted on. The status write is refused then
//! (it carries that copy's resourceVersion), but a side effect made before it
//! is not: a second grant gives the role a new password and replaces the
//! credentials a consumer has already read. So the copy each write was
//! decided on is remembered until the cache shows another.

use std::collections::HashMap;
use std::sync::Mutex;

/// Per object (`namespace`, `name`): the resourceVersion of the copy a
/// status write was decided on, until the cache moves past it.
#[derive(Default)]
pub struct OwnWrites {
    acted_on: Mutex<HashMap<(String, String), String>>,
}

impl OwnWrites {
    /// Records a write decided on the copy at `decided_on` that gave the
    /// object the resourceVersion `written` (nothing to wait for if equal).
    pub fn wrote(&self, namespace: &str, name: &str, decided_on: &str, written: &str) {
        if decided_on.is_empty() || decided_on == written {
            return;
        }
        self.lock()
            .insert((namespace.into(), name.into()), decided_on.into());
    }

    /// Whether the cached copy at `resource_version` is one a write was
    /// already decided on: the cache has not caught up with that write. A
    /// later copy ends the wait.
    pub fn is_stale(&self, namespace: &str, name: &str, resource_version: &str) -> bool {
        let mut acted_on = self.lock();
        let key = (namespace.to_string(), name.to_string());
        match acted_on.get(&key) {
            Some(rv) if rv == resource_version => true,
            Some(_) => {
                acted_on.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Forgets the object (it is gone).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        self.acted_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_a_write_was_decided_on_is_stale_until_a_later_one_is_seen() {
        let w = OwnWrites::default();
        assert!(!w.is_stale("ns", "a", "10"), "nothing written yet");
        w.wrote("ns", "a", "10", "11");
        assert!(
            w.is_stale("ns", "a", "10"),
            "the cache still shows the copy acted on"
        );
        assert!(w.is_stale("ns", "a", "10"), "still, until it moves on");
        assert!(
            !w.is_stale("ns", "b", "10"),
            "other objects are not concerned"
        );
        assert!(!w.is_stale("ns", "a", "11"), "our write arrived");
        assert!(!w.is_stale("ns", "a", "10"), "forgotten once caught up");
    }

    #[test]
    fn a_write_that_changed_nothing_or_a_deleted_object_waits_for_nothing() {
        let w = OwnWrites::default();
        w.wrote("ns", "a", "10", "10");
        assert!(!w.is_stale("ns", "a", "10"));
        w.wrote("ns", "a", "10", "11");
        w.forget("ns", "a");
        assert!(!w.is_stale("ns", "a", "10"));
    }
}
