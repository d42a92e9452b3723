//! One MCP session's memory: its [`ReadLedger`], the notice feed that keeps the ledger
//! true, and its resource subscriptions.
//!
//! A session is one handler instance: the MCP session over streamable HTTP (the legacy
//! revisions, which have `initialize` and `Mcp-Session-Id`), the whole process over stdio.
//!
//! Keeping the ledger true without a race:
//! - the feed is subscribed *before* the first read is taken, so no change after a read
//!   can fall between the two (a notice the read already reflects is ignored by version);
//! - before a tool answers, [`Session::catch_up`] takes the log's head, waits (bounded)
//!   until the projector has published every notice through it, and drains the feed. A
//!   change committed before the call (a web checkout answered a moment ago) is therefore
//!   on this very result, not the next one;
//! - a feed that fell too far behind is cut off by the hub; the session then subscribes
//!   again and replays the outbox from where it was, or, if the outbox no longer has
//!   those notices, compares every SKU it read with the read model;
//! - a session's calls take turns ([`Session::turn`]): otherwise one call could drain the
//!   notice for a SKU another call has read but not yet recorded, and it would never be
//!   told.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::{Peer, RoleServer};
use stockade_domain::{Principal, Sku};
use stockade_projections::{HubMessage, HubSubscriber};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::ledger::{ReadLedger, StaleRead};
use crate::server::Backend;

/// Notices a session's feed may hold before the hub cuts it off. A session that is idle
/// while thousands of changes go by is cut off and catches up from the outbox.
const FEED_BUFFER: usize = 4096;
/// Longest a tool result waits for the projector to publish what the log holds.
const SYNC_WAIT: Duration = Duration::from_millis(500);
/// Outbox notices read per page when a cut-off feed catches up.
const REPLAY_PAGE: usize = 1000;
/// Pages read before giving up on the outbox and asking the engine instead.
const REPLAY_PAGES: usize = 20;

/// The URI of a SKU's resource.
pub fn resource_uri(sku: &Sku) -> String {
    format!("inventory://sku/{sku}")
}

/// The SKU a resource URI names, if it is one of ours.
pub fn resource_sku(uri: &str) -> Option<Sku> {
    uri.strip_prefix("inventory://sku/")
        .and_then(|s| Sku::new(s).ok())
}

#[derive(Debug, Default)]
pub struct Session {
    ledger: Mutex<ReadLedger>,
    feed: Mutex<Option<HubSubscriber>>,
    /// Who opened the session; later requests under another principal are refused, so a
    /// leaked session id does not lend one caller's reads (or rights) to another.
    owner: OnceLock<Option<Principal>>,
    /// Resource URIs subscribed with `resources/subscribe`.
    subscriptions: Arc<Mutex<BTreeSet<String>>>,
    /// Ends the subscription watcher when the session ends.
    watcher: Mutex<Option<DropGuard>>,
    /// Held by a call from catching up to recording what it read and wrote.
    turn: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds the session to its first caller; false if `principal` is someone else.
    pub fn admits(&self, principal: Option<&Principal>) -> bool {
        self.owner.get_or_init(|| principal.cloned()).as_ref() == principal
    }

    /// Subscribes the feed if it is not yet; call before taking a read.
    pub fn follow(&self, backend: &Backend) {
        let mut feed = lock(&self.feed);
        if feed.is_none() {
            *feed = Some(backend.hub.subscribe(FEED_BUFFER));
        }
    }

    /// Records what the session was shown.
    pub fn read(&self, sku: &Sku, version: u64) {
        lock(&self.ledger).read(sku, version);
    }

    /// The session joined a waitlist: its hold will be `hold_id`.
    pub fn await_hold(&self, sku: &Sku, hold_id: String) {
        lock(&self.ledger).await_hold(sku, hold_id);
    }

    /// A place the session joined was served at once.
    pub fn served(&self, sku: &Sku, hold_id: String) {
        lock(&self.ledger).served(sku, hold_id);
    }

    /// Waitlist holds to tell on this result.
    pub fn take_served(&self) -> Vec<(Sku, String)> {
        lock(&self.ledger).take_served()
    }

    /// Records what the session itself changed.
    pub fn wrote(&self, sku: &Sku, version: u64) {
        lock(&self.ledger).wrote(sku, version);
    }

    /// Waits for the session's other calls to finish their bookkeeping.
    pub async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    /// Whether the session has read `sku` (and still follows it).
    pub fn has_read(&self, sku: &Sku) -> bool {
        lock(&self.ledger).has_read(sku)
    }

    /// The stale reads to tell on this result.
    pub fn take_stale(&self) -> Vec<StaleRead> {
        lock(&self.ledger).take_stale()
    }

    /// Stale reads that were to be told by a result that was never delivered.
    pub fn restore(&self, stale: Vec<StaleRead>) {
        lock(&self.ledger).restore(stale);
    }

    /// Brings the ledger up to the log's head as of now (see the module docs).
    pub async fn catch_up(&self, backend: &Backend) {
        if lock(&self.ledger).is_empty() {
            return;
        }
        match backend.inventory.store().head().await {
            Ok(head) => {
                if !backend.hub.wait_published(head, SYNC_WAIT).await {
                    metrics::counter!("stockade_mcp_sync_timeouts_total").increment(1);
                    tracing::warn!(
                        "mcp: the projector is behind the log; staleness may be told one result late"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "mcp: could not read the log's head"),
        }
        loop {
            let message = lock(&self.feed).as_mut().and_then(HubSubscriber::try_recv);
            match message {
                Some(HubMessage::Notice(notice)) => {
                    lock(&self.ledger).observe(&notice);
                }
                Some(HubMessage::Resync { last_seq }) => self.resync(backend, last_seq).await,
                None => break,
            }
        }
    }

    /// The feed was cut off after `last_seq`: subscribe again first, then replay what
    /// was missed from the outbox, or check every read against the engine.
    async fn resync(&self, backend: &Backend, last_seq: u64) {
        *lock(&self.feed) = Some(backend.hub.subscribe(FEED_BUFFER));
        let mut after = last_seq;
        for _ in 0..REPLAY_PAGES {
            let page = match backend.models.notices(after, REPLAY_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "mcp: outbox unreadable; checking reads against the engine");
                    break;
                }
            };
            // The outbox was pruned past the point the feed reached: notices are missing.
            if page.first().is_some_and(|n| n.seq != after + 1) {
                break;
            }
            let Some(last) = page.last() else {
                return;
            };
            after = last.seq;
            let mut ledger = lock(&self.ledger);
            for notice in &page {
                ledger.observe(notice);
            }
        }
        self.check_reads(backend).await;
    }

    /// Compares every SKU the session read with the read model, which the wait in
    /// [`Session::catch_up`] brought up to the log's head. (The read model, not the
    /// engine: asking thousands of actors, some passivated, would stall this result.)
    async fn check_reads(&self, backend: &Backend) {
        let reads: Vec<Sku> = lock(&self.ledger)
            .reads()
            .map(|(sku, _)| sku.clone())
            .collect();
        for sku in reads {
            if let Ok(Some(row)) = backend.models.stock(&sku).await {
                lock(&self.ledger).moved(
                    &sku,
                    row.version,
                    "changes while this session was idle".to_owned(),
                    row.level.available,
                );
            }
        }
    }

    /// Adds a resource subscription, starting the watcher that sends
    /// `notifications/resources/updated` to `peer` on the first one.
    pub fn subscribe(&self, backend: &Backend, uri: String, peer: Peer<RoleServer>) {
        lock(&self.subscriptions).insert(uri);
        let mut watcher = lock(&self.watcher);
        if watcher.is_some() {
            return;
        }
        let token = CancellationToken::new();
        let hub = backend.hub.clone();
        let subscriptions = self.subscriptions.clone();
        let cancelled = token.clone();
        tokio::spawn(async move {
            let mut feed = hub.subscribe(FEED_BUFFER);
            loop {
                let message = tokio::select! {
                    () = cancelled.cancelled() => return,
                    m = feed.recv() => m,
                };
                let uris: Vec<String> = match message {
                    Some(HubMessage::Notice(notice)) => {
                        let uri = resource_uri(&notice.sku);
                        if !lock(&subscriptions).contains(&uri) {
                            continue;
                        }
                        vec![uri]
                    }
                    // Missed notices: tell every subscription to read again.
                    Some(HubMessage::Resync { .. }) => {
                        feed = hub.subscribe(FEED_BUFFER);
                        lock(&subscriptions).iter().cloned().collect()
                    }
                    None => return,
                };
                for uri in uris {
                    let sent = peer
                        .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                        .await;
                    if sent.is_err() || peer.is_transport_closed() {
                        return;
                    }
                }
            }
        });
        *watcher = Some(token.drop_guard());
    }

    pub fn unsubscribe(&self, uri: &str) {
        lock(&self.subscriptions).remove(uri);
    }
}
