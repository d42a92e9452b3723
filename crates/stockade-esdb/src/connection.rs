//! The client, replaced when it cannot recover by itself.
//!
//! `kurrentdb` 1.2 has two failure modes that never heal (ADR 0004):
//! - when a connection attempt fails (the server is down, restarting, or the redirect
//!   target cannot be reached), its connection task exits, and every later call answers
//!   "connection closed";
//! - when the node it talks to becomes unavailable, it keeps using that node: it
//!   rediscovers the cluster only when a live node answers "not leader".
//!
//! So a call that fails in one of those ways marks its client as spent, and the next call
//! gets a new client, which discovers the cluster again. Calls that fail together mark
//! the same generation, which is replaced once; and a client is replaced at most once per
//! `reconnect_min`, so a long outage costs one connection attempt per interval, not one
//! per call.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use kurrentdb::{Client, ClientSettings};
use tokio::runtime::Handle;

/// A client and the generation it belongs to.
pub(crate) struct Connection {
    settings: ClientSettings,
    handle: Handle,
    every: Duration,
    current: RwLock<Current>,
}

struct Current {
    client: Client,
    generation: u64,
    since: Instant,
    spent: bool,
}

impl Connection {
    pub fn new(settings: ClientSettings, handle: Handle, every: Duration) -> Result<Self, String> {
        let client = Client::with_runtime_handle(handle.clone(), settings.clone())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            settings,
            handle,
            every,
            current: RwLock::new(Current {
                client,
                generation: 0,
                since: Instant::now(),
                spent: false,
            }),
        })
    }

    /// The client to use now, and its generation (to pass to [`Connection::failed`]): a
    /// new one if the current one is spent and was built long enough ago.
    pub fn client(&self) -> (Client, u64) {
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if !current.spent || current.since.elapsed() < self.every {
                return (current.client.clone(), current.generation);
            }
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.spent && current.since.elapsed() >= self.every {
            match Client::with_runtime_handle(self.handle.clone(), self.settings.clone()) {
                Ok(client) => {
                    tracing::warn!(
                        generation = current.generation + 1,
                        "EventStoreDB connection lost; rediscovering the cluster"
                    );
                    *current = Current {
                        client,
                        generation: current.generation + 1,
                        since: Instant::now(),
                        spent: false,
                    };
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a new EventStoreDB client");
                    current.since = Instant::now(); // try again after the interval
                }
            }
        }
        (current.client.clone(), current.generation)
    }

    /// A call on the client of `generation` failed with `e`. If the client cannot get
    /// over that by itself, it is spent: a later call gets a new one.
    pub fn failed(&self, generation: u64, e: &kurrentdb::Error) {
        if !spends_the_client(e) {
            return;
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.generation == generation {
            current.spent = true;
        }
    }
}

/// Whether a failure leaves the client unable to reach a working node by itself.
pub(crate) fn spends_the_client(e: &kurrentdb::Error) -> bool {
    use kurrentdb::Error as E;
    matches!(
        e,
        // The connection task has exited: nothing will ever work on this client again.
        E::ConnectionClosed | E::GrpcConnectionError(_)
        // The node is gone or stuck; the client would keep talking to it.
        | E::ServerError(_) | E::DeadlineExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_the_client_cannot_heal_spend_it() {
        assert!(spends_the_client(&kurrentdb::Error::ConnectionClosed));
        assert!(spends_the_client(&kurrentdb::Error::ServerError(
            "gone".into()
        )));
        assert!(spends_the_client(&kurrentdb::Error::DeadlineExceeded));
        // The client follows a "not leader" redirect itself; refusals are not outages.
        assert!(!spends_the_client(&kurrentdb::Error::NotLeaderException(
            kurrentdb::Endpoint {
                host: "b".into(),
                port: 2113
            }
        )));
        assert!(!spends_the_client(&kurrentdb::Error::AccessDenied));
        assert!(!spends_the_client(&kurrentdb::Error::ResourceNotFound));
        assert!(!spends_the_client(
            &kurrentdb::Error::WrongExpectedVersion {
                expected: kurrentdb::StreamState::Any,
                current: kurrentdb::CurrentRevision::NoStream,
            }
        ));
    }

    #[tokio::test]
    async fn a_spent_client_is_replaced_once_per_generation_and_not_too_often() {
        let settings: ClientSettings = "esdb://127.0.0.1:1?tls=false".parse().unwrap();
        let connection =
            Connection::new(settings, Handle::current(), Duration::from_millis(50)).unwrap();
        let (_, first) = connection.client();
        // A failure the client heals by itself: kept.
        connection.failed(first, &kurrentdb::Error::AccessDenied);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(connection.client().1, first);
        // Spent: the next call gets a new client; calls that failed on the old one
        // do not spend the new one.
        connection.failed(first, &kurrentdb::Error::ConnectionClosed);
        let (_, second) = connection.client();
        assert_eq!(second, first + 1);
        connection.failed(first, &kurrentdb::Error::ConnectionClosed);
        assert_eq!(connection.client().1, second);
        // Spent again at once: kept until the interval has passed.
        connection.failed(second, &kurrentdb::Error::ServerError("gone".into()));
        assert_eq!(connection.client().1, second);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(connection.client().1, second + 1);
    }
}
