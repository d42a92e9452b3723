//! The notice hub: fans each committed notice out to every in-process subscriber (SSE and
//! WebSocket clients, MCP sessions, the webhook dispatcher's wake-up, benches).
//!
//! Each subscriber has its own bounded buffer. Publishing never waits: a subscriber whose
//! buffer is full is cut off on the spot, and reads `Resync` after the notices it already
//! has. It then subscribes again and, after that, reloads what it shows, for example from
//! the outbox (`ReadModels::notices`) or the stock rows. In that order nothing falls
//! between the two. A slow reader therefore never slows the
//! projector or the other readers.
//!
//! The hub also carries the projector's watermark: the log position through which every
//! notice has been published ([`NoticeHub::published`]). A reader that must not answer
//! from an older picture than the log's head (an MCP session about to tell a model what
//! went stale) waits for the watermark to pass the head, then drains its buffer with
//! [`HubSubscriber::try_recv`]; everything committed before the wait is then in hand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stockade_store::Position;
use tokio::sync::{mpsc, watch};

use crate::model::Notice;

/// Notices a subscriber may fall behind by before it is cut off.
pub const DEFAULT_BUFFER: usize = 4096;

/// What a subscriber reads.
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    Notice(Arc<Notice>),
    /// The subscriber fell too far behind and missed notices after `last_seq`; it must
    /// reload and subscribe again. Nothing follows this message.
    Resync {
        last_seq: u64,
    },
}

struct Slot {
    tx: mpsc::Sender<Arc<Notice>>,
    cut: Arc<AtomicBool>,
}

/// Cheap to clone; all clones publish to the same subscribers.
#[derive(Clone)]
pub struct NoticeHub {
    slots: Arc<Mutex<Vec<Slot>>>,
    /// Every notice for an event at or before this position has been published.
    published: Arc<watch::Sender<Position>>,
}

impl Default for NoticeHub {
    fn default() -> Self {
        Self {
            slots: Arc::default(),
            published: Arc::new(watch::Sender::new(Position::START)),
        }
    }
}

impl std::fmt::Debug for NoticeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoticeHub")
            .field("subscribers", &self.subscribers())
            .finish()
    }
}

impl NoticeHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new subscriber that sees every notice published from now on.
    pub fn subscribe(&self, buffer: usize) -> HubSubscriber {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let cut = Arc::new(AtomicBool::new(false));
        self.lock().push(Slot {
            tx,
            cut: cut.clone(),
        });
        HubSubscriber {
            rx,
            cut,
            last_seq: 0,
            done: false,
        }
    }

    /// Delivers `notices`, in order, to every subscriber; never waits.
    pub fn publish(&self, notices: Vec<Notice>) {
        let mut slots = self.lock();
        if notices.is_empty() || slots.is_empty() {
            return;
        }
        let shared: Vec<Arc<Notice>> = notices.into_iter().map(Arc::new).collect();
        slots.retain(|slot| {
            for notice in &shared {
                match slot.tx.try_send(notice.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Cut off: mark first, so the reader sees Resync once it has
                        // drained what it has; dropping the sender then closes its channel.
                        slot.cut.store(true, Ordering::Release);
                        metrics::counter!("stockade_hub_cutoffs_total").increment(1);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }

    pub fn subscribers(&self) -> usize {
        self.lock().len()
    }

    /// Records that every notice for events through `to` has been published. Called by
    /// the projector after [`NoticeHub::publish`]; the watermark never moves back.
    pub fn advance(&self, to: Position) {
        self.published.send_if_modified(|at| {
            let moved = to > *at;
            if moved {
                *at = to;
            }
            moved
        });
    }

    /// The watermark: notices through this position have been published.
    pub fn published(&self) -> Position {
        *self.published.borrow()
    }

    /// Waits until the watermark reaches `position`, for at most `timeout`. Returns
    /// whether it did (false: the projector is behind or stopped).
    pub async fn wait_published(&self, position: Position, timeout: Duration) -> bool {
        let mut rx = self.published.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|at| *at >= position)).await,
            Ok(Ok(_))
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One subscriber's end.
#[derive(Debug)]
pub struct HubSubscriber {
    rx: mpsc::Receiver<Arc<Notice>>,
    cut: Arc<AtomicBool>,
    last_seq: u64,
    done: bool,
}

impl HubSubscriber {
    /// The next message; `None` when the hub is gone or after a `Resync`.
    pub async fn recv(&mut self) -> Option<HubMessage> {
        if self.done {
            return None;
        }
        match self.rx.recv().await {
            Some(notice) => {
                self.last_seq = notice.seq;
                Some(HubMessage::Notice(notice))
            }
            None => self.closed(),
        }
    }

    /// The next message if one is already buffered; `None` when the buffer is empty (or
    /// the subscription is over, which [`HubSubscriber::is_done`] tells apart).
    pub fn try_recv(&mut self) -> Option<HubMessage> {
        if self.done {
            return None;
        }
        match self.rx.try_recv() {
            Ok(notice) => {
                self.last_seq = notice.seq;
                Some(HubMessage::Notice(notice))
            }
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => self.closed(),
        }
    }

    /// Nothing more will come: the hub is gone, or this subscriber was told to resync.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn closed(&mut self) -> Option<HubMessage> {
        self.done = true;
        self.cut
            .load(Ordering::Acquire)
            .then_some(HubMessage::Resync {
                last_seq: self.last_seq,
            })
    }
}

#[cfg(test)]
mod tests {
    use stockade_domain::{Sku, Timestamp};
    use stockade_store::Position;

    use super::*;
    use crate::model::{Cause, Level, Status};

    fn notice(seq: u64) -> Notice {
        let level = Level {
            on_hand: Some(10),
            reserved: 0,
            available: Some(10),
            ..Level::default()
        };
        Notice {
            locations: Vec::new(),
            seq,
            sku: Sku::new("A").unwrap(),
            version: seq,
            previous: level,
            current: level,
            previous_status: Status::InStock,
            status: Status::InStock,
            cause: Cause {
                via: None,
                reservation_id: None,
                command: "reserve".into(),
                channel: None,
                order_id: None,
                principal: None,
                reason: None,
            },
            scopes: vec![],
            committed_at: Timestamp::EPOCH,
            event_id: uuid::Uuid::new_v4(),
            position: Position::at(seq),
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_cut_off_and_told_to_resync_while_others_get_everything() {
        let hub = NoticeHub::new();
        let mut slow = hub.subscribe(2);
        let mut fast = hub.subscribe(100);
        let batch: Vec<_> = (1..=5).map(notice).collect();
        hub.publish(batch.clone());
        assert_eq!(hub.subscribers(), 1, "the slow one is dropped");
        for seq in 1..=5 {
            match fast.recv().await {
                Some(HubMessage::Notice(n)) => assert_eq!(n.seq, seq),
                other => panic!("{other:?}"),
            }
        }
        // The slow one reads what fitted, then Resync, then nothing.
        for seq in 1..=2 {
            assert!(matches!(slow.recv().await, Some(HubMessage::Notice(n)) if n.seq == seq));
        }
        assert_eq!(slow.recv().await, Some(HubMessage::Resync { last_seq: 2 }));
        assert_eq!(slow.recv().await, None);
        // Later notices still reach the fast one.
        hub.publish(vec![notice(6)]);
        assert!(matches!(fast.recv().await, Some(HubMessage::Notice(n)) if n.seq == 6));
    }

    #[tokio::test]
    async fn try_recv_drains_what_is_buffered_then_tells_a_cut_off_reader_to_resync() {
        let hub = NoticeHub::new();
        let mut reader = hub.subscribe(2);
        assert_eq!(reader.try_recv(), None);
        assert!(!reader.is_done());
        hub.publish((1..=3).map(notice).collect::<Vec<_>>());
        assert!(matches!(reader.try_recv(), Some(HubMessage::Notice(n)) if n.seq == 1));
        assert!(matches!(reader.try_recv(), Some(HubMessage::Notice(n)) if n.seq == 2));
        assert_eq!(reader.try_recv(), Some(HubMessage::Resync { last_seq: 2 }));
        assert!(reader.is_done());
        assert_eq!(reader.try_recv(), None);
    }

    #[tokio::test]
    async fn the_watermark_only_moves_forward_and_wakes_waiters() {
        let hub = NoticeHub::new();
        assert!(
            !hub.wait_published(Position::at(3), Duration::from_millis(10))
                .await
        );
        let waiter = {
            let hub = hub.clone();
            tokio::spawn(async move {
                hub.wait_published(Position::at(3), Duration::from_secs(5))
                    .await
            })
        };
        hub.advance(Position::at(5));
        hub.advance(Position::at(2));
        assert_eq!(hub.published(), Position::at(5));
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn a_dropped_subscriber_is_forgotten() {
        let hub = NoticeHub::new();
        let gone = hub.subscribe(10);
        drop(gone);
        hub.publish(vec![notice(1)]);
        assert_eq!(hub.subscribers(), 0);
    }
}
