//! `GET /api/events` (Server-Sent Events) and `GET /api/ws` (WebSocket): the same messages
//! from [`crate::stream`], framed for each.
//!
//! SSE: `id:` is the notice's `seq`, `event:` is `hello`, `notice` or `resync`, `data:` is
//! the JSON message; a browser's `EventSource` resumes by itself with `Last-Event-ID`.
//! WebSocket: one JSON text frame per message; resume with `?after=SEQ`.
//! Both take `?sku=A,B` to filter by SKU, `?location=berlin,paris` to get only notices
//! that move one of those locations (showing only them), and `?access_token=` for clients that cannot set an
//! `Authorization` header.

use std::collections::HashSet;

use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::Deserialize;
use stockade_wire::request::{location, sku};
use stockade_wire::{ApiError, Code, ErrorKind, StreamMessage};

use crate::auth::Need;
use crate::error::{HttpError, Result};
use crate::routes::api::{serde_urlencoded_query, shared};
use crate::state::{AppState, header};
use crate::stream::{self, Outgoing, StreamSlot};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    #[serde(default)]
    sku: Option<String>,
    /// Only notices that move one of these locations, showing only them.
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    access_token: Option<String>,
}

fn request(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    channel: &'static str,
) -> Result<(stream::Request, StreamSlot)> {
    let query: StreamQuery = serde_urlencoded_query(req.query_string())?;
    state.authorize(req, Need::Read, query.access_token.as_deref())?;
    let skus = query
        .sku
        .as_deref()
        .map(|list| {
            list.split(',')
                .map(|s| sku(s.trim(), "sku"))
                .collect::<Result<HashSet<_>, _>>()
        })
        .transpose()?;
    let locations = query
        .location
        .as_deref()
        .map(|list| {
            list.split(',')
                .map(|l| location(l.trim(), "location").map(|l| l.to_string()))
                .collect::<Result<HashSet<_>, _>>()
        })
        .transpose()?;
    let last_event_id = header(req, "last-event-id")?
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                HttpError(ApiError::new(
                    ErrorKind::BadRequest,
                    Code::BadHeader,
                    "Last-Event-ID must be a notice seq (a whole number)",
                ))
            })
        })
        .transpose()?;
    let slot = StreamSlot::take(&shared(state)).ok_or_else(|| {
        HttpError(ApiError::new(
            ErrorKind::Unavailable,
            Code::TooManyStreams,
            "this server has as many live streams open as it allows",
        ))
    })?;
    Ok((
        stream::Request {
            resume: last_event_id.or(query.after),
            skus,
            locations,
            channel,
        },
        slot,
    ))
}

/// `GET /api/events`.
pub async fn events(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    let (request, slot) = request(&req, &state, "sse")?;
    let mut rx = stream::start(shared(&state), request, slot);
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|out| Ok::<_, actix_web::Error>(web::Bytes::from(sse_frame(&out))));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // Tell nginx-style proxies not to buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

fn sse_frame(out: &Outgoing) -> String {
    match out {
        Outgoing::Keepalive => ": keepalive\n\n".to_owned(),
        Outgoing::Message { id, message } => {
            let event = match message {
                StreamMessage::Hello { .. } => "hello",
                StreamMessage::Notice(_) => "notice",
                StreamMessage::Resync { .. } => "resync",
            };
            // serde_json never writes a raw newline inside a value, so one data line holds it.
            let data = serde_json::to_string(message).unwrap_or_else(|_| "{}".to_owned());
            match id {
                Some(id) => format!("id: {id}\nevent: {event}\ndata: {data}\n\n"),
                None => format!("event: {event}\ndata: {data}\n\n"),
            }
        }
    }
}

/// `GET /api/ws`.
pub async fn websocket(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> Result<HttpResponse> {
    let (request, slot) = request(&req, &state, "ws")?;
    let body = Inbound::wrap(&req, body).await?;
    let (response, mut session, incoming) = actix_ws::handle(&req, body).map_err(|e| {
        HttpError(ApiError::new(
            ErrorKind::BadRequest,
            Code::NotAWebsocket,
            format!("a WebSocket upgrade was expected: {e}"),
        ))
    })?;
    // The codec refuses a frame longer than the cap as soon as its header is read.
    let mut incoming = incoming.max_frame_size(MAX_INBOUND_FRAME);
    let mut rx = stream::start(shared(&state), request, slot);
    // Set when the client broke the cap: after the close frame, the connection is cut
    // (left open, the HTTP layer would read and discard whatever the client sends).
    let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let response = response.map_body({
        let cut = cut.clone();
        move |_, body| actix_web::body::BoxBody::new(CutAfter { body, cut })
    });
    actix_web::rt::spawn(async move {
        // Bytes of the client's current fragmented message.
        let mut fragments = 0usize;
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(Outgoing::Keepalive) => {
                        if session.ping(b"").await.is_err() { return; }
                    }
                    Some(Outgoing::Message { message, .. }) => {
                        let resync = matches!(message, StreamMessage::Resync { .. });
                        let text = serde_json::to_string(&message).unwrap_or_else(|_| "{}".into());
                        if session.text(text).await.is_err() { return; }
                        if resync { break; }
                    }
                    None => break,
                },
                frame = incoming.next() => match frame {
                    Some(Ok(actix_ws::Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() { return; }
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | None => return,
                    // A frame past the cap (or a broken one): close with a reason.
                    Some(Err(e)) => {
                        let reason = actix_ws::CloseReason {
                            code: actix_ws::CloseCode::Size,
                            description: Some(format!("frames are limited to {MAX_INBOUND_FRAME} bytes")),
                        };
                        tracing::debug!(error = %e, "WebSocket client sent a frame it may not");
                        cut.store(true, std::sync::atomic::Ordering::Release);
                        let _ = session.close(Some(reason)).await;
                        return;
                    }
                    // Fragments are counted, never kept: a message made of many small
                    // frames meets the same cap.
                    Some(Ok(actix_ws::Message::Continuation(item))) => {
                        let (len, last) = match &item {
                            actix_ws::Item::FirstText(b) | actix_ws::Item::FirstBinary(b) => (b.len(), false),
                            actix_ws::Item::Continue(b) => (b.len(), false),
                            actix_ws::Item::Last(b) => (b.len(), true),
                        };
                        fragments = fragments.saturating_add(len);
                        if fragments > MAX_INBOUND_FRAME {
                            let reason = actix_ws::CloseReason {
                                code: actix_ws::CloseCode::Size,
                                description: Some(format!("messages are limited to {MAX_INBOUND_FRAME} bytes")),
                            };
                            cut.store(true, std::sync::atomic::Ordering::Release);
                            let _ = session.close(Some(reason)).await;
                            return;
                        }
                        if last { fragments = 0; }
                    }
                    // Readers have nothing to say; other frames are ignored.
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

/// The WebSocket's outgoing body; once it has ended (the close frame sent) after the
/// client broke the cap, it fails instead, and a failed body makes the HTTP layer drop the
/// connection.
struct CutAfter {
    body: actix_web::body::BoxBody,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl actix_web::body::MessageBody for CutAfter {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_next(cx);
        match polled {
            std::task::Poll::Ready(None) if self.cut.load(std::sync::atomic::Ordering::Acquire) => {
                std::task::Poll::Ready(Some(Err("the client broke the frame cap".into())))
            }
            other => other,
        }
    }
}

/// Largest frame (and fragmented message) a WebSocket client may send. Clients have
/// nothing to say but pings and a close; the cap keeps an unauthenticated client from
/// making the server buffer a large frame.
pub const MAX_INBOUND_FRAME: usize = 4 * 1024;

/// The client's bytes on their way to the WebSocket decoder. The decoder checks a frame's
/// length only once the whole frame is buffered, so this reads each frame header as the
/// bytes pass and fails the stream as soon as one declares more than
/// [`MAX_INBOUND_FRAME`]: nothing of it is kept. It also hands over one chunk per poll, so
/// the decoder never buffers much more than a chunk before it looks.
struct Inbound {
    payload: actix_web::dev::Payload,
    frames: FrameGuard,
    yielded: bool,
}

impl Inbound {
    async fn wrap(req: &HttpRequest, body: web::Payload) -> Result<web::Payload> {
        use actix_web::FromRequest;
        let inbound: std::pin::Pin<
            Box<dyn futures::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>>>,
        > = Box::pin(Self {
            payload: body.into_inner(),
            frames: FrameGuard::default(),
            yielded: false,
        });
        let mut wrapped = actix_web::dev::Payload::from(inbound);
        // Never fails: it moves the stream into the extractor's type.
        web::Payload::from_request(req, &mut wrapped)
            .await
            .map_err(|_| {
                HttpError(ApiError::new(
                    ErrorKind::BadRequest,
                    Code::NotAWebsocket,
                    "the request body could not be read",
                ))
            })
    }
}

impl futures::Stream for Inbound {
    type Item = Result<web::Bytes, actix_web::error::PayloadError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.yielded {
            // Let the decoder look at what it has; come back at once.
            self.yielded = false;
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        let polled = std::pin::Pin::new(&mut self.payload).poll_next(cx);
        if let std::task::Poll::Ready(Some(Ok(bytes))) = &polled {
            if let Err(declared) = self.frames.feed(bytes) {
                tracing::debug!(declared, "WebSocket client declared an oversized frame");
                return std::task::Poll::Ready(Some(Err(actix_web::error::PayloadError::Overflow)));
            }
            self.yielded = true;
        }
        polled
    }
}

/// Follows client frames through a byte stream: their headers (RFC 6455 §5.2), and how
/// much of the current payload is still to come.
#[derive(Debug, Default)]
struct FrameGuard {
    header: Vec<u8>,
    /// Payload bytes of the current frame still to pass.
    remaining: u64,
}

impl FrameGuard {
    /// Passes `bytes`; `Err(length)` when a frame declares more than the cap.
    fn feed(&mut self, mut bytes: &[u8]) -> std::result::Result<(), u64> {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let skip =
                    usize::try_from(self.remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
                bytes = &bytes[skip..];
                self.remaining -= skip as u64;
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            if let Some(length) = Self::complete(&self.header) {
                if length > MAX_INBOUND_FRAME as u64 {
                    return Err(length);
                }
                self.header.clear();
                self.remaining = length;
            }
        }
        Ok(())
    }

    /// The payload length once `header` is a whole frame header.
    fn complete(header: &[u8]) -> Option<u64> {
        let second = *header.get(1)?;
        let masked = if second & 0x80 != 0 { 4 } else { 0 };
        let (extended, length) = match second & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        if header.len() < 2 + extended + masked {
            return None;
        }
        Some(length.unwrap_or_else(|| {
            header[2..2 + extended]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_guard_passes_small_frames_and_stops_at_a_large_header() {
        let mut guard = FrameGuard::default();
        // A masked 5-byte text frame, fed a byte at a time, then a masked 16-bit one.
        let small = [0x81, 0x85, 1, 2, 3, 4, b'h', b'e', b'l', b'l', b'o'];
        for b in small {
            assert_eq!(guard.feed(&[b]), Ok(()));
        }
        let mut medium = vec![0x82, 0xfe, 0x01, 0x00, 9, 9, 9, 9];
        medium.extend(std::iter::repeat_n(0u8, 256));
        assert_eq!(guard.feed(&medium), Ok(()));
        // A 64-bit length of 512 MiB: refused from its header, before any payload.
        let huge = [0x81, 0xff, 0, 0, 0, 0, 0x20, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(guard.feed(&huge), Err(512 * 1024 * 1024));
    }

    #[test]
    fn sse_frames_carry_the_seq_as_id() {
        let frame = sse_frame(&Outgoing::Message {
            id: None,
            message: StreamMessage::Resync {
                last_seq: 7,
                reason: "x".into(),
            },
        });
        assert_eq!(
            frame,
            "event: resync\ndata: {\"type\":\"resync\",\"last_seq\":7,\"reason\":\"x\"}\n\n"
        );
        assert_eq!(sse_frame(&Outgoing::Keepalive), ": keepalive\n\n");
    }
}
