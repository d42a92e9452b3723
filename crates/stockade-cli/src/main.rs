//! The `stockade` command: `serve`, `mcp`, `simulate`, and the operator tools `replay`,
//! `audit`, `audit verify`, `reconcile` and `dlq`.
//!
//! Exit status: 0 when the command did what it says; 1 when it ran but a check failed
//! (an oversell, an acknowledged reservation missing from the log, a violated invariant, a
//! refused count, a dead letter still failing); 2 for bad usage or an error that stopped
//! it (one line on stderr).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, not glibc's malloc: the server allocates per request, and this measured
/// about 30% more reservations/s over HTTP (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod audit;
mod dlq;
mod fairness;
mod log;
mod logs;
mod mcp;
mod multichannel;
mod reconcile;
mod replay;
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
    /// The stock of every SKU (or one) at a past instant or log position, from the log alone.
    Replay(replay::Replay),
    /// The history of stock: when, what, who, why, before and after. `audit verify`
    /// checks the whole log against its invariants.
    Audit(audit::Audit),
    /// Compare the read models with the log and repair them; apply physical counts.
    Reconcile(reconcile::Reconcile),
    /// The webhook dead-letter queue.
    #[command(subcommand)]
    Dlq(dlq::Dlq),
}

#[derive(Debug, Subcommand)]
enum Simulation {
    /// Concurrent buyers reserve, commit or abandon; the log is then checked for oversells.
    FlashSale(simulate::FlashSale),
    /// Channels (web, marketplace, POS, assistant) acting on their own copy of the stock,
    /// kept by push or by polling, in virtual time: phantom stock, staleness, leakage.
    Multichannel(multichannel::Multichannel),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and --version print in full; a usage error is one line, exit status 2.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A command group without its subcommand: the group's help, as a usage error.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let line = rendered.lines().next().unwrap_or("error: bad usage");
            eprintln!("{} (see --help)", line.trim_end());
            return ExitCode::from(2);
        }
    };
    logs::init();
    match cli.command {
        Top::Serve(args) => match serve::run(args, |banner| emit(banner.0.trim_end())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Top::Mcp(args) => match mcp::run(args, |banner| eprintln!("{banner}")) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Top::Replay(args) => finish(block_on(replay::run(args)).map(|text| (text, true))),
        Top::Audit(args) => finish(block_on(audit::run(args))),
        Top::Reconcile(args) => finish(block_on(reconcile::run(args))),
        Top::Dlq(args) => finish(block_on(dlq::run(args))),
        Top::Simulate(Simulation::Multichannel(args)) => {
            let json = args.json();
            match block_on(multichannel::run(args)) {
                Ok(report) => {
                    let text = if json {
                        match serde_json::to_string(&report) {
                            Ok(line) => line,
                            Err(e) => return fail(&format!("render the report: {e}")),
                        }
                    } else {
                        report.table()
                    };
                    finish(Ok((text, report.passed())))
                }
                Err(e) => fail(&e),
            }
        }
        Top::Simulate(Simulation::FlashSale(args)) => {
            let json = args.json();
            match block_on(simulate::run(args)) {
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

/// Runs `work` on a multi-threaded runtime (the stores read on blocking threads).
fn block_on<T>(work: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start the runtime: {e}"))?
        .block_on(work)
}

/// Prints a tool's report; exit status 1 when it found a problem.
fn finish(outcome: Result<(String, bool), String>) -> ExitCode {
    match outcome {
        Ok((text, clean)) => {
            // Empty when the tool streamed its output itself.
            if !text.is_empty() {
                emit(text.trim_end());
            }
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(&e),
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
