//! `stockade mcp`: the MCP tools on stdin/stdout, for an assistant that starts Stockade
//! as a subprocess (Claude Desktop, an agent framework).
//!
//! The process opens the data directory itself, so it is the only writer of that log
//! (the SQLite store takes the directory for one process). Other channels reach the same
//! engine through `--listen`, which also serves the REST API, the live streams, the
//! dashboard and `/mcp` from this process. stdout carries the protocol and nothing
//! else; the banner and logs go to stderr.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use clap::Args;
use stockade_domain::{Channel, Principal};
use stockade_mcp::{Access, McpCaller};

#[derive(Debug, Args)]
pub struct Mcp {
    /// Directory of the log and read models [default: ./data, or STOCKADE_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML file of settings, as for `stockade serve` (its [mcp] section included).
    #[arg(long, env = "STOCKADE_CONFIG")]
    config: Option<PathBuf>,
    /// Also serve HTTP on this address (REST, live streams, dashboard, /mcp), so the web
    /// shop, the POS and dashboards share this engine.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The sales channel this assistant's orders are recorded under.
    #[arg(long, default_value = "assistant")]
    channel: String,
    /// A cache-control policy file (TOML) [default: the built-in policy].
    #[arg(long)]
    policy: Option<PathBuf>,
}

/// Serves MCP on stdio until the client closes stdin (or a signal), then shuts down
/// gracefully. `announce` gets the banner (for stderr).
pub fn run(args: Mcp, announce: impl FnOnce(&str)) -> Result<(), String> {
    let mut config =
        crate::serve::load_config(args.config.as_deref(), args.listen, args.data_dir, None)?;
    if let Some(policy) = args.policy {
        config.mcp.policy_file = Some(policy);
    }
    let channel = Channel::new(args.channel.as_str()).map_err(|e| format!("--channel: {e}"))?;
    let principal = Principal::new("local").map_err(|e| e.to_string())?;
    let listener = match args.listen {
        Some(addr) => Some(TcpListener::bind(addr).map_err(|e| format!("listen on {addr}: {e}"))?),
        None => None,
    };
    let data_dir = config.data_dir.clone();
    let saved_tokens = crate::serve::saved_tokens(&config);
    actix_web::rt::System::new().block_on(async move {
        let stop = crate::serve::signals()?;
        let running = match listener {
            Some(listener) => stockade_server::start(config, listener).await,
            None => stockade_server::start_headless(config).await,
        }
        .map_err(|e| e.to_string())?;
        let mut banner = crate::serve::banner(&running, &data_dir, saved_tokens).0;
        banner.insert_str(
            0,
            &format!("stockade mcp: MCP on stdio, orders as channel {channel}\n"),
        );
        announce(banner.trim_end());
        let caller = McpCaller {
            access: Access::Local(channel),
            principal: Some(principal),
        };
        let served = stockade_mcp::serve_stdio(running.mcp_backend(), caller);
        let outcome = std::rc::Rc::new(std::cell::RefCell::new(Ok(())));
        let seen = outcome.clone();
        running
            .run_until(async move {
                tokio::select! {
                    result = served => *seen.borrow_mut() = result,
                    () = stop => {}
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        outcome.replace(Ok(()))
    })
}
