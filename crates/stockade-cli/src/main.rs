//! The `stockade` command: `serve`, `mcp` and `simulate flash-sale`.
//!
//! Exit status: 0 when the command did what it says; 1 when it ran but a check failed
//! (an oversell, an acknowledged reservation missing from the log); 2 for bad usage or an
//! error that stopped it (one line on stderr).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// mimalloc, not glibc's malloc: the server allocates per request, and this measured
/// about 30% more reservations/s over HTTP (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod mcp;
mod report;
mod serve;
mod simulate;

#[derive(Debug, Parser)]
#[command(
    name = "stockade",
    version,
    about = "Event-sourced inventory reservations"
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Serve the REST API, live SSE / WebSocket push, MCP at /mcp, /metrics and the dashboard.
    Serve(serve::Serve),
    /// Serve the MCP tools on stdin/stdout for an assistant (optionally HTTP as well).
    Mcp(mcp::Mcp),
    /// Rehearse contention before the real day.
    #[command(subcommand)]
    Simulate(Simulation),
}

#[derive(Debug, Subcommand)]
enum Simulation {
    /// Concurrent buyers reserve, commit or abandon; the log is then checked for oversells.
    FlashSale(simulate::FlashSale),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Warnings and errors on stderr. The EventStoreDB client's own logs are off: it logs
    // every failed connection attempt, which the backend already reports in its errors.
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("kurrentdb", LevelFilter::OFF);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(LevelFilter::WARN)
        .finish()
        .with(filter)
        .init();
    match cli.command {
        Top::Serve(args) => match serve::run(args, |banner| emit(banner.0.trim_end())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Top::Mcp(args) => match mcp::run(args, |banner| eprintln!("{banner}")) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Top::Simulate(Simulation::FlashSale(args)) => {
            let json = args.json();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return fail(&format!("start the runtime: {e}")),
            };
            match runtime.block_on(simulate::run(args)) {
                Ok(report) => {
                    if json {
                        match serde_json::to_string(&report) {
                            Ok(line) => emit(&line),
                            Err(e) => return fail(&format!("render the report: {e}")),
                        }
                    } else {
                        emit(report.table().trim_end());
                    }
                    if report.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => fail(&e),
            }
        }
    }
}

/// Writes the command's result to stdout (the one place this binary prints to it). A
/// reader that has gone (`stockade serve | head -3`) is not a reason to stop serving, so
/// a failed write is ignored rather than a panic.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
