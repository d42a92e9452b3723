//! [`ReadLedger`]: what one MCP session has read, at which version, and which of those
//! reads have since gone stale.
//!
//! The session records every SKU it was shown with the version it was shown at. Every
//! notice (from any channel: web checkout, POS, another assistant, an expiry) is offered
//! to every session's ledger; a notice for a SKU the session read at an older version makes
//! that read stale. The session's next tool result then begins with [`ReadLedger::take_block`],
//! which names each stale read once (old version → new version, and why), and the read is
//! forgotten until the SKU is read again.
//!
//! Invariants: a session that read nothing is never told anything; a session is told only
//! about SKUs it read; a read is reported stale at most once per change seen; the session's
//! own writes are told by the write's invalidation block instead ([`ReadLedger::wrote`]),
//! and a read the session then holds follows the SKU from the written version on.

use std::collections::{BTreeMap, HashMap};

use stockade_domain::Sku;
use stockade_projections::Notice;

/// Most SKUs one session's ledger tracks; the oldest reads are dropped past it, so a
/// session that lists a whole catalogue cannot grow without bound.
pub const MAX_READS: usize = 10_000;

/// A read that a later change made stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRead {
    pub sku: Sku,
    /// The version the session was shown.
    pub read: u64,
    /// The newest version a notice has reported since.
    pub current: u64,
    /// Why, in words: `web checkout`, `pos reservation`, `expiry`, ...
    pub cause: String,
    /// Units available at `current`, when known and limited.
    pub available: Option<u64>,
}

/// Most waitlist places one session waits on at once.
pub const MAX_AWAITED: usize = 1_000;

/// One session's reads, and the waitlist places it joined.
#[derive(Debug, Default)]
pub struct ReadLedger {
    /// SKU → (version read, order of the read), for dropping the oldest.
    reads: HashMap<Sku, (u64, u64)>,
    stale: BTreeMap<Sku, StaleRead>,
    counter: u64,
    /// Hold id → SKU of each waitlist place this session joined and not yet seen served.
    awaited: HashMap<String, Sku>,
    /// Places served since the last result told them: (SKU, hold id).
    served: Vec<(Sku, String)>,
}

impl ReadLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// The session was shown `sku` at `version`. A newer read replaces an older one and
    /// settles any staleness found before it.
    pub fn read(&mut self, sku: &Sku, version: u64) {
        self.counter += 1;
        match self.reads.get(sku) {
            Some((seen, _)) if *seen > version => return,
            _ => {}
        }
        self.reads.insert(sku.clone(), (version, self.counter));
        if self.stale.get(sku).is_some_and(|s| s.current <= version) {
            self.stale.remove(sku);
        }
        if self.reads.len() > MAX_READS {
            // Drop the oldest tenth at once, so the cost is amortised over many reads.
            let mut orders: Vec<u64> = self.reads.values().map(|(_, order)| *order).collect();
            let cut = orders.len() - MAX_READS * 9 / 10;
            let (_, cutoff, _) = orders.select_nth_unstable(cut - 1);
            let cutoff = *cutoff;
            self.reads.retain(|_, (_, order)| *order > cutoff);
        }
    }

    /// The session itself changed `sku`, to `version`: its write's result already says so,
    /// so that change is not reported again. A read of the SKU moves up to the written
    /// version: the model still holds figures for it, and a later change by someone else
    /// must still be told.
    pub fn wrote(&mut self, sku: &Sku, version: u64) {
        if let Some((seen, _)) = self.reads.get_mut(sku) {
            *seen = (*seen).max(version);
        }
        if self.stale.get(sku).is_some_and(|s| s.current <= version) {
            self.stale.remove(sku);
        }
    }

    /// The session joined `sku`'s waitlist; its hold will be `hold_id` (told on the next
    /// result once a `waitlist_hold` notice names it).
    pub fn await_hold(&mut self, sku: &Sku, hold_id: String) {
        if self.awaited.len() < MAX_AWAITED {
            self.awaited.insert(hold_id, sku.clone());
        }
    }

    /// A place this session waited on was served with hold `hold_id`.
    pub fn served(&mut self, sku: &Sku, hold_id: String) {
        self.awaited.remove(&hold_id);
        self.served.push((sku.clone(), hold_id));
    }

    /// Waitlist holds to tell now, forgotten here.
    pub fn take_served(&mut self) -> Vec<(Sku, String)> {
        std::mem::take(&mut self.served)
    }

    /// Offers a notice. Returns whether it made one of this session's reads stale.
    pub fn observe(&mut self, notice: &Notice) -> bool {
        if notice.cause.command == "waitlist_hold"
            && let Some(id) = &notice.cause.reservation_id
            && self.awaited.contains_key(id)
        {
            self.served(&notice.sku, id.clone());
        }
        if !self.reads.contains_key(&notice.sku) {
            return false;
        }
        self.moved(
            &notice.sku,
            notice.version,
            describe(notice),
            notice.current.available,
        )
    }

    /// `sku` is now at `version` because of `cause` (for changes learnt other than by a
    /// notice, such as a check after missed notices). Returns whether it made a read stale.
    pub fn moved(
        &mut self,
        sku: &Sku,
        version: u64,
        cause: String,
        available: Option<u64>,
    ) -> bool {
        let Some((read, _)) = self.reads.get(sku).copied() else {
            return false;
        };
        if version <= read {
            return false;
        }
        self.stale
            .entry(sku.clone())
            .and_modify(|s| {
                if version > s.current {
                    s.current = version;
                    s.cause = cause.clone();
                    s.available = available;
                }
            })
            .or_insert_with(|| StaleRead {
                sku: sku.clone(),
                read,
                current: version,
                cause,
                available,
            });
        true
    }

    /// The SKUs this session has read (and not been told are stale), with the versions.
    pub fn reads(&self) -> impl Iterator<Item = (&Sku, u64)> {
        self.reads.iter().map(|(sku, (version, _))| (sku, *version))
    }

    /// Whether the session follows `sku` (has read it, and not been told it is stale).
    pub fn has_read(&self, sku: &Sku) -> bool {
        self.reads.contains_key(sku)
    }

    /// Whether the session has nothing a notice could change: no read that could go
    /// stale, no waitlist place awaited.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.awaited.is_empty()
    }

    /// Stale reads not yet told, oldest SKU name first.
    pub fn pending(&self) -> impl Iterator<Item = &StaleRead> {
        self.stale.values()
    }

    /// The block the session's next tool result begins with, if any read went stale; the
    /// reads it names are forgotten (the session must read them again).
    pub fn take_block(&mut self) -> Option<String> {
        block(&self.take_stale())
    }

    /// The stale reads to tell now, forgotten here; [`ReadLedger::restore`] puts them
    /// back if the result that was to tell them is never delivered.
    pub fn take_stale(&mut self) -> Vec<StaleRead> {
        let stale: Vec<StaleRead> = std::mem::take(&mut self.stale).into_values().collect();
        for s in &stale {
            self.reads.remove(&s.sku);
        }
        stale
    }

    /// Stale reads taken but not told (the call was cancelled): they are pending again,
    /// unless the SKU has been read since.
    pub fn restore(&mut self, stale: Vec<StaleRead>) {
        for s in stale {
            if self.reads.contains_key(&s.sku) {
                continue;
            }
            self.counter += 1;
            self.reads.insert(s.sku.clone(), (s.read, self.counter));
            self.moved(&s.sku, s.current, s.cause, s.available);
        }
    }
}

/// The text of the stale-read block for `stale`, if there is anything to tell.
pub fn block(stale: &[StaleRead]) -> Option<String> {
    if stale.is_empty() {
        return None;
    }
    let lines: Vec<String> = stale
        .iter()
        .map(|s| {
            let now = s
                .available
                .map(|a| format!(" (now {a} available)"))
                .unwrap_or_default();
            format!(
                "inventory.{} v{} → v{}{now}, caused by {}",
                s.sku, s.read, s.current, s.cause
            )
        })
        .collect();
    Some(format!(
        "[System: Stale reads — {}. Read them again before quoting or promising stock.]",
        lines.join("; ")
    ))
}

/// The text of the waitlist block for `served`, if there is anything to tell.
pub fn served_block(served: &[(Sku, String)]) -> Option<String> {
    if served.is_empty() {
        return None;
    }
    let lines: Vec<String> = served
        .iter()
        .map(|(sku, id)| format!("{sku}: reservation {id}"))
        .collect();
    Some(format!(
        "[System: Waitlist hold — {}. Freed stock is now held for the customer who waited; \
         confirm it with orders.confirm before it lapses (inventory.waitlistPosition says \
         nothing more about a place once it is served).]",
        lines.join("; ")
    ))
}

/// A notice's cause in words a model and a person both read: the channel, then what
/// happened (`web checkout`, `pos reservation`, `expiry`, `admin adjustment: damaged`).
pub fn describe(notice: &Notice) -> String {
    let cause = &notice.cause;
    let what = match cause.command.as_str() {
        "reserve" => "reservation",
        "commit" => "checkout",
        "release" => "release",
        "expire" => return "expiry of a reservation".to_owned(),
        "adjust" => "adjustment",
        "register" => "registration",
        other => other,
    };
    let who = cause
        .channel
        .as_deref()
        .filter(|c| *c != "direct")
        .or(cause.principal.as_deref());
    let mut text = match who {
        Some(who) => format!("{who} {what}"),
        None => what.to_owned(),
    };
    if let Some(reason) = &cause.reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use stockade_domain::Timestamp;
    use stockade_projections::model::{Cause, Level, Status};
    use stockade_store::Position;

    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::new(s).unwrap()
    }

    fn notice(s: &str, version: u64, command: &str, channel: Option<&str>) -> Notice {
        let level = Level {
            on_hand: Some(3),
            reserved: 0,
            available: Some(3),
            ..Level::default()
        };
        Notice {
            locations: Vec::new(),
            seq: version,
            sku: sku(s),
            version,
            previous: level,
            current: level,
            previous_status: Status::LowStock,
            status: Status::LowStock,
            cause: Cause {
                via: None,
                reservation_id: None,
                command: command.into(),
                channel: channel.map(str::to_owned),
                order_id: None,
                principal: None,
                reason: None,
            },
            scopes: vec![],
            committed_at: Timestamp::EPOCH,
            event_id: uuid::Uuid::nil(),
            position: Position::at(version),
        }
    }

    #[test]
    fn a_web_checkout_after_a_read_is_told_once_on_the_next_result() {
        let mut ledger = ReadLedger::new();
        ledger.read(&sku("SKU-7782"), 41);
        assert!(ledger.observe(&notice("SKU-7782", 42, "reserve", Some("web"))));
        assert!(ledger.observe(&notice("SKU-7782", 43, "commit", Some("web"))));
        assert_eq!(
            ledger.take_block().unwrap(),
            "[System: Stale reads — inventory.SKU-7782 v41 → v43 (now 3 available), caused by web checkout. \
             Read them again before quoting or promising stock.]"
        );
        assert_eq!(ledger.take_block(), None, "told once");
        // Forgotten until read again: later changes are not reported for an old read.
        assert!(!ledger.observe(&notice("SKU-7782", 44, "expire", None)));
        ledger.read(&sku("SKU-7782"), 44);
        assert!(ledger.observe(&notice("SKU-7782", 45, "expire", None)));
        assert!(
            ledger
                .take_block()
                .unwrap()
                .contains("v44 → v45 (now 3 available), caused by expiry")
        );
    }

    #[test]
    fn a_session_that_read_nothing_or_something_else_is_told_nothing() {
        let mut nothing = ReadLedger::new();
        assert!(!nothing.observe(&notice("A", 2, "commit", Some("web"))));
        assert_eq!(nothing.take_block(), None);
        let mut read_a = ReadLedger::new();
        read_a.read(&sku("A"), 1);
        assert!(!read_a.observe(&notice("B", 9, "commit", Some("web"))));
        assert_eq!(read_a.take_block(), None);
    }

    #[test]
    fn old_notices_and_newer_reads_settle_staleness() {
        let mut ledger = ReadLedger::new();
        ledger.read(&sku("A"), 5);
        // A notice the read already reflects.
        assert!(!ledger.observe(&notice("A", 5, "reserve", Some("pos"))));
        assert!(ledger.observe(&notice("A", 6, "reserve", Some("pos"))));
        // Read again at the new version before the next result: nothing to tell.
        ledger.read(&sku("A"), 6);
        assert_eq!(ledger.take_block(), None);
        // An older read arriving late does not move the ledger back.
        ledger.read(&sku("A"), 3);
        assert!(!ledger.observe(&notice("A", 6, "reserve", Some("pos"))));
    }

    #[test]
    fn the_sessions_own_write_is_not_reported_but_a_later_change_by_others_is() {
        let mut ledger = ReadLedger::new();
        ledger.read(&sku("A"), 5);
        ledger.wrote(&sku("A"), 6);
        assert!(!ledger.observe(&notice("A", 6, "reserve", Some("assistant"))));
        assert_eq!(ledger.take_block(), None);
        assert!(ledger.observe(&notice("A", 7, "commit", Some("web"))));
        assert!(ledger.take_block().unwrap().contains("inventory.A v6 → v7"));
        // A SKU only written, never read, is not followed.
        ledger.wrote(&sku("B"), 3);
        assert!(!ledger.observe(&notice("B", 4, "commit", Some("web"))));
    }

    #[test]
    fn stale_reads_taken_but_not_told_are_pending_again() {
        let mut ledger = ReadLedger::new();
        ledger.read(&sku("A"), 1);
        ledger.read(&sku("B"), 1);
        ledger.observe(&notice("A", 2, "commit", Some("web")));
        ledger.observe(&notice("B", 2, "commit", Some("web")));
        let taken = ledger.take_stale();
        assert_eq!(taken.len(), 2);
        assert_eq!(ledger.take_block(), None);
        // B was read again meanwhile: only A is pending again.
        ledger.read(&sku("B"), 2);
        ledger.restore(taken);
        let block = ledger.take_block().unwrap();
        assert!(block.contains("inventory.A v1 → v2"), "{block}");
        assert!(!block.contains("inventory.B"), "{block}");
    }

    #[test]
    fn several_stale_reads_are_named_together_in_sku_order() {
        let mut ledger = ReadLedger::new();
        ledger.read(&sku("B"), 1);
        ledger.read(&sku("A"), 1);
        ledger.observe(&notice("B", 2, "reserve", Some("marketplace")));
        ledger.observe(&notice("A", 3, "adjust", None));
        let block = ledger.take_block().unwrap();
        let a = block
            .find("inventory.A v1 → v3 (now 3 available), caused by adjustment")
            .unwrap();
        let b = block
            .find("inventory.B v1 → v2 (now 3 available), caused by marketplace reservation")
            .unwrap();
        assert!(a < b, "{block}");
    }

    #[test]
    fn the_ledger_is_bounded() {
        let mut ledger = ReadLedger::new();
        for i in 0..=MAX_READS {
            ledger.read(&sku(&format!("S{i}")), 1);
        }
        assert!(ledger.reads.len() <= MAX_READS);
        assert!(
            !ledger.reads.contains_key(&sku("S0")),
            "the oldest read is dropped"
        );
    }
}
