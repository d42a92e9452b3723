//! The engine's only source of time. Decisions take `now` from a [`Clock`], and expiry timers
//! wait on it, so tests drive time by hand ([`ManualClock`]) while production reads the
//! system clock ([`SystemClock`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use stockade_domain::Timestamp;
use tokio::sync::watch;

/// A source of "now" that can also wait for an instant.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> Timestamp;

    /// Resolves at or after `at` by this clock. Dropping the future cancels the wait.
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()>;
}

/// Wall-clock time; waits with the runtime's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let wait = Duration::from_millis(at.as_millis().saturating_sub(self.now().as_millis()));
        Box::pin(async move {
            tokio::time::sleep(wait).await;
            // The timer can fire a hair early against a wall clock that was stepped back:
            // callers re-read `now` and re-arm, so an early wake costs only a re-check.
        })
    }
}

/// Time that moves only when told to. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<Timestamp>>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Arc::new(watch::channel(start).0),
        }
    }

    /// Moves time forward by `by`; waits that are now due resolve.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| {
            *now = now
                .checked_add(by)
                .unwrap_or(Timestamp::from_millis(u64::MAX));
        });
    }

    /// Sets the time; a manual clock never goes back, so an earlier `at` is ignored.
    pub fn set(&self, at: Timestamp) {
        self.now.send_modify(|now| *now = (*now).max(at));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // `wait_for` errs only when every sender is gone: time can then never reach `at`.
            if rx.wait_for(|now| *now >= at).await.is_err() {
                futures::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_wait_resolves_only_when_time_reaches_it() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let mut wait = clock.sleep_until(Timestamp::from_millis(2_000));
        assert!(futures::poll!(&mut wait).is_pending());
        clock.advance(Duration::from_millis(999));
        assert!(futures::poll!(&mut wait).is_pending());
        clock.advance(Duration::from_millis(1));
        assert!(futures::poll!(&mut wait).is_ready());
    }

    #[test]
    fn a_manual_clock_never_goes_back() {
        let clock = ManualClock::new(Timestamp::from_millis(5));
        clock.set(Timestamp::from_millis(3));
        assert_eq!(clock.now(), Timestamp::from_millis(5));
    }
}
