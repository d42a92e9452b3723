//! Request bodies: read up to the configured limit, then parsed as strict JSON.
//!
//! The limit is checked against `Content-Length` before anything is read, and again while
//! reading, so an oversized body costs at most the limit. A body that is not JSON is 400;
//! JSON of the wrong shape (a missing field, a string for a number, an unknown field, a
//! negative quantity) is 422 with serde's description of where it went wrong.

use actix_web::{HttpRequest, web};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use stockade_wire::{ApiError, Code, ErrorKind};

use crate::error::HttpError;

/// How long a body may take to arrive, once the request's head has: a client trickling a
/// body must not hold a request slot for longer.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The same for a caller without valid credentials: a few KB from a live client take
/// milliseconds, and a trickle holds one of few anonymous slots.
const ANONYMOUS_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The raw body, at most `limit` bytes, within `BODY_TIMEOUT` (`ANONYMOUS_BODY_TIMEOUT`
/// when the caller had no valid credentials).
pub async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, HttpError> {
    use actix_web::HttpMessage;
    let patience = match req.extensions().get::<crate::routes::AnonymousBody>() {
        Some(_) => ANONYMOUS_BODY_TIMEOUT,
        None => BODY_TIMEOUT,
    };
    tokio::time::timeout(patience, read_all(req, payload, limit))
        .await
        .unwrap_or_else(|_| {
            Err(HttpError(ApiError::new(
                ErrorKind::RequestTimeout,
                Code::BodyTimeout,
                format!("the body did not arrive within {} s", patience.as_secs()),
            )))
        })
}

async fn read_all(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, HttpError> {
    let too_large = || {
        HttpError(ApiError::new(
            ErrorKind::PayloadTooLarge,
            Code::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        ))
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            HttpError(ApiError::new(
                ErrorKind::BadRequest,
                Code::BadBody,
                format!("the body could not be read: {e}"),
            ))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `bytes` as a `T`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(HttpError(ApiError::new(
            ErrorKind::BadRequest,
            Code::MalformedJson,
            "the body is empty; send a JSON object",
        )));
    }
    // serde would read a struct from an array of its fields in order; every body of this
    // API is an object, so anything else is refused before it can be read that way.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(HttpError(ApiError::new(
            ErrorKind::Unprocessable,
            Code::InvalidBody,
            "the body must be a JSON object",
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let at = format!("line {}, column {}", e.line(), e.column());
        HttpError(match e.classify() {
            // The shape is wrong: serde names the field and what it expected (cut short,
            // since it may quote the value sent).
            serde_json::error::Category::Data => ApiError::new(
                ErrorKind::Unprocessable,
                Code::InvalidBody,
                crate::error::echo_up_to(&e.to_string(), 160),
            ),
            serde_json::error::Category::Eof => ApiError::new(
                ErrorKind::BadRequest,
                Code::MalformedJson,
                format!("the body ends before its JSON does ({at})"),
            ),
            _ => ApiError::new(
                ErrorKind::BadRequest,
                Code::MalformedJson,
                format!("the body is not valid JSON, or nests too deep ({at})"),
            ),
        })
    })
}

/// A canonical form of a JSON body for comparing two requests: key order and whitespace
/// do not make two bodies different.
pub fn canonical(bytes: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => serde_json::to_vec(&sorted(value)).unwrap_or_else(|_| bytes.to_vec()),
        Err(_) => bytes.to_vec(),
    }
}

/// `value` with every object's keys inserted in order, whichever map type serde_json was
/// built with (insertion-ordered under `preserve_order`).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        n: u64,
    }

    fn status(bytes: &[u8]) -> u16 {
        match parse::<T>(bytes) {
            Ok(_) => 200,
            Err(e) => e.0.kind.http_status(),
        }
    }

    #[test]
    fn syntax_is_400_and_shape_is_422() {
        assert_eq!(status(br#"{"n": 1}"#), 200);
        assert_eq!(status(b""), 400);
        assert_eq!(status(b"{"), 400);
        assert_eq!(status(b"nope"), 400);
        assert_eq!(status(br#"{"n": "1"}"#), 422);
        assert_eq!(status(br#"{"n": -1}"#), 422);
        assert_eq!(status(br#"{"n": 1, "m": 2}"#), 422);
        assert_eq!(status(br#"{}"#), 422);
        assert_eq!(status(br#"[1]"#), 422);
    }

    #[test]
    fn key_order_and_spacing_do_not_change_the_canonical_form() {
        assert_eq!(
            canonical(br#"{"b": 1, "a": [1, 2]}"#),
            canonical(br#"{"a":[1,2],"b":1}"#)
        );
        assert_ne!(canonical(br#"{"a": 1}"#), canonical(br#"{"a": 2}"#));
    }
}
