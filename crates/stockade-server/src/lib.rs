//! `stockade serve`: the engine, its projections, and the HTTP face over both — the REST
//! API, live SSE and WebSocket push, Prometheus metrics and a live dashboard.
//!
//! [`start`] takes the listener it serves on (tests bind `127.0.0.1:0`) and returns a
//! [`Running`] server; [`Running::run_until`] serves until the shutdown future completes,
//! then stops in order: stop accepting, finish requests in flight, let the engine answer
//! the appends in flight, let the projector catch up with the log, stop the rest. Both must
//! be called inside an actix system (`actix_web::rt::System`); [`spawn`] runs one on a
//! thread of its own for programs that are not actix themselves (tests, benches).
//!
//! # Layout
//! - `compose`: the composition root: what [`start`] opens and wires together, in order.
//! - `running`: [`Running`] and its ordered shutdown; [`Background`], a server on a thread.
//! - [`config`]: [`ServerConfig`], from TOML and `STOCKADE_*` variables.
//! - [`auth`]: bearer tokens, roles, constant-time checks, first-start token generation.
//! - [`routes`]: the route table, request shedding and HTTP metrics, the handlers.
//! - `stream`: the one feed behind SSE and WebSocket (replay, then live, then resync).
//! - `keys`: idempotency-key fingerprints, so a key cannot be reused for another request.
//! - `body`: bounded reads of JSON bodies, with 400 / 413 / 422 told apart.
//! - `error`: [`stockade_wire::ApiError`] as an HTTP response.
//! - `state`: what the handlers share.
//! - `telemetry`: the Prometheus recorder.

pub mod auth;
mod body;
mod compose;
pub mod config;
mod error;
pub mod host;
mod keys;
mod limit;
pub mod routes;
mod running;
mod state;
mod stream;
mod telemetry;

pub use auth::Generated;
pub use compose::{start, start_headless};
pub use config::{ConfigError, ServerConfig};
pub use running::{Background, Running, spawn};

/// Read models, beside the log in the data directory.
pub const PROJECTIONS_FILE: &str = "projections.db";
/// Idempotency-key fingerprints of the HTTP layer.
pub const KEYS_FILE: &str = "http.db";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("open the engine: {0}")]
    Engine(#[from] stockade_engine::Error),
    #[error("open the read models: {0}")]
    ReadModels(String),
    #[error("{0}")]
    Io(String),
}
