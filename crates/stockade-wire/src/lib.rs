//! The JSON shapes Stockade speaks, in one place, so that HTTP, SSE, WebSocket, MCP and the
//! CLI cannot drift apart.
//!
//! # Layout
//! - [`request`]: what callers send. Requests are strict: an unknown field is an error, not
//!   an option silently ignored, and every value is checked here before the engine sees it.
//! - [`response`]: what callers get back. Responses may gain fields; they never rename one.
//! - [`error`]: [`ApiError`], one error type with a stable [`Code`], a sentence for people,
//!   and a [`ErrorKind`] that each channel maps to one status (HTTP) or one tool error (MCP).
//! - [`code`]: [`Code`], every error code any channel sends, in one list.
//! - [`webhook`]: the body of a webhook call (camelCase, as `docs/notices.md` documents).
//!
//! Conventions: times are RFC 3339 UTC strings with milliseconds
//! (`2026-11-27T09:00:00.000Z`); quantities are JSON integers; an unlimited quantity
//! (a digital SKU without a licence cap) is `null`.

pub mod code;
pub mod error;
pub mod request;
pub mod response;
pub mod webhook;

pub use code::Code;
pub use error::{ApiError, ErrorKind};
pub use request::{
    AdjustRequest, AmendItem, AmendRequest, BackorderLimitRequest, ComponentIn, ExtendRequest,
    FairSellingRequest, Item, JoinWaitlistRequest, LocationIn, PartItem, PoolName, ReceiptRequest,
    ReceiveReceiptRequest, RegisterSkuRequest, ReserveRequest, ResolveRequest, StrategyName,
    TransferRequest,
};
pub use response::{
    AdjustedOut, BackorderLimitOut, ChangedOut, ComponentOut, CountOut, DeadLetterOut,
    DeadLetterReplayOut, EndpointReplayOut, FairSellingOut, FilledOut, LineFailureOut, LineOut,
    LineStateOut, LocationOut, NoticeOut, Page, PartOut, PurchaseLimitOut, ReceiptOut,
    ReservationOut, ReservationStatusOut, ResolvedOut, StockOut, StreamMessage, TransferOut,
    WaitlistLeftOut, WaitlistPlaceOut,
};
