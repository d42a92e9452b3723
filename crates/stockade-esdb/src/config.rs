//! How to reach EventStoreDB and the limits the backend keeps.
//!
//! Everything here is checked before a connection is attempted, so a bad URL or setting is
//! a one-line error at start-up rather than a failure on the first append.

use std::time::Duration;

use kurrentdb::ClientSettings;
use stockade_store::StoreError;
use stockade_store::plan::MAX_APPEND_BYTES;

/// Longest namespace accepted, in bytes; stream names stay well under the server's limits.
pub const MAX_NAMESPACE: usize = 64;

/// Settings of an [`EsdbStore`](crate::EsdbStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsdbConfig {
    /// A connection string: `esdb://host:2113?tls=false`, `esdb://a:2113,b:2113,c:2113`,
    /// `esdb+discover://cluster.example:2113`, or the same with `kurrentdb://`.
    pub url: String,
    /// Prepended to every stream name this store writes and reads. Empty in production,
    /// so that SKU streams are `sku-{SKU}`; tests and environments sharing one cluster give
    /// each their own (`staging-`), and then see only their own events.
    pub namespace: String,
    /// The longest any one call may take (append, page of a read, snapshot). Past it the
    /// call fails as unavailable, and the engine finds out what landed by reading.
    pub deadline: Duration,
    /// The server's `MaxAppendSize`. Batches are split to stay under it.
    pub max_append_bytes: usize,
    /// A dropped subscription waits this long before its first reconnect attempt...
    pub reconnect_min: Duration,
    /// ...doubling up to this between attempts, for as long as the server stays away.
    pub reconnect_max: Duration,
    /// Threads of the store's own runtime, which carries all gRPC I/O.
    pub io_threads: usize,
}

impl EsdbConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            namespace: String::new(),
            deadline: Duration::from_secs(10),
            max_append_bytes: MAX_APPEND_BYTES,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            io_threads: 2,
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn max_append_bytes(mut self, bytes: usize) -> Self {
        self.max_append_bytes = bytes;
        self
    }

    /// Checks every setting and parses the connection string.
    pub fn validate(&self) -> Result<ClientSettings, StoreError> {
        let invalid = |what: String| StoreError::InvalidRequest(what);
        let settings = self.url.parse::<ClientSettings>().map_err(|e| {
            invalid(format!(
                "EventStoreDB URL {:?} is not a connection string ({e}); expected e.g. \
                 esdb://localhost:2113?tls=false",
                redact(&self.url)
            ))
        })?;
        if self.namespace.len() > MAX_NAMESPACE
            || self.namespace.starts_with('$')
            || self
                .namespace
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(invalid(format!(
                "namespace {:?} must be at most {MAX_NAMESPACE} bytes, not start with '$' \
                 (system streams) and hold no spaces or control characters",
                self.namespace
            )));
        }
        if self.deadline.is_zero() {
            return Err(invalid("the EventStoreDB deadline must be positive".into()));
        }
        if self.max_append_bytes == 0 {
            return Err(invalid("max_append_bytes must be positive".into()));
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return Err(invalid(
                "reconnect delays must be positive, the maximum no less than the minimum".into(),
            ));
        }
        if self.io_threads == 0 {
            return Err(invalid("io_threads must be at least 1".into()));
        }
        Ok(settings)
    }
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // Credentials end at the last '@' before the host list.
    match rest.rsplit_once('@') {
        Some((credentials, hosts)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{hosts}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_cluster_and_discovery_urls_parse() {
        for url in [
            "esdb://localhost:2113?tls=false",
            "esdb://admin:changeit@a:2113,b:2113,c:2113?nodePreference=leader",
            "esdb+discover://cluster.example:2113",
            "kurrentdb://localhost:2113?tls=false",
        ] {
            assert!(EsdbConfig::new(url).validate().is_ok(), "{url}");
        }
    }

    #[test]
    fn a_bad_url_is_a_readable_error_without_the_password() {
        let err = EsdbConfig::new("http://admin:secret@localhost:2113")
            .validate()
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::InvalidRequest(_)));
        assert!(text.contains("not a connection string"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let base = || EsdbConfig::new("esdb://localhost:2113?tls=false");
        assert!(base().namespace("$system-").validate().is_err());
        assert!(base().namespace("has space").validate().is_err());
        assert!(base().namespace("x".repeat(65)).validate().is_err());
        assert!(base().namespace("staging-").validate().is_ok());
        assert!(base().deadline(Duration::ZERO).validate().is_err());
        assert!(base().max_append_bytes(0).validate().is_err());
        let mut c = base();
        c.reconnect_max = Duration::from_millis(1);
        assert!(c.validate().is_err());
    }

    #[test]
    fn redaction_keeps_user_and_hosts() {
        assert_eq!(
            redact("esdb://admin:changeit@a:2113,b:2113"),
            "esdb://admin:***@a:2113,b:2113"
        );
        assert_eq!(redact("esdb://a:2113"), "esdb://a:2113");
    }
}
