//! The tool table: names, descriptions (with the policy's cache-control tag), input
//! schemas and annotations, and the argument shapes the tools accept.
//!
//! The writing tools take the REST API's request types from `stockade-wire` (their JSON
//! Schema comes from there too), plus the few fields REST carries in the path or a header;
//! every argument shape denies unknown fields, so a misspelt option is refused with a
//! message instead of quietly ignored. Annotations are hints a client
//! may act on (skip confirmation for read-only tools, retry idempotent ones), so each is
//! set to what the tool really does.

use std::sync::Arc;

use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use stockade_wire::{
    AdjustRequest, AmendRequest, BackorderLimitRequest, ExtendRequest, FairSellingRequest,
    JoinWaitlistRequest, ReceiptRequest, ReserveRequest, ResolveRequest, TransferRequest,
};

use crate::policy::Policy;

/// Every tool this server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolName {
    GetStock,
    List,
    Adjust,
    Transfer,
    ReceiveTransfer,
    SetBackorderLimit,
    ExpectReceipt,
    ReceiveReceipt,
    CancelReceipt,
    SetFairSelling,
    JoinWaitlist,
    WaitlistPosition,
    LeaveWaitlist,
    OrdersCreate,
    OrdersConfirm,
    OrdersCancel,
    OrdersExtend,
    OrdersAmend,
    PoolTypes,
}

impl ToolName {
    pub const ALL: [ToolName; 19] = [
        ToolName::GetStock,
        ToolName::List,
        ToolName::Adjust,
        ToolName::Transfer,
        ToolName::ReceiveTransfer,
        ToolName::SetBackorderLimit,
        ToolName::ExpectReceipt,
        ToolName::ReceiveReceipt,
        ToolName::CancelReceipt,
        ToolName::SetFairSelling,
        ToolName::JoinWaitlist,
        ToolName::WaitlistPosition,
        ToolName::LeaveWaitlist,
        ToolName::OrdersCreate,
        ToolName::OrdersConfirm,
        ToolName::OrdersCancel,
        ToolName::OrdersExtend,
        ToolName::OrdersAmend,
        ToolName::PoolTypes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolName::GetStock => "inventory.getStock",
            ToolName::List => "inventory.list",
            ToolName::Adjust => "inventory.adjust",
            ToolName::Transfer => "inventory.transfer",
            ToolName::ReceiveTransfer => "inventory.receiveTransfer",
            ToolName::SetBackorderLimit => "inventory.setBackorderLimit",
            ToolName::ExpectReceipt => "inventory.expectReceipt",
            ToolName::ReceiveReceipt => "inventory.receiveReceipt",
            ToolName::CancelReceipt => "inventory.cancelReceipt",
            ToolName::SetFairSelling => "inventory.setFairSelling",
            ToolName::JoinWaitlist => "inventory.joinWaitlist",
            ToolName::WaitlistPosition => "inventory.waitlistPosition",
            ToolName::LeaveWaitlist => "inventory.leaveWaitlist",
            ToolName::OrdersCreate => "orders.create",
            ToolName::OrdersConfirm => "orders.confirm",
            ToolName::OrdersCancel => "orders.cancel",
            ToolName::OrdersExtend => "orders.extend",
            ToolName::OrdersAmend => "orders.amend",
            ToolName::PoolTypes => "reference.poolTypes",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether a successful call changes stock (and so may carry an invalidation block).
    pub fn writes(self) -> bool {
        matches!(
            self,
            ToolName::Adjust
                | ToolName::Transfer
                | ToolName::ReceiveTransfer
                | ToolName::SetBackorderLimit
                | ToolName::ExpectReceipt
                | ToolName::ReceiveReceipt
                | ToolName::CancelReceipt
                | ToolName::SetFairSelling
                | ToolName::JoinWaitlist
                | ToolName::LeaveWaitlist
                | ToolName::OrdersCreate
                | ToolName::OrdersConfirm
                | ToolName::OrdersCancel
                | ToolName::OrdersExtend
                | ToolName::OrdersAmend
        )
    }

    fn description(self) -> &'static str {
        match self {
            ToolName::GetStock => {
                "Current stock of one SKU, exact at the instant of the call: on hand, reserved, \
                 available, status, and the SKU's version with the as-of time. Stock changes at \
                 any moment through other channels; read it again before quoting or promising it."
            }
            ToolName::List => {
                "A page of SKUs with their stock, in SKU order (pass `after` = the last SKU of \
                 the previous page). Figures come from the read model, which follows the log by \
                 milliseconds; every item carries its version."
            }
            ToolName::Adjust => {
                "Change a SKU's stock: `delta` (units received, or written off when negative) or \
                 `counted_on_hand` (a physical count), with a `reason`. Pass `expected_version` \
                 (from inventory.getStock) to refuse the change if the SKU moved since. Needs an \
                 admin token."
            }
            ToolName::Transfer => {
                "Send units of a SKU from one of its locations to another: they leave `from` now \
                 (only units not promised to holds may leave) and are in transit, not sellable, \
                 until inventory.receiveTransfer with the same `transfer_id`. Needs an admin \
                 token."
            }
            ToolName::ReceiveTransfer => {
                "Receive a transfer from inventory.transfer at its destination: its units are \
                 on hand there and can be sold. Receiving twice is refused, so a retry is safe. \
                 Needs an admin token."
            }
            ToolName::SetBackorderLimit => {
                "Let a SKU sell up to `limit` units beyond what it has on hand (at \
                 `location`, required when it is stocked at several): lines beyond stock are \
                 held as backordered, and stock that is freed or arrives fills them in the \
                 order they were held. 0 takes no more. Needs an admin token."
            }
            ToolName::ExpectReceipt => {
                "Record stock on its way from a supplier: `reference` (a purchase order), \
                 `qty`, `eta` (RFC 3339, in the future), and `location` at a SKU with several. \
                 Backordered lines then say when they are expected. Sending the same receipt \
                 again is answered from the first. Needs an admin token."
            }
            ToolName::ReceiveReceipt => {
                "Units of an expected receipt arrived: `qty` of them, or all that are still \
                 expected when absent. They are on hand at once and fill backorders first; \
                 the answer lists the reservations filled. Without `idempotency_key`, calling \
                 twice receives twice. Needs an admin token."
            }
            ToolName::CancelReceipt => {
                "What is still expected of a receipt will not come: it no longer counts as \
                 incoming. Cancelling twice is refused, so a retry is safe. Needs an admin \
                 token."
            }
            ToolName::SetFairSelling => {
                "Set a SKU's fair-selling rules, all at once: `per_customer` units one customer \
                 may hold and buy over `window_seconds` (across every order; omit both to lift \
                 the limit), and `waitlist_hold_seconds`, how long freed stock stays held for \
                 the customer first on the waitlist (default 120). Needs an admin token."
            }
            ToolName::JoinWaitlist => {
                "Put a customer on a sold-out SKU's waitlist for `qty` units. Freed stock goes \
                 to the waitlist first in, first out, before any new order can take it: when \
                 this place's turn comes it becomes a reservation with the `hold_id` answered \
                 here, held for a short time; a later result of this session then names it. \
                 Confirm it with orders.confirm. Joining twice is refused; the purchase limit \
                 applies."
            }
            ToolName::WaitlistPosition => {
                "Where a customer stands on a SKU's waitlist: position (1 is next), units \
                 ahead, the hold id their turn will bring, and what they may still buy under \
                 the limit. Refused as not_waiting once they left or were served."
            }
            ToolName::LeaveWaitlist => {
                "Take a customer off a SKU's waitlist. Leaving twice is refused, so a retry is \
                 safe."
            }
            ToolName::OrdersCreate => {
                "Reserve stock for an order, all or nothing: every item is held, or none is. \
                 The hold lapses after `ttl_seconds` (default 900) unless confirmed. Pass \
                 `expected_versions` (SKU → the version you read) to refuse the order if any of \
                 those SKUs moved since, and `idempotency_key` to make a retry safe (without a \
                 key, calling twice holds twice). A refusal says how much is available now."
            }
            ToolName::OrdersConfirm => {
                "Confirm (commit) a reservation from orders.create: its units become a sale. \
                 Pass `items` ([{sku, qty}]) to confirm only part of some lines (a shipment in \
                 parts); the rest stays held. Every line named is checked before any is sold: \
                 all or nothing. Confirming twice is refused, so a retry is safe."
            }
            ToolName::OrdersCancel => {
                "Cancel (release) a reservation from orders.create: its units become available \
                 again. Pass `items` ([{sku, qty}]) to give back only part of some lines. \
                 Cancelling twice is refused, so a retry is safe."
            }
            ToolName::OrdersExtend => {
                "Keep a live reservation longer (a slow payment): every line then expires \
                 `ttl_seconds` from now. Refused if a line lapsed or ended, if that is not \
                 later than now, or if it passes 7 days from when the reservation was made."
            }
            ToolName::OrdersAmend => {
                "Change a live reservation's lines, all or nothing: `items` give each named \
                 line's new quantity (0 takes it off; a SKU not yet held is added and expires \
                 with the others). Growth is checked like a new hold; if any line cannot \
                 grow, nothing changes. The reservation id stays the same."
            }
            ToolName::PoolTypes => {
                "The kinds of stock pool a SKU can draw from (physical, digital, print on \
                 demand), kits made of other SKUs, and the rules each follows. Reference data: it does not change while \
                 the server runs."
            }
        }
    }

    fn title(self) -> &'static str {
        match self {
            ToolName::GetStock => "Get stock of a SKU",
            ToolName::List => "List SKUs with stock",
            ToolName::Adjust => "Adjust stock",
            ToolName::Transfer => "Ship a transfer between locations",
            ToolName::ReceiveTransfer => "Receive a transfer",
            ToolName::SetBackorderLimit => "Set a SKU's backorder limit",
            ToolName::ExpectReceipt => "Expect stock from a supplier",
            ToolName::ReceiveReceipt => "Receive expected stock",
            ToolName::CancelReceipt => "Cancel an expected receipt",
            ToolName::SetFairSelling => "Set a SKU's purchase limit and waitlist hold",
            ToolName::JoinWaitlist => "Join a SKU's waitlist",
            ToolName::WaitlistPosition => "A customer's place on a waitlist",
            ToolName::LeaveWaitlist => "Leave a SKU's waitlist",
            ToolName::OrdersCreate => "Create an order (reserve stock)",
            ToolName::OrdersConfirm => "Confirm an order",
            ToolName::OrdersCancel => "Cancel an order",
            ToolName::OrdersExtend => "Extend an order's hold",
            ToolName::OrdersAmend => "Amend an order's lines",
            ToolName::PoolTypes => "Pool types and their rules",
        }
    }

    /// What the tool does, as hints. Reads touch only this server's data (closed world).
    fn annotations(self) -> ToolAnnotations {
        let base = ToolAnnotations::with_title(self.title()).open_world(false);
        match self {
            ToolName::GetStock
            | ToolName::List
            | ToolName::PoolTypes
            | ToolName::WaitlistPosition => base.read_only(true),
            // The same rules again are refused and change nothing.
            ToolName::SetFairSelling => base.read_only(false).destructive(false).idempotent(true),
            // Joining twice is refused (already waiting).
            ToolName::JoinWaitlist => base.read_only(false).destructive(false).idempotent(true),
            // Gives up the customer's place: destructive, but only once.
            ToolName::LeaveWaitlist => base.read_only(false).destructive(true).idempotent(true),
            // A delta applied twice moves stock twice.
            ToolName::Adjust => base.read_only(false).destructive(true).idempotent(false),
            // Takes units out of a location; a second call with the same id is refused,
            // one with a new id ships again.
            ToolName::Transfer => base.read_only(false).destructive(true).idempotent(false),
            // A second receipt is refused and changes nothing.
            ToolName::ReceiveTransfer => base.read_only(false).destructive(false).idempotent(true),
            // The same limit again is refused and changes nothing.
            ToolName::SetBackorderLimit => {
                base.read_only(false).destructive(false).idempotent(true)
            }
            // The same receipt again is answered from the first.
            ToolName::ExpectReceipt => base.read_only(false).destructive(false).idempotent(true),
            // Without a key, a second arrival adds stock again.
            ToolName::ReceiveReceipt => base.read_only(false).destructive(false).idempotent(false),
            ToolName::CancelReceipt => base.read_only(false).destructive(true).idempotent(true),
            // Adds a hold; without a key a second call holds again.
            ToolName::OrdersCreate => base.read_only(false).destructive(false).idempotent(false),
            // A second confirm is refused and changes nothing.
            ToolName::OrdersConfirm => base.read_only(false).destructive(false).idempotent(true),
            // Gives up a hold the order had: destructive, but only once.
            ToolName::OrdersCancel => base.read_only(false).destructive(true).idempotent(true),
            // The same extension again is refused (not later than now's): changes nothing.
            ToolName::OrdersExtend => base.read_only(false).destructive(false).idempotent(true),
            // May give units up; the same amendment again is refused as unchanged.
            ToolName::OrdersAmend => base.read_only(false).destructive(true).idempotent(true),
        }
    }

    fn input_schema(self) -> Arc<JsonObject> {
        match self {
            ToolName::GetStock => schema_for_type::<GetStockArgs>(),
            ToolName::List => schema_for_type::<ListArgs>(),
            ToolName::Adjust => AdjustArgs::schema(),
            ToolName::Transfer => TransferArgs::schema(),
            ToolName::ReceiveTransfer => schema_for_type::<ReceiveArgs>(),
            ToolName::SetBackorderLimit => BackorderLimitArgs::schema(),
            ToolName::ExpectReceipt => ExpectReceiptArgs::schema(),
            ToolName::ReceiveReceipt => schema_for_type::<ReceiveReceiptArgs>(),
            ToolName::CancelReceipt => schema_for_type::<CancelReceiptArgs>(),
            ToolName::SetFairSelling => FairSellingArgs::schema(),
            ToolName::JoinWaitlist => JoinWaitlistArgs::schema(),
            ToolName::WaitlistPosition | ToolName::LeaveWaitlist => {
                schema_for_type::<WaitlistPlaceArgs>()
            }
            ToolName::OrdersCreate => CreateOrderArgs::schema(),
            ToolName::OrdersConfirm | ToolName::OrdersCancel => ResolveArgs::schema(),
            ToolName::OrdersExtend => ExtendArgs::schema(),
            ToolName::OrdersAmend => AmendArgs::schema(),
            ToolName::PoolTypes => schema_for_type::<NoArgs>(),
        }
    }
}

/// The tools as clients list them, descriptions tagged by `policy`.
pub fn catalogue(policy: &Policy) -> Vec<Tool> {
    ToolName::ALL
        .into_iter()
        .map(|t| {
            Tool::new(
                t.as_str(),
                policy.describe(t.as_str(), t.description()),
                t.input_schema(),
            )
            .with_title(t.title())
            .with_annotations(t.annotations())
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetStockArgs {
    /// The SKU id, e.g. "SKU-7782".
    pub sku: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Start after this SKU (the last one of the previous page).
    #[serde(default)]
    pub after: Option<String>,
    /// Items per page, 1-1000 (default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<usize>,
}

/// What `inventory.adjust` takes beside the REST body ([`AdjustRequest`]): the SKU, which
/// REST has in the path, and the idempotency key, which REST has in a header.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustEnvelope {
    /// The SKU id, e.g. "SKU-7782".
    pub sku: String,
    /// A retry with the same key is answered with the first outcome.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// What `orders.create` takes beside the REST body ([`ReserveRequest`]): the idempotency
/// key, which REST has in a header.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyEnvelope {
    /// A retry with the same key returns the same reservation instead of holding again.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// A tool's arguments as one flat object: an envelope (what HTTP carries in the path or a
/// header) and the wire request, the same type the REST API reads, so the two channels
/// cannot drift. The envelope's own properties pick its fields out; every other field goes
/// to the request, which refuses the ones it does not know.
#[derive(Debug, Clone)]
pub struct WithEnvelope<E, R> {
    pub envelope: E,
    pub request: R,
}

impl<E, R> WithEnvelope<E, R>
where
    E: DeserializeOwned + JsonSchema + 'static,
    R: DeserializeOwned + JsonSchema + 'static,
{
    /// Splits `args` between the envelope and the request; a shape error says which
    /// field, as serde words it.
    pub fn parse(args: JsonObject) -> Result<Self, serde_json::Error> {
        let envelope_fields = properties(&schema_for_type::<E>());
        let (outer, inner): (JsonObject, JsonObject) = args
            .into_iter()
            .partition(|(k, _)| envelope_fields.contains(k));
        Ok(Self {
            envelope: serde_json::from_value(Value::Object(outer))?,
            request: serde_json::from_value(Value::Object(inner))?,
        })
    }

    /// One object schema with the properties, required fields and definitions of both.
    pub fn schema() -> Arc<JsonObject> {
        let mut merged = (*schema_for_type::<R>()).clone();
        let envelope = schema_for_type::<E>();
        for key in ["properties", "$defs"] {
            if let Some(Value::Object(extra)) = envelope.get(key) {
                let into = merged
                    .entry(key)
                    .or_insert_with(|| Value::Object(JsonObject::new()));
                if let Value::Object(into) = into {
                    into.extend(extra.clone());
                }
            }
        }
        let mut required: Vec<Value> = envelope
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        required.extend(
            merged
                .get("required")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        if !required.is_empty() {
            merged.insert("required".into(), Value::Array(required));
        }
        // The tool's own title and description say what it does; the request's doc
        // comment names the REST route.
        merged.remove("title");
        merged.remove("description");
        Arc::new(merged)
    }
}

/// The property names of an object schema.
fn properties(schema: &JsonObject) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// `inventory.adjust`'s arguments.
pub type AdjustArgs = WithEnvelope<AdjustEnvelope, AdjustRequest>;
/// `orders.create`'s arguments.
pub type CreateOrderArgs = WithEnvelope<KeyEnvelope, ReserveRequest>;
/// `inventory.transfer`'s arguments: the SKU and key as for an adjustment.
pub type TransferArgs = WithEnvelope<AdjustEnvelope, TransferRequest>;

/// `inventory.setBackorderLimit`'s arguments.
pub type BackorderLimitArgs = WithEnvelope<AdjustEnvelope, BackorderLimitRequest>;
/// `inventory.expectReceipt`'s arguments.
pub type ExpectReceiptArgs = WithEnvelope<AdjustEnvelope, ReceiptRequest>;

/// `inventory.setFairSelling`'s arguments.
pub type FairSellingArgs = WithEnvelope<AdjustEnvelope, FairSellingRequest>;
/// `inventory.joinWaitlist`'s arguments.
pub type JoinWaitlistArgs = WithEnvelope<AdjustEnvelope, JoinWaitlistRequest>;

/// `inventory.waitlistPosition`'s and `inventory.leaveWaitlist`'s arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistPlaceArgs {
    /// The SKU id, e.g. "SKU-7782".
    pub sku: String,
    /// The customer id given to inventory.joinWaitlist.
    pub customer: String,
    /// For inventory.leaveWaitlist: a retry with the same key is answered with the first
    /// outcome.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `inventory.receiveReceipt`'s arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveReceiptArgs {
    /// The SKU id, e.g. "SKU-7782".
    pub sku: String,
    /// The reference given to inventory.expectReceipt.
    pub reference: String,
    /// Units that arrived; all that are still expected when absent.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub qty: Option<u64>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `inventory.cancelReceipt`'s arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelReceiptArgs {
    /// The SKU id, e.g. "SKU-7782".
    pub sku: String,
    /// The reference given to inventory.expectReceipt.
    pub reference: String,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `inventory.receiveTransfer`'s arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveArgs {
    /// The SKU id, e.g. "SKU-7782".
    pub sku: String,
    /// The transfer_id given to inventory.transfer.
    pub transfer_id: String,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// What the tools on one reservation take beside the REST body: the id, which REST has in
/// the path, and the key, which REST has in a header.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationEnvelope {
    /// The reservation_id orders.create returned.
    pub reservation_id: String,
    /// A retry with the same key is answered with the first outcome.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `orders.confirm`'s and `orders.cancel`'s arguments.
pub type ResolveArgs = WithEnvelope<ReservationEnvelope, ResolveRequest>;
/// `orders.extend`'s arguments.
pub type ExtendArgs = WithEnvelope<ReservationEnvelope, ExtendRequest>;
/// `orders.amend`'s arguments.
pub type AmendArgs = WithEnvelope<ReservationEnvelope, AmendRequest>;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_listed_once_with_its_tag_schema_and_truthful_hints() {
        let policy = Policy::built_in().unwrap();
        let tools = catalogue(&policy);
        assert_eq!(tools.len(), ToolName::ALL.len());
        for tool in &tools {
            let name = ToolName::parse(&tool.name).unwrap();
            let description = tool.description.as_deref().unwrap();
            let tag = if name == ToolName::PoolTypes {
                "[Cache-Control: immutable]"
            } else {
                "[Cache-Control: no-store]"
            };
            assert!(description.ends_with(tag), "{description}");
            assert_eq!(tool.input_schema.get("type").unwrap(), "object");
            let hints = tool.annotations.as_ref().unwrap();
            assert_eq!(hints.read_only_hint, Some(!name.writes()), "{name:?}");
            assert_eq!(hints.open_world_hint, Some(false));
        }
        let create = tools.iter().find(|t| t.name == "orders.create").unwrap();
        let required = create.input_schema.get("required").unwrap();
        assert_eq!(
            required,
            &serde_json::json!(["items"]),
            "only items is required"
        );
    }

    #[test]
    fn writing_tools_take_the_rest_requests_plus_their_envelope() {
        let adjust = AdjustArgs::schema();
        let fields = properties(&adjust);
        for field in [
            "sku",
            "idempotency_key",
            "delta",
            "counted_on_hand",
            "reason",
            "reference",
            "expected_version",
            "location",
        ] {
            assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
        }
        assert_eq!(adjust["required"], serde_json::json!(["sku", "reason"]));
        assert_eq!(adjust["additionalProperties"], serde_json::json!(false));

        let args = |v: Value| v.as_object().unwrap().clone();
        let a = AdjustArgs::parse(args(serde_json::json!(
            {"sku": "A", "delta": -2, "reason": "damaged", "idempotency_key": "k"}
        )))
        .unwrap();
        assert_eq!(a.envelope.sku, "A");
        assert_eq!(a.envelope.idempotency_key.as_deref(), Some("k"));
        assert_eq!(a.request.delta, Some(-2));
        let misspelt = AdjustArgs::parse(args(serde_json::json!(
            {"sku": "A", "delta": 1, "reason": "x", "resaon": "y"}
        )))
        .unwrap_err();
        assert!(misspelt.to_string().contains("resaon"), "{misspelt}");
        let no_sku =
            AdjustArgs::parse(args(serde_json::json!({"delta": 1, "reason": "x"}))).unwrap_err();
        assert!(no_sku.to_string().contains("sku"), "{no_sku}");

        let create = CreateOrderArgs::parse(args(serde_json::json!(
            {"items": [{"sku": "A", "qty": 1}], "idempotency_key": "k"}
        )))
        .unwrap();
        assert_eq!(create.request.items.len(), 1);
        assert_eq!(create.envelope.idempotency_key.as_deref(), Some("k"));
        let placed = CreateOrderArgs::parse(args(serde_json::json!(
            {"items": [{"sku": "A", "qty": 1, "location": "berlin", "allow_split": true,
                        "strategy": "most_stock"}]}
        )))
        .unwrap();
        assert_eq!(placed.request.items[0].location.as_deref(), Some("berlin"));
        assert!(
            CreateOrderArgs::parse(args(serde_json::json!(
                {"items": [{"sku": "A", "qty": 1, "qtty": 2}]}
            )))
            .is_err()
        );
    }
}
