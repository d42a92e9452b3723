//! `stockade dlq list | replay`: the notices a webhook endpoint gave up on, and sending
//! them again once the endpoint works.
//!
//! Replay sends each dead letter once, oldest first, signed as the dispatcher signs; the
//! delivered leave the queue and the others stay with their new error. The endpoints (URL
//! and secret) come from the same `--config` file `stockade serve` takes. It is safe beside
//! a running server: the dispatchers never touch the queue once a letter is in it.

use clap::{Args, Subcommand};
use stockade_projections::ReadModels;
use stockade_projections::db::DeadLetter;
use stockade_projections::webhook::{Endpoint, Sender, replay_dead_letters};
use stockade_wire::{DeadLetterReplayOut, EndpointReplayOut};

use crate::log::{Format, LogArgs, json};
use crate::report::Table;

#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// The dead letters, oldest first.
    List(DlqArgs),
    /// Send every dead letter again, once; exit status 1 if any still fails.
    Replay(DlqArgs),
}

/// What both `dlq` commands take.
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Only this endpoint's letters (its name in the config, e.g. `marketplace`).
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// The dead-letter channel of an endpoint, as the dispatcher names it.
fn channel_of(endpoint: &str) -> String {
    format!("webhook:{endpoint}")
}

async fn models(log: &LogArgs) -> Result<ReadModels, String> {
    log.open_models().await?.ok_or_else(|| {
        "no read models in the data directory (is --data-dir the server's?)".to_owned()
    })
}

/// The report, and whether nothing is left failing.
pub async fn run(command: Dlq) -> Result<(String, bool), String> {
    match command {
        Dlq::List(args) => list(args).await.map(|text| (text, true)),
        Dlq::Replay(args) => replay(args).await,
    }
}

async fn list(args: DlqArgs) -> Result<String, String> {
    let models = models(&args.log).await?;
    let channel = args.endpoint.as_deref().map(channel_of);
    let letters = models
        .dead_letters(channel.as_deref())
        .await
        .map_err(|e| format!("read the dead letters: {e}"))?;
    Ok(match args.format {
        Format::Json => json(
            &letters
                .iter()
                .map(stockade_wire::DeadLetterOut::from)
                .collect::<Vec<_>>(),
        )?,
        Format::Csv => {
            let mut out = crate::log::csv_line(&[
                "id",
                "endpoint",
                "seq",
                "sku",
                "version",
                "attempts",
                "failed_at",
                "error",
            ]);
            out.push('\n');
            for l in &letters {
                out.push_str(&crate::log::csv_line(&cells(l)));
                out.push('\n');
            }
            out
        }
        Format::Table => {
            if letters.is_empty() {
                return Ok("The dead-letter queue is empty.".into());
            }
            let mut t = Table::new([
                "id",
                "endpoint",
                "seq",
                "sku",
                "version",
                "attempts",
                "failed at",
                "error",
            ])
            .text_columns(&[1, 3, 6, 7]);
            for l in &letters {
                t.row(cells(l));
            }
            format!("{} dead letter(s)\n\n{}", letters.len(), t.render())
        }
    })
}

fn cells(l: &DeadLetter) -> [String; 8] {
    [
        l.id.to_string(),
        l.channel
            .strip_prefix("webhook:")
            .unwrap_or(&l.channel)
            .to_owned(),
        l.notice.seq.to_string(),
        l.notice.sku.to_string(),
        l.notice.version.to_string(),
        l.attempts.to_string(),
        l.failed_at.to_string(),
        l.error.clone(),
    ]
}

async fn replay(args: DlqArgs) -> Result<(String, bool), String> {
    if args.format == Format::Csv {
        return Err("dlq replay prints a table or JSON".into());
    }
    let config = args.log.server_config()?;
    if let Some(name) = &args.endpoint
        && !config.webhooks.iter().any(|w| &w.name == name)
    {
        return Err(format!("no webhook named {name:?} in the configuration"));
    }
    let models = models(&args.log).await?;
    let mut endpoints = Vec::new();
    // Dead letters of endpoints the config no longer has: left in the queue.
    let mut unconfigured = Vec::new();
    for hook in &config.webhooks {
        if args.endpoint.as_ref().is_some_and(|n| n != &hook.name) {
            continue;
        }
        let endpoint = Endpoint::new(&hook.name, &hook.url, &hook.secret);
        let sender = Sender::new(endpoint, stockade_wire::webhook::body)
            .map_err(|e| format!("webhook {}: {e}", hook.name))?;
        let report = replay_dead_letters(&models, &sender)
            .await
            .map_err(|e| format!("replay webhook {}: {e}", hook.name))?;
        endpoints.push(EndpointReplayOut::new(&hook.name, &report));
    }
    if args.endpoint.is_none() {
        let all = models
            .dead_letters(None)
            .await
            .map_err(|e| format!("read the dead letters: {e}"))?;
        for letter in all {
            let known = config
                .webhooks
                .iter()
                .any(|w| channel_of(&w.name) == letter.channel);
            if !known && !unconfigured.contains(&letter.channel) {
                unconfigured.push(letter.channel);
            }
        }
    }
    let clean = endpoints.iter().all(|e| e.still_failing == 0) && unconfigured.is_empty();
    let output = DeadLetterReplayOut {
        endpoints,
        unconfigured: Some(unconfigured),
    };
    let text = match args.format {
        Format::Json => json(&output)?,
        _ => {
            let mut t = Table::new(["endpoint", "delivered", "still failing"]);
            for e in &output.endpoints {
                t.row([
                    e.endpoint.clone(),
                    e.delivered.to_string(),
                    e.still_failing.to_string(),
                ]);
            }
            let mut out = if output.endpoints.is_empty() {
                "No webhook endpoints are configured (pass the server's --config).\n".to_owned()
            } else {
                t.render()
            };
            for channel in output.unconfigured.iter().flatten() {
                out.push_str(&format!(
                    "{channel}: dead letters kept; the configuration has no such endpoint\n"
                ));
            }
            out
        }
    };
    Ok((text, clean))
}
