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
//! - [`config`]: [`ServerConfig`], from TOML and `STOCKADE_*` variables.
//! - [`auth`]: bearer tokens, roles, constant-time checks, first-start token generation.
//! - [`routes`]: the route table, request shedding and HTTP metrics, the handlers.
//! - `stream`: the one feed behind SSE and WebSocket (replay, then live, then resync).
//! - `keys`: idempotency-key fingerprints, so a key cannot be reused for another request.
//! - `body`: bounded reads of JSON bodies, with 400 / 413 / 422 told apart.
//! - `error`: [`stockade_wire::ApiError`] as an HTTP response.
//! - `state`: what the handlers share.
//! - `telemetry`: the Prometheus recorder.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpServer, middleware, web};
use stockade_engine::{Inventory, InventoryConfig};
use stockade_projections::reconcile::Reconciler;
use stockade_projections::webhook::{Dispatcher, Endpoint, RetryPolicy};
use stockade_projections::{NoticeHub, Projector, ReadModels};
use tokio::sync::watch;

pub mod auth;
mod body;
pub mod config;
mod error;
pub mod host;
mod keys;
mod limit;
pub mod routes;
mod state;
mod stream;
mod telemetry;

pub use auth::Generated;
pub use config::{ConfigError, ServerConfig};

/// Read models, beside the log in the data directory.
pub const PROJECTIONS_FILE: &str = "projections.db";
/// Idempotency-key fingerprints of the HTTP layer.
pub const KEYS_FILE: &str = "http.db";
/// How long in-flight requests get to finish once shutdown begins.
const GRACE: Duration = Duration::from_secs(10);
/// How long the projector gets to reach the end of the log at shutdown.
const FLUSH: Duration = Duration::from_secs(5);

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

/// A server that is listening (or, from [`start_headless`], running without HTTP).
pub struct Running {
    addr: Option<SocketAddr>,
    generated: Option<Generated>,
    server: Option<actix_web::dev::Server>,
    mcp_cancel: tokio_util::sync::CancellationToken,
    state: Arc<state::AppState>,
    stop_streams: watch::Sender<bool>,
    stop_background: watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Opens the engine and read models in `config.data_dir`, starts the projector (and any
/// webhooks and the reconciler), and listens on `listener`.
pub async fn start(config: ServerConfig, listener: TcpListener) -> Result<Running, StartError> {
    open(config, Some(listener)).await
}

/// Everything [`start`] runs but the HTTP server: for `stockade mcp` over stdio, whose
/// only client is the process that started it.
pub async fn start_headless(config: ServerConfig) -> Result<Running, StartError> {
    open(config, None).await
}

async fn open(
    mut config: ServerConfig,
    listener: Option<TcpListener>,
) -> Result<Running, StartError> {
    config.validate()?;
    // Before anything is opened: an invalid policy stops start-up with its message.
    let policy = config.mcp.policy()?;
    let data_dir = config.data_dir.clone();
    stockade_store::files::private_dir(&data_dir)
        .map_err(|e| StartError::Io(format!("create {}: {e}", data_dir.display())))?;
    writable(&data_dir)?;
    let generated = auth::ensure_tokens(&mut config.auth, &data_dir)?;
    let tokens = auth::Tokens::from_config(&config.auth)?;
    telemetry::handle();

    let store = config.store.to_engine(&data_dir)?;
    let mut engine = config.engine.to_engine();
    engine.resolve = config.auth.resolve_policy()?;
    // Configured (shared by nodes on one store), else kept in the data directory.
    engine.id_secret = Some(match config.auth.id_secret()? {
        Some(secret) => secret,
        None => stockade_engine::IdSecret::load_or_create(&data_dir)?,
    });
    let inventory = Inventory::open(InventoryConfig::with_store(store).engine(engine)).await?;
    let models = open_models(&data_dir.join(PROJECTIONS_FILE)).await?;
    let keys = keys::RequestKeys::open(&data_dir.join(KEYS_FILE)).map_err(StartError::Io)?;
    let hub = NoticeHub::new();

    let (stop_streams, streams_rx) = watch::channel(false);
    let (stop_background, background_rx) = watch::channel(false);
    let stopped = |rx: &watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut background = Vec::new();
    // The projector follows the whole log, appends of operator tools included: it tells
    // the engine, whose actors then re-read what they missed.
    let observed = inventory.clone();
    let projector = Projector::new(inventory.store(), models.clone(), hub.clone())
        .observe(move |sku, version| observed.observe(sku, version));
    background.push(actix_web::rt::spawn(projector.run(stopped(&background_rx))));
    for hook in &config.webhooks {
        let endpoint = Endpoint {
            coalesce: hook.coalesce_ms.map(Duration::from_millis),
            ..Endpoint::new(&hook.name, &hook.url, &hook.secret)
        };
        let dispatcher = Dispatcher::new(
            models.clone(),
            hub.clone(),
            endpoint,
            RetryPolicy::default(),
        )
        .map_err(|e| StartError::Io(format!("webhook {}: {e}", hook.name)))?;
        background.push(actix_web::rt::spawn(
            dispatcher.run(stopped(&background_rx)),
        ));
    }
    if config.reconcile.every_seconds > 0 {
        let reconciler = Reconciler::new(inventory.store(), models.clone());
        let every = Duration::from_secs(config.reconcile.every_seconds);
        background.push(actix_web::rt::spawn(
            reconciler.run(every, stopped(&background_rx)),
        ));
    }

    let mcp_backend = Arc::new(stockade_mcp::Backend::new(
        inventory.clone(),
        models.clone(),
        hub.clone(),
        policy,
    ));
    let mcp_cancel = tokio_util::sync::CancellationToken::new();
    let listen = match &listener {
        Some(l) => l
            .local_addr()
            .map_err(|e| StartError::Io(format!("read the listener's address: {e}")))?,
        None => config.listen,
    };
    let (allowed_hosts, allowed_origins) = config.mcp.allowed(listen);
    // Pages of the origins allowed to read stock cross-origin pass the Origin check too.
    let mut checked_origins = allowed_origins.clone();
    if !checked_origins.is_empty() {
        checked_origins.extend(config.cors.allowed_origins.iter().cloned());
    }
    let host_check = host::HostCheck::new(allowed_hosts.clone(), checked_origins);
    let mcp = config.mcp.enabled.then(|| {
        state::McpService(stockade_mcp::http_service(
            mcp_backend.clone(),
            stockade_mcp::HttpOptions {
                session_idle: Duration::from_secs(config.mcp.session_idle_seconds),
                allowed_hosts,
                allowed_origins,
                cancel: mcp_cancel.clone(),
            },
        ))
    });

    let workers = config.limits.workers;
    let anonymous_per_second = config.limits.anonymous_per_second;
    let state = Arc::new(state::AppState {
        config,
        inventory,
        models,
        hub,
        tokens,
        keys,
        thresholds: Default::default(),
        in_flight: AtomicUsize::new(0),
        anonymous_in_flight: AtomicUsize::new(0),
        streams: AtomicUsize::new(0),
        stop_streams: streams_rx,
        closing: AtomicBool::new(false),
        mcp_backend,
        mcp,
        mcp_sessions: Default::default(),
        host_check,
        anonymous_limit: limit::AnonymousLimit::new(anonymous_per_second),
    });
    let (addr, server) = match listener {
        Some(listener) => {
            let addr = listener
                .local_addr()
                .map_err(|e| StartError::Io(format!("read the listener's address: {e}")))?;
            let data = web::Data::from(state.clone());
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .wrap(middleware::from_fn(routes::guard))
                    .configure(routes::configure)
            })
            .workers(workers)
            .backlog(4096)
            .disable_signals()
            .shutdown_timeout(GRACE.as_secs())
            .listen(listener)
            .map_err(|e| StartError::Io(format!("listen on {addr}: {e}")))?
            .run();
            (Some(addr), Some(server))
        }
        None => (None, None),
    };
    Ok(Running {
        addr,
        generated,
        server,
        mcp_cancel,
        state,
        stop_streams,
        stop_background,
        background,
    })
}

/// Refuses a data directory the server cannot write (a read-only mount, wrong owner)
/// with that reason, before SQLite reports it as "unable to open database file".
fn writable(dir: &Path) -> Result<(), StartError> {
    let probe = dir.join(".stockade-write-check");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            StartError::Io(format!(
                "the data directory {} is not writable: {e}",
                dir.display()
            ))
        })
}

async fn open_models(path: &Path) -> Result<ReadModels, StartError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || ReadModels::open(&path))
        .await
        .map_err(|e| StartError::ReadModels(e.to_string()))?
        .map_err(|e| StartError::ReadModels(e.to_string()))
}

impl Running {
    /// Where the server listens (the real port when bound to port 0); `None` headless.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// What MCP sessions share, for serving MCP over stdio from this process.
    pub fn mcp_backend(&self) -> Arc<stockade_mcp::Backend> {
        self.state.mcp_backend.clone()
    }

    /// Tokens generated at this first start, to show once; `None` on later starts.
    pub fn generated_tokens(&self) -> Option<&Generated> {
        self.generated.as_ref()
    }

    /// Serves until `shutdown` completes (or the server fails), then shuts down in order.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
        let Running {
            server,
            state,
            stop_streams,
            stop_background,
            background,
            mcp_cancel,
            ..
        } = self;
        let served = match server {
            Some(server) => {
                let handle = server.handle();
                let mut server = std::pin::pin!(server);
                let served = tokio::select! {
                    result = &mut server => Some(result),
                    () = shutdown => None,
                };
                // Stop accepting; readiness fails and streams end, so the grace period
                // is spent only on requests that can finish.
                state.closing.store(true, Ordering::Release);
                let _ = stop_streams.send(true);
                mcp_cancel.cancel();
                match served {
                    Some(result) => result,
                    None => {
                        // The server future runs the stop: poll both, or the stop never
                        // completes.
                        let ((), result) = tokio::join!(handle.stop(true), &mut server);
                        result
                    }
                }
            }
            None => {
                shutdown.await;
                state.closing.store(true, Ordering::Release);
                Ok(())
            }
        };
        // Every request is answered; now the engine answers the appends in flight.
        state.inventory.clone().shutdown().await;
        let store = state.inventory.store();
        // Every wait below is bounded: a store that stopped answering, or a reconciliation
        // pass in progress, must not keep the process from exiting.
        let deadline = tokio::time::Instant::now() + FLUSH;
        let caught_up = async {
            loop {
                match (store.head().await, state.models.checkpoint().await) {
                    (Ok(head), Ok(at)) if at.position >= head => return,
                    (Ok(_), Ok(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
                    _ => return,
                }
            }
        };
        if tokio::time::timeout_at(deadline, caught_up).await.is_err() {
            tracing::warn!("shutdown: the projector had not reached the end of the log");
        }
        let _ = stop_background.send(true);
        let deadline = tokio::time::Instant::now() + FLUSH;
        for mut task in background {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("shutdown: a background task did not stop in time");
                task.abort();
            }
        }
        served.map_err(|e| StartError::Io(format!("serve: {e}")))
    }
}

/// A server on a thread of its own, with its own actix system; stopped (gracefully) by
/// [`Background::stop`] or when dropped.
pub struct Background {
    addr: SocketAddr,
    generated: Option<Generated>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), StartError>>>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts a server on a new thread and returns once it listens (or failed to start).
pub fn spawn(config: ServerConfig, listener: TcpListener) -> Result<Background, StartError> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("stockade-serve".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let running = match start(config, listener).await {
                    Ok(running) => running,
                    Err(e) => {
                        let message = e.to_string();
                        let _ = ready_tx.send(Err(e));
                        return Err(StartError::Io(message));
                    }
                };
                let Some(addr) = running.addr else {
                    let _ = ready_tx.send(Err(StartError::Io("no listener".into())));
                    return Err(StartError::Io("no listener".into()));
                };
                let _ = ready_tx.send(Ok((addr, running.generated.clone())));
                running
                    .run_until(async move {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        })
        .map_err(|e| StartError::Io(format!("start the server thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok((addr, generated))) => Ok(Background {
            addr,
            generated,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(StartError::Io(
            "the server thread ended while starting".into(),
        )),
    }
}

impl Background {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn generated_tokens(&self) -> Option<&Generated> {
        self.generated.as_ref()
    }

    /// Shuts down gracefully and waits for the thread.
    pub fn stop(mut self) -> Result<(), StartError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StartError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| StartError::Io("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
