//! A request budget per client address for callers without a token (a storefront's public
//! reads), so that one address cannot take the server's capacity from everyone else.
//! Off by default (`limits.anonymous_per_second = 0`), as a server behind a proxy sees
//! every client at the proxy's address; turn it on where clients reach the server
//! directly, or limit in the proxy.
//!
//! A token bucket per address: `per_second` tokens a second, up to twice that in reserve.
//! At most `MAX_ADDRESSES` buckets are kept; past that, buckets idle for a minute go, and if
//! that is not enough, all of them (a flood of addresses resets the budget rather than
//! growing memory).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most.
const MAX_ADDRESSES: usize = 100_000;
/// A bucket untouched this long is dropped when room is needed.
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct AnonymousLimit {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AnonymousLimit {
    /// `per_second` requests a second per address; 0 turns the limit off.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(per_second) * 2.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request from `address` may go on now (and spends a token if so).
    pub fn allow(&self, address: IpAddr) -> bool {
        self.allow_at(address, Instant::now())
    }

    fn allow_at(&self, address: IpAddr, now: Instant) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&address) {
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < IDLE);
            if buckets.len() >= MAX_ADDRESSES {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(address).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_its_rate_and_others_are_untouched() {
        let limit = AnonymousLimit::new(5);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        let allowed = (0..20).filter(|_| limit.allow_at(a, t0)).count();
        assert_eq!(allowed, 10, "the burst is twice the rate");
        assert!(limit.allow_at(b, t0), "another address has its own budget");
        assert!(!limit.allow_at(a, t0));
        assert!(
            limit.allow_at(a, t0 + Duration::from_millis(250)),
            "refilled at 5/s"
        );
    }

    #[test]
    fn zero_is_off() {
        let limit = AnonymousLimit::new(0);
        let a = "10.0.0.1".parse().unwrap();
        assert!((0..1000).all(|_| limit.allow(a)));
    }
}
