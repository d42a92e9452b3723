//! Guards the order saga holds while it runs: a count of multi-line reservations in
//! progress (a clean stop needs none), and the turn of one idempotency key or one
//! reservation (changes to a reservation run one after the other on this node).

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

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

/// Locks by name: one per key in use, dropped from the map with its last turn.
pub(super) type Turns<K> = DashMap<K, Arc<tokio::sync::Mutex<()>>>;

/// A turn of one name (an idempotency key, a reservation); the name's lock is dropped
/// from the map with the last turn.
pub(super) struct Turn<'a, K: Eq + Hash + Clone> {
    locks: &'a Turns<K>,
    name: K,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<'a, K: Eq + Hash + Clone> Turn<'a, K> {
    pub(super) async fn take(locks: &'a Turns<K>, name: &K) -> Turn<'a, K> {
        let lock = locks.entry(name.clone()).or_default().clone();
        Turn {
            locks,
            name: name.clone(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for Turn<'_, K> {
    fn drop(&mut self) {
        self.guard.take();
        // Only the map still refers to the lock: nobody waits on this name.
        self.locks
            .remove_if(&self.name, |_, lock| Arc::strong_count(lock) == 1);
    }
}
