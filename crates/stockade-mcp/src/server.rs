//! [`StockadeMcp`]: the MCP server handler — tools, resources and the notices every
//! result begins with.
//!
//! Every tool result is composed the same way, in this order:
//! 1. the session catches up with the log ([`Session::catch_up`]);
//! 2. if any read of this session went stale, the result begins with the stale-read block;
//! 3. if the call was a write that succeeded, the invalidation block of the policy follows;
//! 4. then the tool's own content, with `structuredContent` carrying versions and times.
//!
//! A tool that fails answers with `isError: true` and a sentence the model can act on
//! (never a JSON-RPC error): bad arguments, an unknown SKU, too little stock (with the
//! availability now), a version that moved (with the stock now), a missing right.
//! Only an unknown tool name is a protocol error, as MCP prescribes.

use std::sync::Arc;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    Implementation, JsonObject, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig, SubscribeRequestParams,
    SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use stockade_domain::{Channel, Principal, Rejection, Sku};
use stockade_engine::{Inventory, Origin, ReserveOptions};
use stockade_projections::{HubMessage, NoticeHub, ReadModels};
use stockade_wire::request::{
    customer as parse_customer, page_limit, receipt_ref, reservation_id, sku as parse_sku,
    transfer_id,
};
use stockade_wire::{
    AdjustedOut, ApiError, BackorderLimitOut, ChangedOut, Code, ErrorKind, FairSellingOut, Page,
    ReceiptOut, ReservationOut, ResolvedOut, StockOut, TransferOut, WaitlistLeftOut,
    WaitlistPlaceOut,
};

use crate::policy::{CacheDirective, Policy};
use crate::session::{Session, resource_sku, resource_uri};
use crate::tools::{
    AdjustArgs, AmendArgs, BackorderLimitArgs, CancelReceiptArgs, CreateOrderArgs,
    ExpectReceiptArgs, ExtendArgs, FairSellingArgs, GetStockArgs, JoinWaitlistArgs, ListArgs,
    NoArgs, ReceiveArgs, ReceiveReceiptArgs, ResolveArgs, ToolName, TransferArgs,
    WaitlistPlaceArgs, WithEnvelope, catalogue,
};

/// Recorded as the causation of every event an MCP call writes.
const CAUSATION: &str = "mcp";
/// How long a listing (tools, resources, templates) may be kept: they change only with
/// the server's version, so an hour (SEP-2549 `ttlMs`).
const LISTING_TTL_MS: u64 = 3_600_000;
/// The tool whose policy also rules `inventory://sku/{sku}` reads.
const READ_STOCK_TOOL: &str = "inventory.getStock";

/// What every session of one server shares: the engine, the read models, the notices,
/// and the tool table built once from the policy.
#[derive(Debug)]
pub struct Backend {
    pub inventory: Inventory,
    pub models: ReadModels,
    pub hub: NoticeHub,
    policy: Policy,
    tools: Vec<Tool>,
}

impl Backend {
    pub fn new(inventory: Inventory, models: ReadModels, hub: NoticeHub, policy: Policy) -> Self {
        let tools = catalogue(&policy);
        Self {
            inventory,
            models,
            hub,
            policy,
            tools,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// What a caller may do, from its token (HTTP) or from owning the process (stdio).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Reads only (a reader token, or no token where reads are public).
    Reader,
    /// Orders, recorded under this sales channel.
    Channel(Channel),
    /// Stock adjustments.
    Admin,
    /// The local operator of a stdio server: orders under this channel, and adjustments.
    Local(Channel),
}

/// Who is calling. Over HTTP the bridge puts one into each request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCaller {
    pub access: Access,
    /// Recorded in event metadata; scopes idempotency keys.
    pub principal: Option<Principal>,
}

impl McpCaller {
    pub fn anonymous() -> Self {
        Self {
            access: Access::Reader,
            principal: None,
        }
    }

    fn may_order(&self) -> Result<Option<Channel>, ApiError> {
        match &self.access {
            Access::Channel(c) | Access::Local(c) => Ok(Some(c.clone())),
            Access::Reader | Access::Admin => Err(forbidden("a channel token")),
        }
    }

    fn may_adjust(&self) -> Result<(), ApiError> {
        match &self.access {
            Access::Admin | Access::Local(_) => Ok(()),
            Access::Reader | Access::Channel(_) => Err(forbidden("an admin token")),
        }
    }

    fn origin(&self, channel: Option<Channel>, key: Option<String>) -> Origin {
        Origin {
            principal: self.principal.clone(),
            channel,
            idempotency_key: key,
            causation_id: Some(CAUSATION.to_owned()),
        }
    }
}

fn forbidden(wanted: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Forbidden,
        Code::Forbidden,
        format!("this tool needs {wanted}; connect with one to use it"),
    )
}

/// A tool that ran: what to show, and what the session read or wrote at which version.
struct ToolOutcome {
    value: Value,
    reads: Vec<(Sku, u64)>,
    writes: Vec<(Sku, u64)>,
}

impl ToolOutcome {
    fn value(value: impl serde::Serialize) -> Self {
        Self {
            value: serde_json::to_value(value).unwrap_or(Value::Null),
            reads: Vec::new(),
            writes: Vec::new(),
        }
    }
}

/// One session's handler. Over HTTP the transport makes one per session (and throwaway
/// ones for look-ups, so making one does nothing but allocate); over stdio there is one.
#[derive(Debug)]
pub struct StockadeMcp {
    backend: Arc<Backend>,
    session: Session,
    /// Set over stdio: every request comes from this caller.
    local: Option<McpCaller>,
}

impl StockadeMcp {
    /// A handler whose callers are named per request by the HTTP bridge.
    pub fn over_http(backend: Arc<Backend>) -> Self {
        Self {
            backend,
            session: Session::new(),
            local: None,
        }
    }

    /// A handler for one local caller (stdio: the process is the session).
    pub fn local(backend: Arc<Backend>, caller: McpCaller) -> Self {
        Self {
            backend,
            session: Session::new(),
            local: Some(caller),
        }
    }

    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<McpCaller, ApiError> {
        let caller = match &self.local {
            Some(local) => local.clone(),
            None => ctx
                .extensions
                .get::<http1::request::Parts>()
                .and_then(|parts| parts.extensions.get::<McpCaller>())
                .cloned()
                .unwrap_or_else(McpCaller::anonymous),
        };
        if !self.session.admits(caller.principal.as_ref()) {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                Code::SessionOwner,
                "this MCP session was opened by another principal; open a session of your own",
            ));
        }
        Ok(caller)
    }

    async fn run(
        &self,
        tool: ToolName,
        args: JsonObject,
        caller: &McpCaller,
    ) -> Result<ToolOutcome, ApiError> {
        let b = &self.backend;
        match tool {
            ToolName::GetStock => {
                let a: GetStockArgs = parse(tool, args)?;
                let sku = parse_sku(&a.sku, "sku")?;
                self.session.follow(b);
                let level = b.inventory.stock(&sku).await?;
                let threshold = b.models.threshold(&sku).await?;
                Ok(ToolOutcome {
                    // A kit's stream never changes: watch what it was derived from.
                    reads: level.read_versions(),
                    ..ToolOutcome::value(StockOut::from_level(&level, threshold))
                })
            }
            ToolName::List => {
                let a: ListArgs = parse(tool, args)?;
                let after = a
                    .after
                    .as_deref()
                    .map(|s| parse_sku(s, "after"))
                    .transpose()?;
                let limit = page_limit(a.limit)?;
                self.session.follow(b);
                let rows = b.models.stock_page(after, limit).await?;
                Ok(ToolOutcome {
                    reads: rows.iter().map(|r| (r.sku.clone(), r.version)).collect(),
                    ..ToolOutcome::value(Page::of_stock(&rows, limit))
                })
            }
            ToolName::Adjust => {
                let a: AdjustArgs = parse_with_envelope(tool, args)?;
                caller.may_adjust()?;
                let sku = parse_sku(&a.envelope.sku, "sku")?;
                let adjustment = a.request.validate()?;
                let origin = caller.origin(None, a.envelope.idempotency_key);
                let inventory = b.inventory.clone();
                let adjusting = sku.clone();
                let adjusted =
                    detached(
                        async move { inventory.adjust(&adjusting, adjustment, &origin).await },
                    )
                    .await?;
                Ok(ToolOutcome {
                    writes: vec![(sku.clone(), adjusted.version)],
                    ..ToolOutcome::value(AdjustedOut::new(&sku, &adjusted))
                })
            }
            ToolName::Transfer => {
                let a: TransferArgs = parse_with_envelope(tool, args)?;
                caller.may_adjust()?;
                let sku = parse_sku(&a.envelope.sku, "sku")?;
                let transfer = a.request.validate()?;
                let origin = caller.origin(None, a.envelope.idempotency_key);
                let inventory = b.inventory.clone();
                let shipping = sku.clone();
                let shipped =
                    detached(
                        async move { inventory.ship_transfer(&shipping, transfer, &origin).await },
                    )
                    .await?;
                Ok(ToolOutcome {
                    writes: vec![(sku.clone(), shipped.version)],
                    ..ToolOutcome::value(TransferOut::new(&sku, &shipped))
                })
            }
            ToolName::ReceiveTransfer => {
                let a: ReceiveArgs = parse(tool, args)?;
                caller.may_adjust()?;
                let sku = parse_sku(&a.sku, "sku")?;
                let id = transfer_id(&a.transfer_id, "transfer_id")?;
                let origin = caller.origin(None, a.idempotency_key);
                let inventory = b.inventory.clone();
                let receiving = sku.clone();
                let received =
                    detached(
                        async move { inventory.receive_transfer(&receiving, id, &origin).await },
                    )
                    .await?;
                Ok(ToolOutcome {
                    writes: vec![(sku.clone(), received.version)],
                    ..ToolOutcome::value(TransferOut::new(&sku, &received))
                })
            }
            ToolName::SetBackorderLimit => {
                let a: BackorderLimitArgs = parse_with_envelope(tool, args)?;
                caller.may_adjust()?;
                let sku = parse_sku(&a.envelope.sku, "sku")?;
                let (limit, location) = a.request.validate()?;
                let origin = caller.origin(None, a.envelope.idempotency_key);
                let inventory = b.inventory.clone();
                let setting = sku.clone();
                let set = detached(async move {
                    inventory
                        .set_backorder_limit(&setting, limit, location, &origin)
                        .await
                })
                .await?;
                Ok(ToolOutcome {
                    writes: vec![(sku.clone(), set.version)],
                    ..ToolOutcome::value(BackorderLimitOut {
                        sku: sku.to_string(),
                        location: set.location.as_ref().map(|l| l.to_string()),
                        backorder_limit: set.limit.get(),
                        previous: set.previous.get(),
                        version: set.version,
                    })
                })
            }
            ToolName::ExpectReceipt => {
                let a: ExpectReceiptArgs = parse_with_envelope(tool, args)?;
                caller.may_adjust()?;
                let sku = parse_sku(&a.envelope.sku, "sku")?;
                let receipt = a.request.validate()?;
                let origin = caller.origin(None, a.envelope.idempotency_key);
                let inventory = b.inventory.clone();
                let expecting = sku.clone();
                let expected = detached(async move {
                    inventory.expect_receipt(&expecting, receipt, &origin).await
                })
                .await?;
                Ok(ToolOutcome {
                    writes: vec![(sku, expected.version)],
                    ..ToolOutcome::value(ReceiptOut::new(&expected, "expected"))
                })
            }
            ToolName::ReceiveReceipt => {
                let a: ReceiveReceiptArgs = parse(tool, args)?;
                caller.may_adjust()?;
                let sku = parse_sku(&a.sku, "sku")?;
                let reference = receipt_ref(&a.reference, "reference")?;
                let qty = a.qty.map(stockade_domain::Quantity::new);
                let origin = caller.origin(None, a.idempotency_key);
                let inventory = b.inventory.clone();
                let receiving = sku.clone();
                let received = detached(async move {
                    inventory
                        .receive_receipt(&receiving, reference, qty, &origin)
                        .await
                })
                .await?;
                Ok(ToolOutcome {
                    writes: vec![(sku, received.version)],
                    ..ToolOutcome::value(ReceiptOut::new(&received, "received"))
                })
            }
            ToolName::CancelReceipt => {
                let a: CancelReceiptArgs = parse(tool, args)?;
                caller.may_adjust()?;
                let sku = parse_sku(&a.sku, "sku")?;
                let reference = receipt_ref(&a.reference, "reference")?;
                let origin = caller.origin(None, a.idempotency_key);
                let inventory = b.inventory.clone();
                let cancelling = sku.clone();
                let cancelled = detached(async move {
                    inventory
                        .cancel_receipt(&cancelling, reference, &origin)
                        .await
                })
                .await?;
                Ok(ToolOutcome {
                    writes: vec![(sku, cancelled.version)],
                    ..ToolOutcome::value(ReceiptOut::new(&cancelled, "cancelled"))
                })
            }
            ToolName::SetFairSelling => {
                let a: FairSellingArgs = parse_with_envelope(tool, args)?;
                caller.may_adjust()?;
                let sku = parse_sku(&a.envelope.sku, "sku")?;
                let rules = a.request.validate()?;
                let origin = caller.origin(None, a.envelope.idempotency_key);
                let inventory = b.inventory.clone();
                let setting = sku.clone();
                let version =
                    detached(
                        async move { inventory.set_fair_selling(&setting, rules, &origin).await },
                    )
                    .await?;
                let view = b.inventory.fair_selling(&sku, None, 0).await?;
                Ok(ToolOutcome {
                    writes: vec![(sku.clone(), version)],
                    ..ToolOutcome::value(FairSellingOut::new(&sku, &view, false))
                })
            }
            ToolName::JoinWaitlist => {
                let a: JoinWaitlistArgs = parse_with_envelope(tool, args)?;
                let channel = caller.may_order()?;
                let sku = parse_sku(&a.envelope.sku, "sku")?;
                let (customer, qty) = a.request.validate()?;
                let origin = caller.origin(channel, a.envelope.idempotency_key);
                // Following the notices before the place exists: its hold cannot be missed.
                self.session.follow(b);
                let inventory = b.inventory.clone();
                let joining = sku.clone();
                let joined = detached(async move {
                    inventory
                        .join_waitlist(&joining, customer, qty, &origin)
                        .await
                })
                .await?;
                let hold = joined.place.hold_id.to_string();
                if joined.place.position == 0 {
                    self.session.served(&sku, hold);
                } else {
                    self.session.await_hold(&sku, hold);
                }
                Ok(ToolOutcome {
                    writes: vec![(sku.clone(), joined.version)],
                    ..ToolOutcome::value(WaitlistPlaceOut {
                        version: Some(joined.version),
                        ..WaitlistPlaceOut::new(&sku, &joined.place)
                    })
                })
            }
            ToolName::WaitlistPosition => {
                let a: WaitlistPlaceArgs = parse(tool, args)?;
                caller.may_order()?;
                let sku = parse_sku(&a.sku, "sku")?;
                let customer = parse_customer(&a.customer, "customer")?;
                let view = b.inventory.fair_selling(&sku, Some(&customer), 0).await?;
                Ok(ToolOutcome::value(WaitlistPlaceOut::of_customer(
                    &sku, &customer, &view,
                )?))
            }
            ToolName::LeaveWaitlist => {
                let a: WaitlistPlaceArgs = parse(tool, args)?;
                let channel = caller.may_order()?;
                let sku = parse_sku(&a.sku, "sku")?;
                let customer = parse_customer(&a.customer, "customer")?;
                let origin = caller.origin(channel, a.idempotency_key);
                let inventory = b.inventory.clone();
                let (leaving, who) = (sku.clone(), customer.clone());
                let version =
                    detached(async move { inventory.leave_waitlist(&leaving, who, &origin).await })
                        .await?;
                Ok(ToolOutcome {
                    writes: vec![(sku.clone(), version)],
                    ..ToolOutcome::value(WaitlistLeftOut::new(&sku, &customer, version))
                })
            }
            ToolName::OrdersCreate => {
                let a: CreateOrderArgs = parse_with_envelope(tool, args)?;
                let channel = caller.may_order()?;
                let checked = a.request.validate()?;
                let options = ReserveOptions {
                    customer: checked.customer,
                    ttl: checked.ttl,
                    order_id: checked.order_id,
                    origin: caller.origin(channel, a.envelope.idempotency_key),
                    expected_versions: checked.expected_versions,
                };
                let inventory = b.inventory.clone();
                let held =
                    detached(async move { inventory.reserve_order(checked.lines, options).await })
                        .await?;
                Ok(ToolOutcome {
                    writes: versions(&held.lines),
                    ..ToolOutcome::value(ReservationOut::from(&held))
                })
            }
            ToolName::OrdersConfirm | ToolName::OrdersCancel => {
                let a: ResolveArgs = parse_with_envelope(tool, args)?;
                let channel = caller.may_order()?;
                let id = reservation_id(&a.envelope.reservation_id)?;
                let part = a.request.validate()?;
                let origin = caller.origin(channel, a.envelope.idempotency_key);
                let inventory = b.inventory.clone();
                let commit = tool == ToolName::OrdersConfirm;
                let resolved = detached(async move {
                    match (part, commit) {
                        (None, true) => inventory.commit(id, &origin).await,
                        (None, false) => inventory.release(id, &origin).await,
                        (Some(lines), true) => inventory.commit_part(id, &lines, &origin).await,
                        (Some(lines), false) => inventory.release_part(id, &lines, &origin).await,
                    }
                })
                .await?;
                Ok(ToolOutcome {
                    writes: versions(&resolved.lines),
                    ..ToolOutcome::value(ResolvedOut::from(&resolved))
                })
            }
            ToolName::OrdersExtend | ToolName::OrdersAmend => {
                let channel = caller.may_order()?;
                let inventory = b.inventory.clone();
                let changed = if tool == ToolName::OrdersExtend {
                    let a: ExtendArgs = parse_with_envelope(tool, args)?;
                    let id = reservation_id(&a.envelope.reservation_id)?;
                    let ttl = a.request.validate()?;
                    let origin = caller.origin(channel, a.envelope.idempotency_key);
                    detached(async move { inventory.extend(id, ttl, &origin).await }).await?
                } else {
                    let a: AmendArgs = parse_with_envelope(tool, args)?;
                    let id = reservation_id(&a.envelope.reservation_id)?;
                    let lines = a.request.validate()?;
                    let origin = caller.origin(channel, a.envelope.idempotency_key);
                    detached(async move { inventory.amend(id, lines, &origin).await }).await?
                };
                Ok(ToolOutcome {
                    writes: versions(&changed.lines),
                    ..ToolOutcome::value(ChangedOut::from(&changed))
                })
            }
            ToolName::PoolTypes => {
                let _: NoArgs = parse(tool, args)?;
                Ok(ToolOutcome::value(pool_types()))
            }
        }
    }

    /// A refusal as the model reads it, with the stock as it is now when the refusal was
    /// about stock (too little of it, or a version that moved); and the reads that stock
    /// counts as (the SKU and version shown, or for a kit what it was derived from).
    async fn refusal(&self, tool: ToolName, error: ApiError) -> (CallToolResult, Vec<(Sku, u64)>) {
        let mut error = error;
        let mut now = String::new();
        let mut shown = Vec::new();
        if matches!(
            error.code,
            Code::InsufficientStock | Code::VersionConflict | Code::Short
        ) && let Some(sku) = error
            .details
            .get("sku")
            .and_then(Value::as_str)
            .and_then(|s| Sku::new(s).ok())
            && let Ok(level) = self.backend.inventory.stock(&sku).await
        {
            let threshold = self.backend.models.threshold(&sku).await.unwrap_or(0);
            let current = StockOut::from_level(&level, threshold);
            let available = current
                .available
                .map_or_else(|| "unlimited".to_owned(), |a| a.to_string());
            now = format!(
                " Now: {sku} has {available} available (version {}, as of {}).",
                current.version,
                current.as_of.as_deref().unwrap_or("now")
            );
            // A kit's read is recorded as what it was derived from, as getStock does.
            shown = level.read_versions();
            error = error.with("current", current);
        }
        // A call on a reservation that changed some lines answers with them; a refusal
        // changed nothing.
        let nothing = match tool {
            ToolName::OrdersCreate => " Nothing was reserved.",
            ToolName::OrdersConfirm
            | ToolName::OrdersCancel
            | ToolName::OrdersExtend
            | ToolName::OrdersAmend => " Nothing was changed.",
            _ => "",
        };
        let text = format!(
            "{} refused ({}): {}.{now}{nothing}",
            tool.as_str(),
            error.code,
            error.message.trim_end_matches('.')
        );
        let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
        result.structured_content = Some(error.body());
        (result, shown)
    }
}

/// Each line's SKU with its version after the write.
fn versions(lines: &[stockade_engine::ReservedLine]) -> Vec<(Sku, u64)> {
    lines.iter().map(|l| (l.sku.clone(), l.version)).collect()
}

/// The SKUs an `orders.create` call names, as far as its arguments can be read.
fn order_skus(arguments: &JsonObject) -> Vec<Sku> {
    arguments
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("sku")?.as_str())
        .filter_map(|sku| Sku::new(sku).ok())
        .collect()
}

/// The tool's arguments as `T`; a shape error names the tool and the field.
fn parse<T: serde::de::DeserializeOwned>(tool: ToolName, args: JsonObject) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(args)).map_err(|e| invalid_arguments(tool, &e))
}

/// The arguments of a tool that takes a wire request plus an envelope.
fn parse_with_envelope<E, R>(
    tool: ToolName,
    args: JsonObject,
) -> Result<WithEnvelope<E, R>, ApiError>
where
    E: serde::de::DeserializeOwned + schemars::JsonSchema + 'static,
    R: serde::de::DeserializeOwned + schemars::JsonSchema + 'static,
{
    WithEnvelope::parse(args).map_err(|e| invalid_arguments(tool, &e))
}

fn invalid_arguments(tool: ToolName, e: &serde_json::Error) -> ApiError {
    ApiError::new(
        ErrorKind::Unprocessable,
        Code::InvalidArguments,
        format!("invalid arguments for {}: {e}", tool.as_str()),
    )
}

/// Runs an engine write to completion even if the request is cancelled: an order whose
/// lines were half held must not be abandoned in the middle of its compensation.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, stockade_engine::Error>> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::spawn(work).await {
        Ok(done) => done.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            ErrorKind::Unavailable,
            Code::Unavailable,
            format!("the call's task ended early: {e}"),
        )),
    }
}

/// The reference data of `reference.poolTypes`.
fn pool_types() -> Value {
    json!({
        "pool_types": [
            {
                "pool": "physical",
                "limit": "on_hand: units on the shelf",
                "rules": [
                    "available = on_hand - reserved - safety_stock",
                    "a reservation needs qty <= available",
                    "a confirmed reservation becomes a sale and leaves on_hand",
                    "an adjustment (receipt, write-off, count) changes on_hand; it may make the SKU short of reservations already held"
                ]
            },
            {
                "pool": "digital",
                "limit": "license_limit: keys or seats; null when unlimited",
                "rules": [
                    "unlimited digital SKUs are always available",
                    "with a limit, available = license_limit - reserved - sold"
                ]
            },
            {
                "pool": "print_on_demand",
                "limit": "capacity per period (e.g. prints per day)",
                "rules": [
                    "available = capacity - reserved - sold in the current period",
                    "capacity renews at the start of every period"
                ]
            },
            {
                "pool": "kit",
                "limit": "none of its own: a kit is its components (sku and qty per kit)",
                "rules": [
                    "available = the fewest whole kits the components' available allow",
                    "ordering a kit holds its components, all or none",
                    "a kit's version moves whenever a component changes; a kit has a notice (and a subscription update) whenever its availability or status moves"
                ]
            }
        ],
        "statuses": ["in_stock", "low_stock", "out_of_stock", "short"],
        "reservation_ttl_seconds": {"default": 900, "max": 604800}
    })
}

impl ServerHandler for StockadeMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new("stockade", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Stockade inventory. Stock changes at any moment through other channels: never \
             quote or promise stock from an earlier answer. A result that begins with \
             [System: Stale reads ...] names reads that are no longer true; read those SKUs \
             again. Pass expected_versions to orders.create to refuse an order if stock moved.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // The same list for every caller, for the server's life (SEP-2549 cache hints).
        Ok(ListToolsResult::with_all_items(self.backend.tools.clone())
            .with_ttl_ms(LISTING_TTL_MS)
            .with_cache_scope(CacheScope::Public))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        // Stock is read through the template, one SKU at a time: nothing to list.
        Ok(ListResourcesResult::with_all_items(Vec::new())
            .with_ttl_ms(LISTING_TTL_MS)
            .with_cache_scope(CacheScope::Public))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.backend.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = ToolName::parse(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {:?}; tools/list names them", request.name),
                None,
            ));
        };
        let caller = match self.caller(&ctx) {
            Ok(caller) => caller,
            Err(e) => return Ok(self.refusal(tool, e).await.0.into()),
        };
        let _turn = self.session.turn().await;
        self.session.catch_up(&self.backend).await;
        // Taken before this call's own reads and writes: a read of a stale SKU still
        // tells the model that what it held before was wrong.
        let stale = self.session.take_stale();
        let arguments = request.arguments.unwrap_or_default();
        let ordered = if tool == ToolName::OrdersCreate {
            order_skus(&arguments)
        } else {
            Vec::new()
        };
        let outcome = self.run(tool, arguments, &caller).await;
        metrics::counter!(
            "stockade_mcp_calls_total",
            "tool" => tool.as_str(),
            "outcome" => if outcome.is_ok() { "ok" } else { "error" }
        )
        .increment(1);
        let mut blocks = Vec::new();
        if let Some(block) = crate::ledger::block(&stale) {
            metrics::counter!("stockade_mcp_stale_blocks_total").increment(1);
            blocks.push(ContentBlock::text(block));
        }
        // Taken after the call: a join answered as served at once is told on its own result.
        let served = self.session.take_served();
        if let Some(block) = crate::ledger::served_block(&served) {
            blocks.push(ContentBlock::text(block));
        }
        let mut result = match outcome {
            Ok(done) => {
                for (sku, version) in &done.reads {
                    self.session.read(sku, *version);
                }
                for (sku, version) in &done.writes {
                    self.session.wrote(sku, *version);
                }
                if tool.writes()
                    && let Some(block) = self.backend.policy.invalidation_block(tool.as_str())
                {
                    blocks.push(ContentBlock::text(block));
                }
                CallToolResult::structured(done.value)
            }
            Err(e) => {
                let (result, shown) = self.refusal(tool, e).await;
                // A refused order held and released its lines itself: those changes are
                // the session's own, not news from another channel.
                // A kit's holds are its components': those are what the session read.
                for sku in &ordered {
                    if let Ok(level) = self.backend.inventory.stock(sku).await {
                        for (read, version) in level.read_versions() {
                            if self.session.has_read(&read) {
                                self.session.wrote(&read, version);
                            }
                        }
                    }
                }
                // The stock the refusal showed is what the model now holds.
                for (sku, version) in shown {
                    self.session.read(&sku, version);
                }
                result
            }
        };
        if ctx.ct.is_cancelled() {
            // The answer will not be delivered: what it was to tell stays pending.
            self.session.restore(stale);
        }
        blocks.append(&mut result.content);
        result.content = blocks;
        Ok(result.into())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("inventory://sku/{sku}", "sku")
                .with_title("Stock of a SKU")
                .with_description(
                    "The SKU's stock, exact at the read, with version and as-of time. \
                     Subscribe to be told when it changes.",
                )
                .with_mime_type("application/json"),
        ])
        .with_ttl_ms(LISTING_TTL_MS)
        .with_cache_scope(CacheScope::Public))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let sku = resource_sku(&uri).ok_or_else(|| not_found(&uri))?;
        self.caller(&ctx)
            .map_err(|e| ErrorData::invalid_request(e.message, None))?;
        let _turn = self.session.turn().await;
        self.session.follow(&self.backend);
        let level = match self.backend.inventory.stock(&sku).await {
            Ok(level) => level,
            Err(stockade_engine::Error::Rejected {
                rejection: Rejection::UnknownSku,
                ..
            }) => return Err(not_found(&uri)),
            Err(e) => return Err(ErrorData::internal_error(e.to_string(), None)),
        };
        let threshold = self.backend.models.threshold(&sku).await.unwrap_or(0);
        for (read, version) in level.read_versions() {
            self.session.read(&read, version);
        }
        let body = serde_json::to_string(&StockOut::from_level(&level, threshold))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        // As fresh as the policy says reading stock is (`inventory.getStock`): with the
        // built-in policy, `no-store`, so 0: read again before every use.
        let ttl = match self.backend.policy.directive(READ_STOCK_TOOL) {
            CacheDirective::NoStore => 0,
            CacheDirective::Immutable => LISTING_TTL_MS,
        };
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(body, uri).with_mime_type("application/json"),
        ])
        .with_ttl_ms(ttl)
        .with_cache_scope(CacheScope::Private)
        .into())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let uri = request.uri;
        let sku = resource_sku(&uri).ok_or_else(|| not_found(&uri))?;
        self.caller(&ctx)
            .map_err(|e| ErrorData::invalid_request(e.message, None))?;
        // Only SKUs that exist: a subscription to a typo would never fire. (A kit's
        // updates are its derived notices: whenever a component moves what it offers.)
        if let Err(stockade_engine::Error::Rejected {
            rejection: Rejection::UnknownSku,
            ..
        }) = self.backend.inventory.stock(&sku).await
        {
            return Err(not_found(&uri));
        }
        self.session
            .subscribe(&self.backend, resource_uri(&sku), ctx.peer.clone());
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session.unsubscribe(&request.uri);
        Ok(())
    }

    /// For 2026-07-28 clients (`subscriptions/listen`): only our resource URIs are kept.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = requested.clone();
        accepted.resource_subscriptions = requested.resource_subscriptions.as_ref().map(|uris| {
            uris.iter()
                .filter(|u| resource_sku(u).is_some())
                .cloned()
                .collect()
        });
        Some(accepted)
    }

    async fn listen(&self, cx: SubscriptionContext) -> Result<(), ErrorData> {
        let mut feed = self.backend.hub.subscribe(4096);
        let wanted: Vec<String> = cx
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        loop {
            let message = tokio::select! {
                () = cx.cancelled() => return Ok(()),
                m = feed.recv() => m,
            };
            let uris = match message {
                Some(HubMessage::Notice(notice)) => vec![resource_uri(&notice.sku)],
                Some(HubMessage::Resync { .. }) => {
                    feed = self.backend.hub.subscribe(4096);
                    wanted.clone()
                }
                None => return Ok(()),
            };
            for uri in uris.into_iter().filter(|u| wanted.contains(u)) {
                if cx.sink().notify_resource_updated(uri).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

fn not_found(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!("no such resource {uri:?}; SKU resources are inventory://sku/<SKU>"),
        None,
    )
}
