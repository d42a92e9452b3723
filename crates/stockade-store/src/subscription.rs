//! Catch-up-then-live subscriptions for backends that announce their head position.
//!
//! The subscriber pages through `read_all` until it is caught up, then sleeps on a watch
//! of the committed head; the writer bumps the head after each durable commit, so a live
//! event is read within one wake-up, with no polling interval. A backend whose log other
//! processes may also write (SQLite) adds a slow re-check for their commits.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream;
use tokio::sync::watch;

use crate::{EventStore, Position, Subscription};

/// Events read per page while catching up.
const PAGE: usize = 512;

struct Cursor<S: ?Sized> {
    store: Arc<S>,
    after: Position,
    buffered: VecDeque<crate::RecordedEvent>,
    head: watch::Receiver<Position>,
    poll: Option<Duration>,
    failed: bool,
}

/// Moves the committed head announced by `head` forward to `to`, waking subscribers only
/// when it moved. Never backwards: announcements may arrive out of order (another node's
/// notification after a later commit of this one).
pub fn advance_head(head: &watch::Sender<Position>, to: Position) {
    head.send_if_modified(|h| {
        let moved = to > *h;
        *h = (*h).max(to);
        moved
    });
}

/// A subscription to `store` after `after`, woken by `head`, and also every `poll` if set.
pub fn catch_up_then_live<S>(
    store: Arc<S>,
    after: Position,
    head: watch::Receiver<Position>,
    poll: Option<Duration>,
) -> Subscription
where
    S: EventStore + ?Sized,
{
    let cursor = Cursor {
        store,
        after,
        buffered: VecDeque::new(),
        head,
        poll,
        failed: false,
    };
    Box::pin(stream::unfold(cursor, |mut c| async move {
        if c.failed {
            return None;
        }
        loop {
            if let Some(event) = c.buffered.pop_front() {
                c.after = event.position;
                return Some((Ok(event), c));
            }
            match c.store.read_all(c.after, PAGE).await {
                Ok(page) if !page.is_empty() => c.buffered.extend(page),
                Ok(_) => {
                    // Caught up: wait until the head moves past what we have seen. The head
                    // is checked before sleeping, so a commit between the read and the wait
                    // is not missed.
                    loop {
                        if *c.head.borrow_and_update() > c.after {
                            break;
                        }
                        let changed = match c.poll {
                            None => c.head.changed().await,
                            Some(every) => {
                                match tokio::time::timeout(every, c.head.changed()).await {
                                    Ok(changed) => changed,
                                    Err(_) => break, // look for other writers' commits
                                }
                            }
                        };
                        if changed.is_err() {
                            return None; // the store was closed
                        }
                    }
                }
                Err(e) => {
                    c.failed = true;
                    return Some((Err(e), c));
                }
            }
        }
    }))
}
