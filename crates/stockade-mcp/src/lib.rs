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
//! The MCP server itself (tools over stdio and streamable HTTP) is built on these; see
//! `docs/research/rmcp-notes.md` for the SDK notes.
//!
//! # Layout
//! - [`policy`]: cache-control policies from a TOML file; glob matching of tool names.
//! - [`ledger`]: [`ReadLedger`], a session's reads and the notices that made them stale.

pub mod ledger;
pub mod policy;

pub use ledger::{ReadLedger, StaleRead};
pub use policy::{CacheDirective, Policy, PolicyError};
