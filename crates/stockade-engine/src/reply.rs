//! The reply handle a command carries through the SKU actor, and the mailbox bound.
//!
//! A [`Reply`] counts against its SKU's bound from the moment a caller creates it until it is
//! answered or dropped, so the bound covers the mailbox *and* the batch being built. If a
//! reply is dropped unanswered (the actor stopped), its guard still answers: with
//! [`Failure::Moved`] when the command was never decided (safe to send again to a fresh
//! actor), or with "outcome unknown" when it was.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::oneshot;

use crate::error::Error;

/// Why a command got no ordinary answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An engine error to hand to the caller.
    Error(Error),
    /// The actor was stopping and never decided the command: send it again.
    Moved,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

pub(crate) type Answer<T> = Result<T, Failure>;

/// The answer channel of one command.
#[derive(Debug)]
pub(crate) struct Reply<T> {
    tx: Option<oneshot::Sender<Answer<T>>>,
    waiting: Arc<AtomicUsize>,
    decided: bool,
}

impl<T> Reply<T> {
    /// Takes a place in the SKU's bound of `capacity`, or says how many are waiting.
    pub(crate) fn reserve_place(
        waiting: &Arc<AtomicUsize>,
        capacity: usize,
    ) -> Result<(Self, oneshot::Receiver<Answer<T>>), usize> {
        let before = waiting.fetch_add(1, Ordering::AcqRel);
        if before >= capacity {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(before);
        }
        let (tx, rx) = oneshot::channel();
        Ok((
            Self {
                tx: Some(tx),
                waiting: waiting.clone(),
                decided: false,
            },
            rx,
        ))
    }

    /// From here on, dropping the reply means "outcome unknown", not "never seen".
    pub(crate) fn mark_decided(&mut self) {
        self.decided = true;
    }

    pub(crate) fn send(mut self, answer: Result<T, Error>) {
        if let Some(tx) = self.tx.take() {
            // The caller may have given up waiting; its loss, nothing to undo here.
            let _ = tx.send(answer.map_err(Failure::Error));
        }
    }
}

/// Answers `reply`, if the command has one (the actor's own commands, such as expiries,
/// have none).
pub(crate) fn tell<T>(reply: Option<Reply<T>>, answer: Result<T, Error>) {
    if let Some(reply) = reply {
        reply.send(answer);
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let failure = if self.decided {
                Failure::Error(Error::Unavailable(
                    "the SKU actor stopped with this command in flight; its outcome is \
                     unknown (retry with the same idempotency key to learn it)"
                        .into(),
                ))
            } else {
                Failure::Moved
            };
            let _ = tx.send(Err(failure));
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_counts_until_the_reply_is_answered_or_dropped() {
        let waiting = Arc::new(AtomicUsize::new(0));
        let (a, _ra) = Reply::<()>::reserve_place(&waiting, 2).expect("room");
        let (b, _rb) = Reply::<()>::reserve_place(&waiting, 2).expect("room");
        assert_eq!(Reply::<()>::reserve_place(&waiting, 2).err(), Some(2));
        a.send(Ok(()));
        drop(b);
        assert_eq!(waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_dropped_reply_says_whether_the_command_was_decided() {
        let waiting = Arc::new(AtomicUsize::new(0));
        let (undecided, rx) = Reply::<()>::reserve_place(&waiting, 4).expect("room");
        drop(undecided);
        assert!(matches!(rx.await, Ok(Err(Failure::Moved))));
        let (mut decided, rx) = Reply::<()>::reserve_place(&waiting, 4).expect("room");
        decided.mark_decided();
        drop(decided);
        assert!(matches!(
            rx.await,
            Ok(Err(Failure::Error(Error::Unavailable(_))))
        ));
    }
}
