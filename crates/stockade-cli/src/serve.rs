//! `stockade serve`: the REST API, live push, MCP, metrics and dashboard over the embedded store.
//!
//! Settings come from `--config FILE` (TOML), then `STOCKADE_*` variables, then the flags
//! here; see `stockade_server::ServerConfig`. It serves until SIGTERM or Ctrl-C, then shuts
//! down gracefully: no new connections, requests in flight answered, appends in flight
//! made durable, the projector caught up with the log.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use clap::Args;
use stockade_server::ServerConfig;

#[derive(Debug, Args)]
pub struct Serve {
    /// Address to listen on [default: 127.0.0.1:8080, or STOCKADE_LISTEN].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory of the log, read models and generated tokens [default: ./data, or
    /// STOCKADE_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML file of settings (auth tokens, limits, webhooks, ...).
    #[arg(long, env = "STOCKADE_CONFIG")]
    config: Option<PathBuf>,
    /// The event store: sqlite (the default, in the data directory), postgres (with
    /// STOCKADE_PG_URL or [store] url; several nodes may share it) or eventstoredb (with
    /// STOCKADE_ESDB_URL) [default: [store] kind, or STOCKADE_STORE].
    #[arg(long)]
    store: Option<String>,
}

/// What the command reports before it starts serving.
pub struct Banner(pub String);

/// The settings: the file, then `STOCKADE_*`, then the flags. `store` (`--store`) is the
/// last word on the kind, as if it were `STOCKADE_STORE` set after every other variable,
/// so `STOCKADE_PG_URL` or `STOCKADE_ESDB_URL` then names the chosen kind's server.
pub fn load_config(
    file: Option<&std::path::Path>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    store: Option<&str>,
) -> Result<ServerConfig, String> {
    let mut config = match file {
        Some(path) => ServerConfig::from_file(path).map_err(|e| e.to_string())?,
        None => ServerConfig::default(),
    };
    if let Some(store) = store {
        // Checked here, so that a bad value is named as the flag it came from.
        let kind = stockade_server::config::StoreKind::parse(store)
            .map_err(|e| format!("--store: {}", e.0))?;
        // The file's URL is for the file's kind only.
        if kind != config.store.kind {
            config.store.url = None;
        }
    }
    let flag = store.map(|s| ("STOCKADE_STORE".to_owned(), s.to_owned()));
    config
        .apply_env(std::env::vars().chain(flag))
        .map_err(|e| e.to_string())?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    Ok(config)
}

/// Runs the server until a signal; `announce` is called once it listens.
pub fn run(args: Serve, announce: impl FnOnce(Banner)) -> Result<(), String> {
    let config = load_config(
        args.config.as_deref(),
        args.listen,
        args.data_dir,
        args.store.as_deref(),
    )?;
    let listener = TcpListener::bind(config.listen)
        .map_err(|e| format!("listen on {}: {e}", config.listen))?;
    let data_dir = config.data_dir.clone();
    let saved_tokens = saved_tokens(&config);
    actix_web::rt::System::new().block_on(async move {
        let stop = signals()?;
        let running = stockade_server::start(config, listener)
            .await
            .map_err(|e| e.to_string())?;
        announce(banner(&running, &data_dir, saved_tokens));
        running.run_until(stop).await.map_err(|e| e.to_string())
    })
}

/// Whether the tokens in use are those an earlier first start saved (which may have
/// failed after writing them): the banner then names the file instead of the tokens.
pub fn saved_tokens(config: &ServerConfig) -> bool {
    config.auth.is_empty()
        && config
            .data_dir
            .join(stockade_server::auth::TOKENS_FILE)
            .exists()
}

pub fn banner(
    running: &stockade_server::Running,
    data_dir: &std::path::Path,
    saved_tokens: bool,
) -> Banner {
    let mut text = match running.local_addr() {
        Some(addr) => format!(
            "stockade serve: listening on http://{addr}\n  dashboard  http://{addr}/\n  api        http://{addr}/api/inventory/products\n  mcp        http://{addr}/mcp\n  data       {}\n",
            data_dir.display()
        ),
        None => format!("  data       {}\n", data_dir.display()),
    };
    if let Some(tokens) = running.generated_tokens() {
        text.push_str(&format!(
            "  no tokens were configured, so these were generated (shown once; kept in {}, mode 0600):\n",
            data_dir.join(stockade_server::auth::TOKENS_FILE).display()
        ));
        for token in &tokens.admin_tokens {
            text.push_str(&format!("    admin        {token}\n"));
        }
        for (channel, token) in &tokens.channel_tokens {
            text.push_str(&format!("    channel {channel:<4} {token}\n"));
        }
    } else if saved_tokens {
        text.push_str(&format!(
            "  tokens     in {} (generated at the first start)\n",
            data_dir.join(stockade_server::auth::TOKENS_FILE).display()
        ));
    }
    text.push_str(
        "  stop with Ctrl-C or SIGTERM (graceful: requests and appends in flight finish)\n",
    );
    Banner(text)
}

/// A future that completes on SIGTERM or Ctrl-C (SIGINT). The handlers are installed
/// here, before the banner says the server is up, so a signal sent as soon as it is read
/// already shuts down gracefully instead of killing the process.
pub fn signals() -> Result<impl std::future::Future<Output = ()>, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| signal(kind).map_err(|e| format!("install a signal handler: {e}"));
        let mut term = install(SignalKind::terminate())?;
        let mut int = install(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            // A second signal while shutting down gracefully means "now".
            actix_web::rt::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                eprintln!("error: second signal: stopping without waiting for the shutdown");
                std::process::exit(130);
            });
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
