//! The composition root: [`start`] opens the data directory's log, read models and key
//! store, starts the projector, webhooks and reconciler, and puts the HTTP server and MCP
//! in front of them, in that order, so that nothing serves before what it reads exists.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use actix_web::{App, HttpServer, middleware, web};
use stockade_engine::{Inventory, InventoryConfig};
use stockade_projections::reconcile::Reconciler;
use stockade_projections::webhook::{Dispatcher, Endpoint, RetryPolicy, Sender};
use stockade_projections::{NoticeHub, Projector, ReadModels};
use tokio::sync::watch;

use crate::running::{GRACE, Running};
use crate::{
    KEYS_FILE, PROJECTIONS_FILE, ServerConfig, StartError, auth, host, keys, limit, routes, state,
    telemetry,
};

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

    // A PostgreSQL log is opened here rather than by the engine: its database also keeps
    // the idempotency keys, shared by every node of the log. Other stores keep them in
    // the data directory.
    let (store, keys) = match config.store.to_engine(&data_dir)? {
        stockade_engine::StoreConfig::Postgres(pg) => {
            let store = stockade_postgres::PostgresStore::connect(pg)
                .await
                .map_err(|e| StartError::Io(format!("open the PostgreSQL log: {e}")))?;
            let keys = keys::RequestKeys::shared(store.request_keys());
            (stockade_engine::StoreConfig::Custom(Arc::new(store)), keys)
        }
        other => (
            other,
            keys::RequestKeys::open(&data_dir.join(KEYS_FILE)).map_err(StartError::Io)?,
        ),
    };
    let mut engine = config.engine.to_engine();
    engine.resolve = config.auth.resolve_policy()?;
    // Configured (shared by nodes on one store), else kept in the data directory.
    engine.id_secret = Some(match config.auth.id_secret()? {
        Some(secret) => secret,
        None => stockade_engine::IdSecret::load_or_create(&data_dir)?,
    });
    let inventory = Inventory::open(InventoryConfig::with_store(store).engine(engine)).await?;
    let models = open_models(&data_dir.join(PROJECTIONS_FILE)).await?;
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
        let sender = Sender::new(endpoint, stockade_wire::webhook::body)
            .map_err(|e| StartError::Io(format!("webhook {}: {e}", hook.name)))?;
        let dispatcher =
            Dispatcher::new(models.clone(), hub.clone(), sender, RetryPolicy::default());
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
