//! `GET /api/events` (Server-Sent Events) and `GET /api/ws` (WebSocket): the same messages
//! from [`crate::stream`], framed for each.
//!
//! SSE: `id:` is the notice's `seq`, `event:` is `hello`, `notice` or `resync`, `data:` is
//! the JSON message; a browser's `EventSource` resumes by itself with `Last-Event-ID`.
//! WebSocket: one JSON text frame per message; resume with `?after=SEQ`.
//! Both take `?sku=A,B` to filter, and `?access_token=` for clients that cannot set an
//! `Authorization` header.

use std::collections::HashSet;

use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::Deserialize;
use stockade_wire::request::sku;
use stockade_wire::{ApiError, ErrorKind, StreamMessage};

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
    let last_event_id = header(req, "last-event-id")?
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                HttpError(ApiError::new(
                    ErrorKind::BadRequest,
                    "bad_header",
                    "Last-Event-ID must be a notice seq (a whole number)",
                ))
            })
        })
        .transpose()?;
    let slot = StreamSlot::take(&shared(state)).ok_or_else(|| {
        HttpError(ApiError::new(
            ErrorKind::Unavailable,
            "too_many_streams",
            "this server has as many live streams open as it allows",
        ))
    })?;
    Ok((
        stream::Request {
            resume: last_event_id.or(query.after),
            skus,
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
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body).map_err(|e| {
        HttpError(ApiError::new(
            ErrorKind::BadRequest,
            "not_a_websocket",
            format!("a WebSocket upgrade was expected: {e}"),
        ))
    })?;
    let mut rx = stream::start(shared(&state), request, slot);
    actix_web::rt::spawn(async move {
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
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => return,
                    // Readers have nothing to say; other frames are ignored.
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

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
