//! A started server: [`Running`] serves until told to stop, then stops in order (stop
//! accepting, finish requests, let the engine answer its appends, let the projector reach
//! the end of the log, stop the rest), every wait bounded. [`Background`] is the same on a
//! thread of its own with its own actix system, for programs that are not actix themselves.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use crate::{Generated, ServerConfig, StartError, start, state};

/// How long in-flight requests get to finish once shutdown begins.
pub(crate) const GRACE: Duration = Duration::from_secs(10);
/// How long the projector gets to reach the end of the log at shutdown.
pub(crate) const FLUSH: Duration = Duration::from_secs(5);

/// A server that is listening (or, from [`crate::start_headless`], running without HTTP).
pub struct Running {
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) generated: Option<Generated>,
    pub(crate) server: Option<actix_web::dev::Server>,
    pub(crate) mcp_cancel: tokio_util::sync::CancellationToken,
    pub(crate) state: Arc<state::AppState>,
    pub(crate) stop_streams: watch::Sender<bool>,
    pub(crate) stop_background: watch::Sender<bool>,
    pub(crate) background: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Where the server listens (the real port when bound to port 0); `None` headless.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// What MCP sessions share, for serving MCP over stdio from this process.
    pub fn mcp_backend(&self) -> Arc<stockade_mcp::Backend> {
        self.state.mcp_backend.clone()
    }

    /// Tokens generated at this first start, to show once; `None` on later starts.
    pub fn generated_tokens(&self) -> Option<&Generated> {
        self.generated.as_ref()
    }

    /// Serves until `shutdown` completes (or the server fails), then shuts down in order.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
        let Running {
            server,
            state,
            stop_streams,
            stop_background,
            background,
            mcp_cancel,
            ..
        } = self;
        let served = match server {
            Some(server) => {
                let handle = server.handle();
                let mut server = std::pin::pin!(server);
                let served = tokio::select! {
                    result = &mut server => Some(result),
                    () = shutdown => None,
                };
                // Stop accepting; readiness fails and streams end, so the grace period
                // is spent only on requests that can finish.
                state.closing.store(true, Ordering::Release);
                let _ = stop_streams.send(true);
                mcp_cancel.cancel();
                match served {
                    Some(result) => result,
                    None => {
                        // The server future runs the stop: poll both, or the stop never
                        // completes.
                        let ((), result) = tokio::join!(handle.stop(true), &mut server);
                        result
                    }
                }
            }
            None => {
                shutdown.await;
                state.closing.store(true, Ordering::Release);
                Ok(())
            }
        };
        // Every request is answered; now the engine answers the appends in flight.
        state.inventory.clone().shutdown().await;
        let store = state.inventory.store();
        // Every wait below is bounded: a store that stopped answering, or a reconciliation
        // pass in progress, must not keep the process from exiting.
        let deadline = tokio::time::Instant::now() + FLUSH;
        let caught_up = async {
            loop {
                match (store.head().await, state.models.checkpoint().await) {
                    (Ok(head), Ok(at)) if at.position >= head => return,
                    (Ok(_), Ok(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
                    _ => return,
                }
            }
        };
        if tokio::time::timeout_at(deadline, caught_up).await.is_err() {
            tracing::warn!("shutdown: the projector had not reached the end of the log");
        }
        let _ = stop_background.send(true);
        let deadline = tokio::time::Instant::now() + FLUSH;
        for mut task in background {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("shutdown: a background task did not stop in time");
                task.abort();
            }
        }
        served.map_err(|e| StartError::Io(format!("serve: {e}")))
    }
}

/// A server on a thread of its own, with its own actix system; stopped (gracefully) by
/// [`Background::stop`] or when dropped.
pub struct Background {
    addr: SocketAddr,
    generated: Option<Generated>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), StartError>>>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts a server on a new thread and returns once it listens (or failed to start).
pub fn spawn(config: ServerConfig, listener: TcpListener) -> Result<Background, StartError> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("stockade-serve".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let running = match start(config, listener).await {
                    Ok(running) => running,
                    Err(e) => {
                        let message = e.to_string();
                        let _ = ready_tx.send(Err(e));
                        return Err(StartError::Io(message));
                    }
                };
                let Some(addr) = running.addr else {
                    let _ = ready_tx.send(Err(StartError::Io("no listener".into())));
                    return Err(StartError::Io("no listener".into()));
                };
                let _ = ready_tx.send(Ok((addr, running.generated.clone())));
                running
                    .run_until(async move {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        })
        .map_err(|e| StartError::Io(format!("start the server thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok((addr, generated))) => Ok(Background {
            addr,
            generated,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(StartError::Io(
            "the server thread ended while starting".into(),
        )),
    }
}

impl Background {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn generated_tokens(&self) -> Option<&Generated> {
        self.generated.as_ref()
    }

    /// Shuts down gracefully and waits for the thread.
    pub fn stop(mut self) -> Result<(), StartError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StartError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| StartError::Io("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
