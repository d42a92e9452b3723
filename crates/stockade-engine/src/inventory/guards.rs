//! Guards the order saga holds while it runs: a count of multi-line reservations in
//! progress (a clean stop needs none), and the turn of one idempotency key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::idempotency::KeyScope;

/// Counts a multi-line reservation in progress while it lives.
pub(super) struct InProgress<'a>(&'a AtomicUsize);

impl<'a> InProgress<'a> {
    pub(super) fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A turn of one idempotency key; the key's lock is dropped from the map with the last turn.
pub(super) struct KeyTurn<'a> {
    locks: &'a DashMap<KeyScope, Arc<tokio::sync::Mutex<()>>>,
    scope: KeyScope,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<'a> KeyTurn<'a> {
    pub(super) async fn take(
        locks: &'a DashMap<KeyScope, Arc<tokio::sync::Mutex<()>>>,
        scope: &KeyScope,
    ) -> KeyTurn<'a> {
        let lock = locks.entry(scope.clone()).or_default().clone();
        KeyTurn {
            locks,
            scope: scope.clone(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for KeyTurn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        // Only the map still refers to the lock: nobody waits on this key.
        self.locks
            .remove_if(&self.scope, |_, lock| Arc::strong_count(lock) == 1);
    }
}
