//! What the operator tools share: which log to open, and how results are rendered.
//!
//! The tools read the log a server writes (SQLite in the data directory, or EventStoreDB or
//! PostgreSQL from the same `--config` file or `STOCKADE_*` variables `stockade serve`
//! takes). They may run beside a running
//! server: SQLite readers do not block its writer, and the few tools that write go through
//! the engine's expected-revision checks like any other writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use stockade_engine::{SQLITE_FILE, StoreConfig};
use stockade_esdb::EsdbStore;
use stockade_projections::ReadModels;
use stockade_store::{EventStore, SqliteStore};

/// The read models' file in the data directory.
pub const PROJECTIONS_FILE: &str = "projections.db";

/// Where the log is.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// The server's data directory [default: ./data, or STOCKADE_DATA_DIR].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The server's TOML settings, for an EventStoreDB log or webhook endpoints.
    #[arg(long, env = "STOCKADE_CONFIG")]
    pub config: Option<PathBuf>,
}

impl LogArgs {
    /// The settings `stockade serve` would use with these arguments.
    pub fn server_config(&self) -> Result<stockade_server::ServerConfig, String> {
        crate::serve::load_config(self.config.as_deref(), None, self.data_dir.clone(), None)
    }

    /// The engine's store settings; the SQLite log must already exist.
    pub fn store_config(&self) -> Result<(StoreConfig, PathBuf), String> {
        let config = self.server_config()?;
        let store = config
            .store
            .to_engine(&config.data_dir)
            .map_err(|e| e.to_string())?;
        if let StoreConfig::Sqlite { data_dir } = &store {
            let path = data_dir.join(SQLITE_FILE);
            if !path.is_file() {
                return Err(format!(
                    "no log at {} (is --data-dir the server's data directory?)",
                    path.display()
                ));
            }
        }
        Ok((store, config.data_dir))
    }

    /// Opens the log for reading.
    pub async fn open_store(&self) -> Result<Arc<dyn EventStore>, String> {
        match self.store_config()?.0 {
            StoreConfig::Sqlite { data_dir } => {
                let path = data_dir.join(SQLITE_FILE);
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(path))
                    .await
                    .map_err(|e| format!("open the log: {e}"))?
                    .map_err(|e| format!("open the log: {e}"))?;
                Ok(Arc::new(store))
            }
            StoreConfig::EventStoreDb(config) => Ok(Arc::new(
                EsdbStore::connect(config)
                    .await
                    .map_err(|e| format!("connect to EventStoreDB: {e}"))?,
            )),
            StoreConfig::Postgres(config) => Ok(Arc::new(
                stockade_postgres::PostgresStore::connect(config)
                    .await
                    .map_err(|e| format!("connect to PostgreSQL: {e}"))?,
            )),
            other => Err(format!(
                "cannot open a {other:?} store from the command line"
            )),
        }
    }

    /// Opens the read models, if the data directory has them.
    pub async fn open_models(&self) -> Result<Option<ReadModels>, String> {
        let config = self.server_config()?;
        open_models_in(&config.data_dir).await
    }
}

/// Opens `dir`'s read models if the file exists (never creates one).
pub async fn open_models_in(dir: &Path) -> Result<Option<ReadModels>, String> {
    let path = dir.join(PROJECTIONS_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || ReadModels::open(&path))
        .await
        .map_err(|e| format!("open {shown}: {e}"))?
        .map(Some)
        .map_err(|e| format!("open {shown}: {e}"))
}

/// How a tool prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, for a person.
    Table,
    /// JSON, for jq and other programs.
    Json,
    /// Comma-separated values with a header, for spreadsheets.
    Csv,
}

/// One CSV line: fields quoted when they hold a comma, a quote or a line break.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            let f = f.as_ref();
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_owned()
            }
        })
        .collect();
    quoted.join(",")
}

/// Pretty JSON, or the reason it could not be rendered.
pub fn json<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| format!("render JSON: {e}"))
}

/// A quantity that may be unlimited.
pub fn qty(q: Option<u64>) -> String {
    q.map_or_else(|| "unlimited".to_owned(), |q| q.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(
            csv_line(&["a", "b,c", "say \"hi\""]),
            "a,\"b,c\",\"say \"\"hi\"\"\""
        );
    }
}
