//! Stockade's LLM channel: what an assistant is told about the freshness of what it read.
//!
//! An assistant that quotes stock from its context after someone else changed it will
//! oversell. Two signals prevent that:
//! - a static one, per tool: every tool description ends with `[Cache-Control: no-store]`
//!   or `[Cache-Control: immutable]`, and a successful write's result begins with the
//!   scopes it invalidated ([`policy`]);
//! - a dynamic one, per session: the session remembers what it read at which version, and
//!   when any channel changes one of those SKUs, its next tool result begins with a block
//!   naming each stale read ([`ledger`]).
//!
//! The server is built on the official SDK (`rmcp`) and serves the same tools over stdio
//! (`stockade mcp`) and streamable HTTP (`/mcp` in `stockade serve`); `docs/mcp.md` says
//! how to connect.
//!
//! # Layout
//! - [`policy`]: cache-control policies from a TOML file; glob matching of tool names.
//! - [`ledger`]: [`ReadLedger`], a session's reads and the notices that made them stale.
//! - [`tools`]: the tool table and the argument shapes.
//! - [`session`]: one session's ledger, notice feed and resource subscriptions.
//! - [`server`]: [`StockadeMcp`], the handler; [`Backend`], what sessions share.
//! - [`transport`]: the HTTP service the bridge calls, and stdio.

pub mod ledger;
pub mod policy;
pub mod server;
pub mod session;
pub mod tools;
pub mod transport;

pub use ledger::{ReadLedger, StaleRead};
pub use policy::{CacheDirective, Policy, PolicyError};
pub use server::{Access, Backend, McpCaller, StockadeMcp};
pub use transport::{HttpOptions, HttpService, http_service, serve_stdio};
