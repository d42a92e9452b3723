//! The body of a webhook call: a notice as marketplaces and services receive it.
//!
//! The field names are camelCase (`eventId`, `previousQuantity`), unlike the snake_case of
//! SSE and the REST API, because `docs/notices.md` documents them so and receivers already
//! parse them; the shape lives here, beside the other channels' shapes, so that the
//! difference is a decision in one place rather than drift. The delivery machinery
//! (`stockade_projections::webhook`) signs and sends whatever [`body`] writes.

use serde::Serialize;
use stockade_projections::model::{Cause, Notice};
use stockade_projections::webhook::PHYSICAL_COUNT_REASON;

/// The body of a webhook call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// The notice's event id: the same notice always has the same id.
    pub event_id: String,
    pub event_type: &'static str,
    /// When the change was committed (RFC 3339).
    pub timestamp: String,
    /// The SKU's version after the change.
    pub version: u64,
    pub seq: u64,
    pub payload: WebhookPayload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    pub sku: String,
    /// Units available before and after; `null` for unlimited goods.
    pub previous_quantity: Option<u64>,
    pub new_quantity: Option<u64>,
    pub status: &'static str,
    pub trigger: &'static str,
    pub order_id: Option<String>,
    /// The reservation a `BACKORDER_FILLED` notice filled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    pub updated_by: Option<String>,
    /// The locations the change moved, for a SKU stocked at several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<WebhookLocation>,
}

/// One location's move, in the payload's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookLocation {
    pub location: String,
    pub previous_quantity: Option<u64>,
    pub new_quantity: Option<u64>,
    pub status: &'static str,
}

/// What caused a notice, in the words marketplaces use.
pub fn trigger(cause: &Cause) -> &'static str {
    match cause.command.as_str() {
        "reserve" => "RESERVED",
        "commit" => "ORDER_CONFIRMED",
        "release" => "RELEASED",
        "expire" => "EXPIRED",
        "fill_backorder" => "BACKORDER_FILLED",
        // The waiter's hold: `reservationId` names it, as the join promised.
        "waitlist_hold" => "WAITLIST_HOLD",
        "join_waitlist" => "WAITLIST_JOINED",
        "leave_waitlist" | "waitlist_dropped" => "WAITLIST_LEFT",
        "adjust" if cause.reason.as_deref() == Some(PHYSICAL_COUNT_REASON) => "SCHEDULED_SYNC",
        _ => "ADMIN_UPDATE",
    }
}

impl From<&Notice> for WebhookEvent {
    fn from(notice: &Notice) -> Self {
        WebhookEvent {
            event_id: notice.event_id.to_string(),
            event_type: "inventory-updated",
            timestamp: notice.committed_at.to_string(),
            version: notice.version,
            seq: notice.seq,
            payload: WebhookPayload {
                sku: notice.sku.to_string(),
                previous_quantity: notice.previous.available,
                new_quantity: notice.current.available,
                status: notice.status.as_str(),
                trigger: trigger(&notice.cause),
                order_id: notice.cause.order_id.clone(),
                reservation_id: notice.cause.reservation_id.clone(),
                updated_by: notice
                    .cause
                    .principal
                    .clone()
                    .or_else(|| notice.cause.channel.clone()),
                locations: notice
                    .locations
                    .iter()
                    .map(|l| WebhookLocation {
                        location: l.location.clone(),
                        previous_quantity: l.previous.available,
                        new_quantity: l.current.available,
                        status: l.status.as_str(),
                    })
                    .collect(),
            },
        }
    }
}

/// The JSON body of `notice`'s webhook call: what a `Sender` is built with.
pub fn body(notice: &Notice) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&WebhookEvent::from(notice)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_name_the_cause() {
        let cause = |command: &str, reason: Option<&str>| Cause {
            via: None,
            reservation_id: None,
            command: command.into(),
            channel: None,
            order_id: None,
            principal: None,
            reason: reason.map(str::to_owned),
        };
        assert_eq!(trigger(&cause("reserve", None)), "RESERVED");
        assert_eq!(trigger(&cause("commit", None)), "ORDER_CONFIRMED");
        assert_eq!(trigger(&cause("release", None)), "RELEASED");
        assert_eq!(trigger(&cause("expire", None)), "EXPIRED");
        assert_eq!(trigger(&cause("fill_backorder", None)), "BACKORDER_FILLED");
        assert_eq!(trigger(&cause("waitlist_hold", None)), "WAITLIST_HOLD");
        assert_eq!(trigger(&cause("waitlist_dropped", None)), "WAITLIST_LEFT");
        assert_eq!(trigger(&cause("adjust", Some("damaged"))), "ADMIN_UPDATE");
        assert_eq!(
            trigger(&cause("adjust", Some(PHYSICAL_COUNT_REASON))),
            "SCHEDULED_SYNC"
        );
        assert_eq!(trigger(&cause("register", None)), "ADMIN_UPDATE");
    }
}
