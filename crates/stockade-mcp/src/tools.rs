//! The tool table: names, descriptions (with the policy's cache-control tag), input
//! schemas and annotations, and the argument shapes the tools accept.
//!
//! Arguments mirror the REST API's bodies and deny unknown fields, so a misspelt option
//! is refused with a message instead of quietly ignored. Annotations are hints a client
//! may act on (skip confirmation for read-only tools, retry idempotent ones), so each is
//! set to what the tool really does.

use std::collections::BTreeMap;

use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::policy::Policy;

/// Every tool this server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolName {
    GetStock,
    List,
    Adjust,
    OrdersCreate,
    OrdersConfirm,
    OrdersCancel,
    PoolTypes,
}

impl ToolName {
    pub const ALL: [ToolName; 7] = [
        ToolName::GetStock,
        ToolName::List,
        ToolName::Adjust,
        ToolName::OrdersCreate,
        ToolName::OrdersConfirm,
        ToolName::OrdersCancel,
        ToolName::PoolTypes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolName::GetStock => "inventory.getStock",
            ToolName::List => "inventory.list",
            ToolName::Adjust => "inventory.adjust",
            ToolName::OrdersCreate => "orders.create",
            ToolName::OrdersConfirm => "orders.confirm",
            ToolName::OrdersCancel => "orders.cancel",
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
                | ToolName::OrdersCreate
                | ToolName::OrdersConfirm
                | ToolName::OrdersCancel
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
            ToolName::OrdersCreate => {
                "Reserve stock for an order, all or nothing: every item is held, or none is. \
                 The hold lapses after `ttl_seconds` (default 900) unless confirmed. Pass \
                 `expected_versions` (SKU → the version you read) to refuse the order if any of \
                 those SKUs moved since, and `idempotency_key` to make a retry safe (without a \
                 key, calling twice holds twice). A refusal says how much is available now."
            }
            ToolName::OrdersConfirm => {
                "Confirm (commit) a reservation from orders.create: its units become a sale. \
                 Confirming twice is refused, so a retry is safe."
            }
            ToolName::OrdersCancel => {
                "Cancel (release) a reservation from orders.create: its units become available \
                 again. Cancelling twice is refused, so a retry is safe."
            }
            ToolName::PoolTypes => {
                "The kinds of stock pool a SKU can draw from (physical, digital, print on \
                 demand) and the rules each follows. Reference data: it does not change while \
                 the server runs."
            }
        }
    }

    fn title(self) -> &'static str {
        match self {
            ToolName::GetStock => "Get stock of a SKU",
            ToolName::List => "List SKUs with stock",
            ToolName::Adjust => "Adjust stock",
            ToolName::OrdersCreate => "Create an order (reserve stock)",
            ToolName::OrdersConfirm => "Confirm an order",
            ToolName::OrdersCancel => "Cancel an order",
            ToolName::PoolTypes => "Pool types and their rules",
        }
    }

    /// What the tool does, as hints. Reads touch only this server's data (closed world).
    fn annotations(self) -> ToolAnnotations {
        let base = ToolAnnotations::with_title(self.title()).open_world(false);
        match self {
            ToolName::GetStock | ToolName::List | ToolName::PoolTypes => base.read_only(true),
            // A delta applied twice moves stock twice.
            ToolName::Adjust => base.read_only(false).destructive(true).idempotent(false),
            // Adds a hold; without a key a second call holds again.
            ToolName::OrdersCreate => base.read_only(false).destructive(false).idempotent(false),
            // A second confirm is refused and changes nothing.
            ToolName::OrdersConfirm => base.read_only(false).destructive(false).idempotent(true),
            // Gives up a hold the order had: destructive, but only once.
            ToolName::OrdersCancel => base.read_only(false).destructive(true).idempotent(true),
        }
    }

    fn input_schema(self) -> std::sync::Arc<rmcp::model::JsonObject> {
        match self {
            ToolName::GetStock => schema_for_type::<GetStockArgs>(),
            ToolName::List => schema_for_type::<ListArgs>(),
            ToolName::Adjust => schema_for_type::<AdjustArgs>(),
            ToolName::OrdersCreate => schema_for_type::<CreateOrderArgs>(),
            ToolName::OrdersConfirm | ToolName::OrdersCancel => {
                schema_for_type::<ReservationArgs>()
            }
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustArgs {
    pub sku: String,
    /// Units received (positive) or written off (negative). Give this or counted_on_hand.
    #[serde(default)]
    pub delta: Option<i64>,
    /// A physical count: the new on-hand figure. Give this or delta.
    #[serde(default)]
    pub counted_on_hand: Option<u64>,
    /// Why, in a few words: "received PO-118", "damaged", "cycle count".
    pub reason: String,
    #[serde(default)]
    pub reference: Option<String>,
    /// Refuse unless the SKU is still at this version (from inventory.getStock).
    #[serde(default)]
    pub expected_version: Option<u64>,
    /// A retry with the same key is answered with the first outcome.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    pub sku: String,
    /// Units, at least 1.
    #[schemars(range(min = 1))]
    pub qty: u64,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderArgs {
    /// One line per SKU; all are held or none is.
    pub items: Vec<OrderItem>,
    /// How long the hold lasts, 1-604800 seconds (default 900).
    #[serde(default)]
    #[schemars(range(min = 1, max = 604_800))]
    pub ttl_seconds: Option<u64>,
    #[serde(default)]
    pub order_id: Option<String>,
    /// A retry with the same key returns the same reservation instead of holding again.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// SKU → the version you decided on; the order is refused if any of them moved.
    #[serde(default)]
    pub expected_versions: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationArgs {
    /// The reservation_id orders.create returned.
    pub reservation_id: String,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

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
}
