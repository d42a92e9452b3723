//! [`ServerConfig`]: a TOML file, then `STOCKADE_*` environment overrides, then flags.
//!
//! Every setting has a default that works out of the box (`127.0.0.1:8080`, `./data`),
//! and every mistake is refused at start-up with a message that names the setting:
//! an unknown key, a token too short to be a secret, a webhook without a URL.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use stockade_domain::Channel;
use stockade_engine::{IdSecret, ResolvePolicy};

/// Shortest token accepted: anything shorter is guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// Everything `stockade serve` needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The log (`stockade.db`), the read models (`projections.db`), the idempotency
    /// fingerprints (`http.db`) and generated tokens (`tokens.toml`).
    pub data_dir: PathBuf,
    /// Where the log lives: the embedded SQLite file (default) or EventStoreDB.
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub stream: StreamConfig,
    pub engine: EngineConfig,
    pub webhooks: Vec<WebhookConfig>,
    pub reconcile: ReconcileConfig,
    /// The MCP endpoint (`/mcp`) for assistants.
    pub mcp: McpConfig,
    /// Pages of other origins that may read stock (the storefront indicator).
    pub cors: CorsConfig,
}

/// Cross-origin reads, off by default: an origin listed here may load `/stock.js` and
/// read stock and the live stream from its pages (public reads only; writes never).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://shop.example`, `http://localhost:3000`).
    pub allowed_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            store: StoreConfig::default(),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            stream: StreamConfig::default(),
            engine: EngineConfig::default(),
            webhooks: Vec::new(),
            reconcile: ReconcileConfig::default(),
            mcp: McpConfig::default(),
            cors: CorsConfig::default(),
        }
    }
}

/// The `[store]` section: which event store. Every section is a `*Config`; the engine's
/// own types of the same names are written with their path (`stockade_engine::…`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// EventStoreDB connection string (`esdb://host:2113?tls=false`, or a cluster's hosts),
    /// or PostgreSQL's (`postgres://user@host:5432/db`).
    pub url: Option<String>,
    /// Prefix of every stream name (EventStoreDB); empty in production.
    pub namespace: String,
    /// The PostgreSQL schema holding the log (default `stockade`); every node of one log
    /// names the same.
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// `stockade.db` in the data directory.
    #[default]
    Sqlite,
    Eventstoredb,
    /// One PostgreSQL log shared by several nodes.
    Postgres,
}

impl StoreKind {
    /// Reads `sqlite`, `eventstoredb` (or `esdb`) and `postgres` (or `postgresql`), as the
    /// CLI's `--store` and `STOCKADE_STORE` take them.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        match value.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(StoreKind::Sqlite),
            "eventstoredb" | "esdb" => Ok(StoreKind::Eventstoredb),
            "postgres" | "postgresql" => Ok(StoreKind::Postgres),
            _ => Err(bad(format!(
                "store {value:?} is not one of sqlite, eventstoredb, postgres"
            ))),
        }
    }
}

impl StoreConfig {
    /// The engine's store configuration for `data_dir`.
    pub fn to_engine(&self, data_dir: &Path) -> Result<stockade_engine::StoreConfig, ConfigError> {
        match (self.kind, &self.url) {
            (StoreKind::Sqlite | StoreKind::Eventstoredb, _) if self.schema.is_some() => {
                Err(bad("store.schema is for kind = \"postgres\""))
            }
            (StoreKind::Sqlite, None) => Ok(stockade_engine::StoreConfig::Sqlite {
                data_dir: data_dir.to_owned(),
            }),
            (StoreKind::Sqlite, Some(_)) => Err(bad(
                "store.url is for kind = \"eventstoredb\" or \"postgres\"; the SQLite log lives \
                 in data_dir",
            )),
            (StoreKind::Postgres, Some(url)) => {
                let mut config = stockade_postgres::PgConfig::new(url.clone());
                if let Some(schema) = &self.schema {
                    config = config.schema(schema.clone());
                }
                // Refused here, with the setting's name, rather than at the first connect.
                config.validate().map_err(|e| bad(format!("store: {e}")))?;
                Ok(stockade_engine::StoreConfig::Postgres(config))
            }
            (StoreKind::Postgres, None) => Err(bad(
                "store kind = \"postgres\" needs store.url (or STOCKADE_PG_URL)",
            )),
            (StoreKind::Eventstoredb, Some(url)) => Ok(stockade_engine::StoreConfig::EventStoreDb(
                stockade_esdb::EsdbConfig::new(url.clone()).namespace(self.namespace.clone()),
            )),
            (StoreKind::Eventstoredb, None) => Err(bad(
                "store kind = \"eventstoredb\" needs store.url (or STOCKADE_ESDB_URL)",
            )),
        }
    }
}

/// Bearer tokens by role. With none configured anywhere, the first start generates an
/// admin and a `web` channel token in the data directory (see `auth`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// May register SKUs and adjust stock (and read).
    pub admin_tokens: Vec<String>,
    /// Channel name → token. May reserve, commit and release (and read); the token names
    /// the channel its reservations are recorded under.
    pub channel_tokens: BTreeMap<String, String>,
    /// May only read (when reads are not public).
    pub read_tokens: Vec<String>,
    /// Whether stock reads and the live streams need no token (a storefront's stock is
    /// public). Default true.
    pub public_reads: bool,
    /// The secret keyed reservation ids are derived with (at least 32 characters). Unset:
    /// `stockade.secret` in the data directory, created on first start. Nodes sharing one
    /// event store must share it.
    pub id_secret: Option<String>,
    /// Who may commit or release a reservation: `any` channel (default) or its `owner`.
    pub resolve: ResolveSetting,
    /// With `resolve = "owner"`: channel → the channels it may also resolve for (an order
    /// service committing what storefronts reserved).
    pub resolve_for: BTreeMap<String, Vec<String>>,
}

/// `auth.resolve`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveSetting {
    #[default]
    Any,
    Owner,
}

/// Counts, never tokens: a configuration may be logged.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("admin_tokens", &self.admin_tokens.len())
            .field("channels", &self.channel_tokens.keys().collect::<Vec<_>>())
            .field("read_tokens", &self.read_tokens.len())
            .field("public_reads", &self.public_reads)
            .field("id_secret", &self.id_secret.as_ref().map(|_| "(set)"))
            .field("resolve", &self.resolve)
            .field("resolve_for", &self.resolve_for)
            .finish()
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_tokens: Vec::new(),
            channel_tokens: BTreeMap::new(),
            read_tokens: Vec::new(),
            public_reads: true,
            id_secret: None,
            resolve: ResolveSetting::Any,
            resolve_for: BTreeMap::new(),
        }
    }
}

impl AuthConfig {
    /// The engine's resolve policy from `resolve` and `resolve_for`.
    pub fn resolve_policy(&self) -> Result<ResolvePolicy, ConfigError> {
        if self.resolve == ResolveSetting::Any {
            if !self.resolve_for.is_empty() {
                return Err(bad("auth.resolve_for needs auth.resolve = \"owner\""));
            }
            return Ok(ResolvePolicy::Any);
        }
        let channel =
            |name: &str| Channel::new(name).map_err(|e| bad(format!("auth.resolve_for: {e}")));
        let mut delegates = BTreeMap::new();
        for (acting, owners) in &self.resolve_for {
            let owners = owners
                .iter()
                .map(|o| channel(o))
                .collect::<Result<std::collections::BTreeSet<_>, _>>()?;
            delegates.insert(channel(acting)?, owners);
        }
        Ok(ResolvePolicy::Owner { delegates })
    }

    /// The configured id secret, if any, checked.
    pub fn id_secret(&self) -> Result<Option<IdSecret>, ConfigError> {
        self.id_secret
            .as_deref()
            .map(|text| IdSecret::from_text(text).map_err(|e| bad(format!("auth.id_secret: {e}"))))
            .transpose()
    }

    pub fn is_empty(&self) -> bool {
        self.admin_tokens.is_empty()
            && self.channel_tokens.is_empty()
            && self.read_tokens.is_empty()
    }
}

/// Bounds that turn overload into a quick 413 / 429 / 503 instead of an unbounded queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Requests being handled at once (streams excluded); more get 503 at once.
    pub max_concurrent_requests: usize,
    /// Open SSE and WebSocket streams; more get 503.
    pub max_streams: usize,
    /// Requests with a body but without valid credentials (an anonymous MCP call) being
    /// handled at once, on a budget of their own: a crowd of slow anonymous bodies cannot
    /// take the slots authenticated traffic and health checks need. More get 503.
    pub max_anonymous_bodies: usize,
    /// Requests a second per client address for callers without a valid token (storefront
    /// reads), twice that in a burst; past it, 429. 0 (the default) is off: behind a
    /// proxy every client has the proxy's address.
    pub anonymous_per_second: u32,
    /// HTTP worker threads (default: one per core).
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_concurrent_requests: 8192,
            max_streams: 10_000,
            max_anonymous_bodies: 64,
            anonymous_per_second: 0,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// The live push channels.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Most notices replayed to a reader resuming with `Last-Event-ID`; further behind,
    /// it gets `resync`.
    pub replay_max: u64,
    /// A comment (SSE) or ping (WebSocket) this often keeps proxies from closing the stream.
    pub keepalive_seconds: u64,
    /// Notices a stream may fall behind the projector by before it is cut off (`resync`).
    pub buffer: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            replay_max: 10_000,
            keepalive_seconds: 15,
            buffer: 4096,
        }
    }
}

/// The `[engine]` section: the engine settings worth exposing to an operator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Threads the SKU actors run on (default: one per core).
    pub arbiters: usize,
    /// TTL of a reservation that names none.
    pub default_ttl_seconds: u64,
    /// Commands one SKU may have waiting before new ones get 429.
    pub mailbox_capacity: usize,
    pub snapshot_every: u64,
    pub idle_timeout_seconds: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let d = stockade_engine::EngineConfig::default();
        Self {
            arbiters: d.arbiters,
            default_ttl_seconds: d.default_ttl.as_secs(),
            mailbox_capacity: d.mailbox_capacity,
            snapshot_every: d.snapshot_every,
            idle_timeout_seconds: d.idle_timeout.as_secs(),
        }
    }
}

impl EngineConfig {
    pub fn to_engine(&self) -> stockade_engine::EngineConfig {
        stockade_engine::EngineConfig {
            arbiters: self.arbiters,
            default_ttl: Duration::from_secs(self.default_ttl_seconds),
            mailbox_capacity: self.mailbox_capacity,
            snapshot_every: self.snapshot_every,
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            ..stockade_engine::EngineConfig::default()
        }
    }
}

/// One webhook endpoint (a marketplace, another service).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names its delivery cursor and dead letters: keep it stable.
    pub name: String,
    pub url: String,
    /// HMAC-SHA256 key of `X-Stockade-Signature`.
    pub secret: String,
    /// Send only each SKU's latest state per window of this many milliseconds.
    #[serde(default)]
    pub coalesce_ms: Option<u64>,
}

/// Without the secret: a configuration may be logged.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("coalesce_ms", &self.coalesce_ms)
            .finish_non_exhaustive()
    }
}

/// The periodic check of read models against the log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// 0 turns it off.
    pub every_seconds: u64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self { every_seconds: 60 }
    }
}

/// The MCP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// Serve `/mcp` (default true).
    pub enabled: bool,
    /// A cache-control policy file (TOML); the built-in policy when unset. An invalid
    /// policy stops start-up.
    pub policy_file: Option<PathBuf>,
    /// A session with no message for this long is closed, and its read ledger with it.
    pub session_idle_seconds: u64,
    /// `Host` header values `/mcp` accepts (DNS-rebinding protection). Unset: the
    /// loopback names when the server listens on loopback, any otherwise; `[]`: any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Browser `Origin` values `/mcp` accepts (`http://localhost:*`). Unset: loopback
    /// origins when the server listens on loopback, unchecked otherwise; `[]`: unchecked.
    pub allowed_origins: Option<Vec<String>>,
    /// Sessions of token holders open at once; an `initialize` past it gets 503.
    pub max_sessions: usize,
    /// Sessions one principal (one token) may have open; past it, its `initialize` gets 503.
    pub max_sessions_per_principal: usize,
    /// Sessions without a token, on a budget of their own (so they can never lock token
    /// holders out); past it, an anonymous `initialize` gets 503.
    pub max_anonymous_sessions: usize,
    /// An anonymous session with no message for this long stops counting and is refused.
    pub anonymous_session_idle_seconds: u64,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            policy_file: None,
            session_idle_seconds: 1800,
            allowed_hosts: None,
            allowed_origins: None,
            max_sessions: 1000,
            max_sessions_per_principal: 100,
            max_anonymous_sessions: 50,
            anonymous_session_idle_seconds: 300,
        }
    }
}

impl McpConfig {
    /// The `Host` and `Origin` allow-lists for a server listening on `listen`.
    pub fn allowed(&self, listen: SocketAddr) -> (Vec<String>, Vec<String>) {
        let loopback = listen.ip().is_loopback();
        let hosts = self.allowed_hosts.clone().unwrap_or_else(|| {
            if loopback {
                ["localhost", "127.0.0.1", "::1"]
                    .map(str::to_owned)
                    .to_vec()
            } else {
                Vec::new()
            }
        });
        let origins = self.allowed_origins.clone().unwrap_or_else(|| {
            if loopback {
                ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
                    .map(str::to_owned)
                    .to_vec()
            } else {
                Vec::new()
            }
        });
        (hosts, origins)
    }

    /// The policy this server tags its tools with: the file's, or the built-in one.
    pub fn policy(&self) -> Result<stockade_mcp::Policy, ConfigError> {
        match &self.policy_file {
            None => stockade_mcp::Policy::built_in().map_err(|e| bad(e.to_string())),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad(format!("read mcp.policy_file {}: {e}", path.display())))?;
                stockade_mcp::Policy::from_toml(&text)
                    .map_err(|e| bad(format!("{}: {e}", path.display())))
            }
        }
    }
}

impl ServerConfig {
    /// Reads `path` (TOML). A missing file is an error: it was asked for by name.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("read config {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| bad(format!("{}: {e}", path.display())))
    }

    /// Parses settings. An error names the line and what is wrong, but never quotes the
    /// line itself: it may hold a token.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let message = redact_strings(e.message());
            match line {
                Some(line) => bad(format!("line {line}: {message}")),
                None => bad(message),
            }
        })
    }

    /// Applies `STOCKADE_*` variables from `vars` (the process environment in production).
    /// A token list from the environment replaces the file's list of that role.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let (mut esdb_url, mut pg_url) = (None, None);
        for (name, value) in vars {
            match name.as_str() {
                "STOCKADE_LISTEN" => {
                    self.listen = value
                        .parse()
                        .map_err(|_| bad(format!("STOCKADE_LISTEN={value:?} is not host:port")))?;
                }
                "STOCKADE_DATA_DIR" => self.data_dir = PathBuf::from(value),
                "STOCKADE_STORE" => {
                    self.store.kind = StoreKind::parse(&value).map_err(|_| {
                        bad("STOCKADE_STORE must be sqlite, eventstoredb or postgres")
                    })?;
                }
                // Also what the live PostgreSQL tests read: like STOCKADE_ESDB_URL, it names
                // a server and selects nothing by itself.
                "STOCKADE_PG_URL" => pg_url = Some(value),
                "STOCKADE_PG_SCHEMA" => self.store.schema = Some(value),
                "STOCKADE_ADMIN_TOKEN" | "STOCKADE_ADMIN_TOKENS" => {
                    self.auth.admin_tokens = list(&value);
                }
                "STOCKADE_READ_TOKENS" => self.auth.read_tokens = list(&value),
                "STOCKADE_ID_SECRET" => self.auth.id_secret = Some(value),
                "STOCKADE_CORS_ORIGINS" => self.cors.allowed_origins = list(&value),
                "STOCKADE_ANONYMOUS_PER_SECOND" => {
                    self.limits.anonymous_per_second = u32::try_from(number(&name, &value)?)
                        .map_err(|_| bad(format!("{name} is too large")))?;
                }
                "STOCKADE_RESOLVE" => {
                    self.auth.resolve = match value.as_str() {
                        "any" => ResolveSetting::Any,
                        "owner" => ResolveSetting::Owner,
                        _ => return Err(bad("STOCKADE_RESOLVE must be any or owner")),
                    }
                }
                "STOCKADE_CHANNEL_TOKENS" => {
                    let mut tokens = BTreeMap::new();
                    for pair in list(&value) {
                        let (channel, token) = pair.split_once(':').ok_or_else(|| {
                            bad("STOCKADE_CHANNEL_TOKENS takes comma-separated channel:token pairs")
                        })?;
                        tokens.insert(channel.trim().to_owned(), token.trim().to_owned());
                    }
                    self.auth.channel_tokens = tokens;
                }
                "STOCKADE_PUBLIC_READS" => {
                    self.auth.public_reads = match value.to_ascii_lowercase().as_str() {
                        "1" | "true" | "yes" => true,
                        "0" | "false" | "no" => false,
                        _ => return Err(bad("STOCKADE_PUBLIC_READS must be true or false")),
                    };
                }
                "STOCKADE_MAX_BODY_BYTES" => {
                    self.limits.max_body_bytes = number(&name, &value)?;
                }
                "STOCKADE_MAX_CONCURRENT_REQUESTS" => {
                    self.limits.max_concurrent_requests = number(&name, &value)?;
                }
                "STOCKADE_WORKERS" => self.limits.workers = number(&name, &value)?,
                // Also what the live EventStoreDB tests read: it names a server, and
                // selects nothing by itself.
                "STOCKADE_ESDB_URL" => esdb_url = Some(value),
                "STOCKADE_ARBITERS" => self.engine.arbiters = number(&name, &value)?,
                "STOCKADE_MCP_POLICY" => self.mcp.policy_file = Some(PathBuf::from(value)),
                other => check_not_a_setting(other)?,
            }
        }
        match (self.store.kind, esdb_url, pg_url) {
            (StoreKind::Eventstoredb, Some(url), _) | (StoreKind::Postgres, _, Some(url)) => {
                self.store.url = Some(url);
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks what serde cannot: positive bounds, valid names, tokens long enough.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("limits.max_body_bytes", self.limits.max_body_bytes),
            (
                "limits.max_concurrent_requests",
                self.limits.max_concurrent_requests,
            ),
            ("limits.max_streams", self.limits.max_streams),
            (
                "limits.max_anonymous_bodies",
                self.limits.max_anonymous_bodies,
            ),
            ("limits.workers", self.limits.workers),
            ("stream.buffer", self.stream.buffer),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(bad(format!("{name} must be positive")));
        }
        if self.stream.keepalive_seconds == 0 {
            return Err(bad("stream.keepalive_seconds must be positive"));
        }
        let mcp = &self.mcp;
        let mcp_positive = [
            ("mcp.session_idle_seconds", mcp.session_idle_seconds),
            (
                "mcp.anonymous_session_idle_seconds",
                mcp.anonymous_session_idle_seconds,
            ),
            ("mcp.max_sessions", mcp.max_sessions as u64),
            (
                "mcp.max_sessions_per_principal",
                mcp.max_sessions_per_principal as u64,
            ),
            (
                "mcp.max_anonymous_sessions",
                mcp.max_anonymous_sessions as u64,
            ),
        ];
        if let Some((name, _)) = mcp_positive.iter().find(|(_, v)| *v == 0) {
            return Err(bad(format!("{name} must be positive")));
        }
        self.engine.to_engine().validate().map_err(bad)?;
        self.store.to_engine(&self.data_dir)?;
        let tokens = self
            .auth
            .admin_tokens
            .iter()
            .chain(self.auth.read_tokens.iter())
            .chain(self.auth.channel_tokens.values());
        for token in tokens {
            if token.chars().count() < MIN_TOKEN_CHARS || token.chars().any(char::is_whitespace) {
                return Err(bad(format!(
                    "every token must be at least {MIN_TOKEN_CHARS} characters without spaces"
                )));
            }
        }
        for channel in self.auth.channel_tokens.keys() {
            stockade_domain::Channel::new(channel.as_str())
                .map_err(|e| bad(format!("auth.channel_tokens: {e}")))?;
        }
        self.auth.resolve_policy()?;
        self.auth.id_secret()?;
        for origin in &self.cors.allowed_origins {
            let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && origin
                    .split("://")
                    .nth(1)
                    .is_some_and(|rest| !rest.contains('/'));
            if !valid {
                return Err(bad(format!(
                    "cors.allowed_origins: {origin:?} is not an origin (scheme://host[:port])"
                )));
            }
        }
        let mut names = std::collections::HashSet::new();
        for hook in &self.webhooks {
            if hook.name.is_empty() || !names.insert(hook.name.as_str()) {
                return Err(bad(format!(
                    "webhook names must be unique and non-empty ({:?})",
                    hook.name
                )));
            }
            if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                return Err(bad(format!(
                    "webhook {}: url must start with http:// or https://",
                    hook.name
                )));
            }
            if hook.secret.is_empty() {
                return Err(bad(format!("webhook {}: a secret is required", hook.name)));
            }
        }
        Ok(())
    }
}

/// `message` with every double-quoted value replaced by `"…"`: serde quotes the value it
/// could not use (`invalid type: string "stk_…"`), and that value may be a secret. Key
/// names, which serde quotes with backticks, stay.
fn redact_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…\"");
                quoted = true;
            }
            ('"', true) => quoted = false,
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// Every server setting `apply_env` reads, as `stockade serve` documents them.
pub const ENV_SETTINGS: &[&str] = &[
    "STOCKADE_LISTEN",
    "STOCKADE_DATA_DIR",
    "STOCKADE_STORE",
    "STOCKADE_ESDB_URL",
    "STOCKADE_PG_URL",
    "STOCKADE_PG_SCHEMA",
    "STOCKADE_ADMIN_TOKEN",
    "STOCKADE_ADMIN_TOKENS",
    "STOCKADE_READ_TOKENS",
    "STOCKADE_CHANNEL_TOKENS",
    "STOCKADE_ID_SECRET",
    "STOCKADE_PUBLIC_READS",
    "STOCKADE_RESOLVE",
    "STOCKADE_CORS_ORIGINS",
    "STOCKADE_ANONYMOUS_PER_SECOND",
    "STOCKADE_MAX_BODY_BYTES",
    "STOCKADE_MAX_CONCURRENT_REQUESTS",
    "STOCKADE_WORKERS",
    "STOCKADE_ARBITERS",
    "STOCKADE_MCP_POLICY",
];

/// `STOCKADE_` names that are not server settings but are read elsewhere: the config
/// file's path (a flag's default), and what the project's benches and tests pass to the
/// processes they start. Names starting with one of these are left alone.
const NOT_SETTINGS: &[&str] = &[
    "STOCKADE_CONFIG",
    "STOCKADE_BIN",
    "STOCKADE_BENCH_",
    "STOCKADE_PEER_",
    "STOCKADE_TEST_",
    // .ci/postgres.sh's port, and the HAProxy configuration's addresses
    // (ops/haproxy/stockade.cfg), which an operator may export in the nodes' shell.
    "STOCKADE_CI_",
    "STOCKADE_LB_",
    "STOCKADE_NODE",
];

/// Refuses a `STOCKADE_*` variable that is neither a setting nor one of [`NOT_SETTINGS`]:
/// a misspelt setting (`STOCKADE_WORKER=4`) would otherwise do nothing, silently, as an
/// unknown key in the file would not. Names outside the namespace are not ours to judge.
fn check_not_a_setting(name: &str) -> Result<(), ConfigError> {
    if !name.starts_with("STOCKADE_") || NOT_SETTINGS.iter().any(|n| name.starts_with(n)) {
        return Ok(());
    }
    let closest = ENV_SETTINGS
        .iter()
        .map(|known| (edit_distance(name, known), *known))
        .min()
        .filter(|(distance, _)| *distance <= 3)
        .map(|(_, known)| format!(" (did you mean {known}?)"))
        .unwrap_or_default();
    Err(bad(format!(
        "unknown environment variable {name}{closest}; the settings read from the \
         environment are {}",
        ENV_SETTINGS.join(", ")
    )))
}

/// Levenshtein distance, for the suggestion above (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn number(name: &str, value: &str) -> Result<usize, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(format!("{name}={value:?} is not a whole number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_work_out_of_the_box() {
        let c = ServerConfig::from_toml("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.auth.public_reads);
        c.validate().unwrap();
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut c = ServerConfig::from_toml(
            r#"
            listen = "127.0.0.1:9000"
            [auth]
            admin_tokens = ["file-admin-token-0001"]
            channel_tokens = { pos = "file-pos-token-00001" }
            "#,
        )
        .unwrap();
        c.apply_env(env(&[
            ("STOCKADE_ADMIN_TOKEN", "env-admin-token-00001"),
            (
                "STOCKADE_CHANNEL_TOKENS",
                "web:env-web-token-000001, app:env-app-token-000001",
            ),
            ("STOCKADE_PUBLIC_READS", "false"),
            ("HOME", "/root"),
        ]))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.auth.admin_tokens, ["env-admin-token-00001"]);
        assert_eq!(c.auth.channel_tokens.len(), 2);
        assert_eq!(c.auth.channel_tokens["app"], "env-app-token-000001");
        assert!(!c.auth.public_reads);
    }

    #[test]
    fn mistakes_are_refused_with_the_setting_named() {
        let err = |toml: &str| {
            ServerConfig::from_toml(toml)
                .and_then(|c| c.validate())
                .unwrap_err()
                .0
        };
        assert!(err("lisen = \"x\"").contains("lisen"));
        // The offending line is named, never quoted: it may hold a token.
        let leak = err("[auth]\nadmin_tokens = \"stk_adm_secret_value_1234\"");
        assert!(leak.starts_with("line 2:"), "{leak}");
        assert!(!leak.contains("stk_adm_secret"), "{leak}");
        assert!(err("[auth]\nadmin_tokens = [\"short\"]").contains("16 characters"));
        assert!(err("[limits]\nmax_body_bytes = 0").contains("max_body_bytes"));
        assert!(
            err("[auth]\nchannel_tokens = { \"we b\" = \"a-long-enough-token\" }")
                .contains("channel")
        );
        assert!(
            err("[[webhooks]]\nname = \"m\"\nurl = \"ftp://x\"\nsecret = \"s\"").contains("url")
        );
        let mut c = ServerConfig::default();
        assert!(
            c.apply_env(env(&[("STOCKADE_CHANNEL_TOKENS", "no-colon")]))
                .is_err()
        );
        assert!(c.apply_env(env(&[("STOCKADE_LISTEN", "nowhere")])).is_err());
        let typo = c
            .apply_env(env(&[("STOCKADE_WORKER", "4")]))
            .expect_err("a misspelt setting is refused");
        assert!(
            typo.0.contains("STOCKADE_WORKER") && typo.0.contains("did you mean STOCKADE_WORKERS?"),
            "{typo}"
        );
        // Not ours (another program's), or the project's tools': left alone.
        for name in [
            "PATH",
            "STOCKADE_CONFIG",
            "STOCKADE_BENCH_SECONDS",
            "STOCKADE_TEST_PYTHON",
            "STOCKADE_CI_PG_PORT",
            "STOCKADE_LB_BIND",
            "STOCKADE_NODE1",
        ] {
            assert!(c.apply_env(env(&[(name, "x")])).is_ok(), "{name}");
        }
        assert!(err("[store]\nkind = \"eventstoredb\"").contains("store.url"));
        assert!(err("[cors]\nallowed_origins = [\"shop.example\"]").contains("cors"));
        assert!(err("[cors]\nallowed_origins = [\"https://shop.example/\"]").contains("cors"));
        assert!(err("[store]\nurl = \"esdb://x:2113\"").contains("eventstoredb"));
    }

    #[test]
    fn the_example_in_the_operations_guide_parses() {
        let guide = include_str!("../../../docs/operations.md");
        let start = guide.find("# stockade.toml").expect("the example");
        let end = start + guide[start..].find("```").expect("its end");
        let example = guide[start..end].replace('…', "0123456789abcdef0123");
        let c = ServerConfig::from_toml(&example).unwrap();
        c.validate().unwrap();
        assert_eq!(c.store.kind, StoreKind::Eventstoredb);
        assert_eq!(c.auth.channel_tokens.len(), 3);
        assert_eq!(c.webhooks[0].coalesce_ms, Some(1000));
    }

    #[test]
    fn the_store_is_sqlite_unless_eventstoredb_is_chosen() {
        let mut c = ServerConfig::default();
        // A URL alone (the live tests' variable) does not switch the store.
        c.apply_env(env(&[(
            "STOCKADE_ESDB_URL",
            "esdb://127.0.0.1:2113?tls=false",
        )]))
        .unwrap();
        assert!(matches!(
            c.store.to_engine(&c.data_dir).unwrap(),
            stockade_engine::StoreConfig::Sqlite { .. }
        ));
        c.apply_env(env(&[
            ("STOCKADE_STORE", "eventstoredb"),
            ("STOCKADE_ESDB_URL", "esdb://127.0.0.1:2113?tls=false"),
        ]))
        .unwrap();
        c.validate().unwrap();
        assert!(matches!(
            c.store.to_engine(&c.data_dir).unwrap(),
            stockade_engine::StoreConfig::EventStoreDb(_)
        ));
    }

    #[test]
    fn postgres_is_chosen_by_kind_and_named_by_url_and_schema() {
        let mut c = ServerConfig::default();
        // The live tests' URL alone selects nothing.
        c.apply_env(env(&[("STOCKADE_PG_URL", "postgres://app@127.0.0.1/shop")]))
            .unwrap();
        assert!(matches!(
            c.store.to_engine(&c.data_dir).unwrap(),
            stockade_engine::StoreConfig::Sqlite { .. }
        ));
        c.apply_env(env(&[
            ("STOCKADE_STORE", "postgres"),
            ("STOCKADE_PG_URL", "postgres://app@127.0.0.1/shop"),
            ("STOCKADE_PG_SCHEMA", "shop_log"),
        ]))
        .unwrap();
        c.validate().unwrap();
        match c.store.to_engine(&c.data_dir).unwrap() {
            stockade_engine::StoreConfig::Postgres(pg) => {
                assert_eq!(pg.url, "postgres://app@127.0.0.1/shop");
                assert_eq!(pg.schema, "shop_log");
            }
            other => panic!("{other:?}"),
        }
        let file = ServerConfig::from_toml(
            "[store]\nkind = \"postgres\"\nurl = \"postgres://app@db/shop\"\n",
        )
        .unwrap();
        file.validate().unwrap();
        let err = |toml: &str| {
            ServerConfig::from_toml(toml)
                .and_then(|c| c.validate())
                .unwrap_err()
                .0
        };
        assert!(err("[store]\nkind = \"postgres\"").contains("STOCKADE_PG_URL"));
        assert!(
            err("[store]\nkind = \"postgres\"\nurl = \"postgres://db/x\"\nschema = \"Bad\"")
                .contains("schema")
        );
        assert!(err("[store]\nschema = \"log\"").contains("postgres"));
        assert!(
            ServerConfig::default()
                .apply_env(env(&[("STOCKADE_STORE", "mysql")]))
                .unwrap_err()
                .0
                .contains("postgres")
        );
    }

    #[test]
    fn the_mcp_section_is_checked_and_its_policy_loaded() {
        let c = ServerConfig::from_toml("[mcp]\nsession_idle_seconds = 0\n").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .0
                .contains("mcp.session_idle_seconds")
        );
        assert!(ServerConfig::from_toml("[mcp]\npolicy = \"p.toml\"\n").is_err());
        let c = ServerConfig::default();
        assert!(c.mcp.enabled);
        assert_eq!(
            c.mcp.policy().unwrap().directive("reference.poolTypes"),
            stockade_mcp::CacheDirective::Immutable
        );
        let mut c = ServerConfig::default();
        c.apply_env(env(&[("STOCKADE_MCP_POLICY", "/nonexistent/policy.toml")]))
            .unwrap();
        let e = c.mcp.policy().unwrap_err().0;
        assert!(
            e.contains("mcp.policy_file /nonexistent/policy.toml"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod env_names {
    use super::*;

    /// The list the error message and the docs quote is the list `apply_env` reads: each
    /// name, given a value it cannot parse, gets some answer other than "unknown".
    #[test]
    fn every_listed_setting_is_one_apply_env_reads() {
        for name in ENV_SETTINGS {
            let mut config = ServerConfig::default();
            let answer = config.apply_env([(name.to_string(), "?".to_owned())]);
            assert!(
                !answer.is_err_and(|e| e.0.contains("unknown environment variable")),
                "{name}"
            );
        }
    }
}
