//! [`PgConfig`]: where the log lives and how the store talks to it, checked before any
//! connection is made.

use std::time::Duration;

use stockade_store::StoreError;

/// Longest schema name PostgreSQL keeps whole (`NAMEDATALEN - 1`).
const MAX_SCHEMA: usize = 63;

/// How a [`PostgresStore`](crate::PostgresStore) connects. Defaults work for one node or
/// many: every node of one log gives the same `url` and `schema`.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// A libpq-style connection string: `postgres://user:pass@host:5432/db` or
    /// `host=... user=... dbname=...`. TLS is not built in: use a local socket, a
    /// loopback address or a private network, or a TLS-terminating proxy.
    pub url: String,
    /// The schema holding the log's tables; several logs may share one database.
    pub schema: String,
    /// Connections for reads (each carries many concurrent queries, pipelined).
    pub readers: usize,
    /// At most this many appends share one transaction (group commit).
    pub max_group: usize,
    /// Every call fails after this long with an "outcome unknown" error.
    pub deadline: Duration,
    /// How often an idle subscriber re-reads the log even without a notification: the
    /// safety net under `LISTEN`, which a dropped connection can miss.
    pub poll: Duration,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("readers", &self.readers)
            .field("max_group", &self.max_group)
            .field("deadline", &self.deadline)
            .field("poll", &self.poll)
            .finish()
    }
}

impl PgConfig {
    pub const DEFAULT_SCHEMA: &'static str = "stockade";

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: Self::DEFAULT_SCHEMA.into(),
            readers: 4,
            max_group: 512,
            deadline: Duration::from_secs(10),
            poll: Duration::from_secs(1),
        }
    }

    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    pub fn readers(mut self, n: usize) -> Self {
        self.readers = n;
        self
    }

    pub fn max_group(mut self, n: usize) -> Self {
        self.max_group = n;
        self
    }

    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// The parsed connection settings, or a readable reason the configuration is unusable.
    pub fn validate(&self) -> Result<tokio_postgres::Config, StoreError> {
        let bad = |m: String| StoreError::InvalidRequest(m);
        check_schema(&self.schema).map_err(bad)?;
        if self.readers == 0 || self.readers > 64 {
            return Err(bad("readers must be 1-64".into()));
        }
        if self.max_group == 0 {
            return Err(bad("max_group must be at least 1".into()));
        }
        if self.deadline.is_zero() || self.poll.is_zero() {
            return Err(bad("deadline and poll must be positive".into()));
        }
        let url = self.url.trim();
        if url.is_empty() {
            return Err(bad(
                "the PostgreSQL URL is empty: set store.url or STOCKADE_PG_URL".into(),
            ));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            bad(format!(
                "{} is not a PostgreSQL connection string: {e}",
                redact(url)
            ))
        })?;
        if config.get_application_name().is_none() {
            config.application_name("stockade");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.deadline);
        }
        Ok(config)
    }
}

/// A schema name is spliced into SQL (identifiers cannot be bound), so it is held to
/// lower-case letters, digits and underscores, starting with a letter or underscore.
pub fn check_schema(schema: &str) -> Result<(), String> {
    let ok = !schema.is_empty()
        && schema.len() <= MAX_SCHEMA
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit()
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "schema {schema:?} must be 1-{MAX_SCHEMA} of [a-z0-9_], not start with a digit \
             or pg_"
        ))
    }
}

/// The URL with any password replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    // postgres://user:secret@host/db → postgres://user:***@host/db
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    // key=value form: hide password=...
    url.split_whitespace()
        .map(|part| {
            if part.starts_with("password=") {
                "password=***"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["stockade", "t_1", "_x", "log2"] {
            assert!(check_schema(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_SCHEMA + 1);
        for bad in [
            "",
            "Stockade",
            "1abc",
            "a-b",
            "a;drop",
            "pg_catalog",
            "a b",
            &long,
        ] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            redact("host=db user=app password=s3cret dbname=shop"),
            "host=db user=app password=*** dbname=shop"
        );
        assert_eq!(redact("postgres://app@db/shop"), "postgres://app@db/shop");
        let debug = format!("{:?}", PgConfig::new("postgres://app:s3cret@db/shop"));
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn bad_settings_are_refused_before_connecting() {
        let err = |c: PgConfig| c.validate().unwrap_err().to_string();
        assert!(err(PgConfig::new("")).contains("STOCKADE_PG_URL"));
        assert!(err(PgConfig::new("postgres://x/y").schema("No")).contains("schema"));
        assert!(err(PgConfig::new("postgres://x/y").readers(0)).contains("readers"));
        assert!(err(PgConfig::new("not a url at all=")).contains("connection string"));
        let ok = PgConfig::new("postgres://app@127.0.0.1:5432/shop").validate();
        assert!(ok.is_ok(), "{ok:?}");
    }
}
