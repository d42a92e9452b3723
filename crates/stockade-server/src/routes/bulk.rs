//! Bulk paths for ERP and WMS integrations.
//!
//! - `POST /api/skus/import` (admin) registers or updates many SKUs from one body, NDJSON
//!   (one `POST /api/skus` body per line) or CSV (`Content-Type: text/csv`, a header of
//!   those field names). The body is read as it arrives, line by line, never whole; the
//!   answer is NDJSON, one result per input line in input order, written as lines are
//!   done, then a summary. Under an `Idempotency-Key` K, line N's commands carry the keys
//!   `K/N` and `K/N/update`, so the same import sent again changes nothing twice: its
//!   registrations replay as `registered`, and an update finds its figure in place
//!   (`unchanged`).
//! - `GET /api/skus/export` (read) and `GET /api/reservations/export` (admin) stream the
//!   read models, NDJSON or `?format=csv`, in pages.
//!
//! A new SKU is registered without starting its actor (`Inventory::register_new`: one
//! append fenced by "no stream yet"); an existing one's actor is let go after its line
//! (`Inventory::rest`). Memory follows the SKUs in use, not the SKUs just loaded.

use actix_web::{HttpRequest, HttpResponse, web};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stockade_domain::{PoolConfig, Quantity, Rejection, StockChange};
use stockade_engine::{Adjustment, Error, Origin};
use stockade_wire::request::RegisterSkuRequest;
use stockade_wire::{ApiError, Code, ErrorKind, StockOut};

use crate::auth::Need;
use crate::error::{HttpError, Result};
use crate::routes::api::{serde_urlencoded_query, shared};
use crate::state::AppState;

/// Lines decided at once: the SKUs are independent, so their actors work in parallel.
const CHUNK: usize = 512;
/// The longest input line accepted; a longer one is answered as an error and skipped.
const MAX_LINE: usize = 16 * 1024;
/// Rows per read-model page of an export.
const EXPORT_PAGE: usize = 1_000;

type Chunk = Result<web::Bytes, actix_web::Error>;

/// One line's outcome.
#[derive(Debug, Serialize)]
struct LineResult {
    line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    sku: Option<String>,
    /// `registered`, `updated`, `unchanged` or `error`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Code>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl LineResult {
    fn error(line: usize, sku: Option<String>, e: &ApiError) -> Self {
        Self {
            line,
            sku,
            outcome: "error",
            version: None,
            error: Some(e.code),
            message: Some(e.message.clone()),
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    lines: usize,
    registered: usize,
    updated: usize,
    unchanged: usize,
    errors: usize,
}

/// `POST /api/skus/import`.
pub async fn import(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let caller = state.authorize(&req, Need::Admin, None)?;
    let origin = state.origin(&req, caller.as_ref())?;
    let csv = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let (tx, rx) = futures::channel::mpsc::channel::<Chunk>(16);
    actix_web::rt::spawn(run_import(state.into_inner(), origin, payload, csv, tx));
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(rx))
}

/// Splits the body into lines, decides them a chunk at a time, and sends the results.
async fn run_import(
    state: std::sync::Arc<AppState>,
    origin: Origin,
    mut payload: web::Payload,
    csv: bool,
    mut tx: futures::channel::mpsc::Sender<Chunk>,
) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut skipping = false; // inside an over-long line
    let mut number = 0usize;
    let mut header: Option<Vec<String>> = None;
    let mut chunk: Vec<(usize, std::result::Result<RegisterSkuRequest, ApiError>)> = Vec::new();
    let mut summary = Summary::default();
    let mut ended = false;
    while !ended {
        match payload.next().await {
            Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
            Some(Err(e)) => {
                let e = ApiError::new(ErrorKind::BadRequest, Code::BadBody, e.to_string());
                let _ = send(&mut tx, &json!({"error": e.code, "message": e.message})).await;
                return;
            }
            None => ended = true,
        }
        loop {
            let line = match buffer.iter().position(|b| *b == b'\n') {
                Some(at) => buffer.drain(..=at).collect::<Vec<u8>>(),
                None if ended && !buffer.is_empty() => std::mem::take(&mut buffer),
                None => break,
            };
            if std::mem::take(&mut skipping) {
                continue; // the rest of a line already answered as too long
            }
            if let Some(parsed) = parse_line(&line, csv, &mut header) {
                number += 1;
                chunk.push((number, parsed));
            }
            if chunk.len() >= CHUNK
                && !decide(
                    &state,
                    &origin,
                    std::mem::take(&mut chunk),
                    &mut summary,
                    &mut tx,
                )
                .await
            {
                return; // the client went away
            }
        }
        if buffer.len() > MAX_LINE {
            number += 1;
            let e = ApiError::new(
                ErrorKind::PayloadTooLarge,
                Code::LineTooLong,
                format!("a line may hold at most {MAX_LINE} bytes"),
            );
            chunk.push((number, Err(e)));
            buffer.clear();
            skipping = true;
        }
    }
    if !decide(&state, &origin, chunk, &mut summary, &mut tx).await {
        return;
    }
    let _ = send(&mut tx, &json!({ "summary": summary })).await;
}

/// One input line as a registration request; `None` for a blank line or the CSV header.
fn parse_line(
    line: &[u8],
    csv: bool,
    header: &mut Option<Vec<String>>,
) -> Option<std::result::Result<RegisterSkuRequest, ApiError>> {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text.trim(),
        Err(_) => {
            return Some(Err(ApiError::new(
                ErrorKind::BadRequest,
                Code::MalformedLine,
                "the line is not UTF-8",
            )));
        }
    };
    if text.is_empty() {
        return None;
    }
    if !csv {
        return Some(serde_json::from_str(text).map_err(|e| {
            ApiError::new(
                ErrorKind::Unprocessable,
                Code::InvalidBody,
                crate::error::echo_up_to(&e.to_string(), 160),
            )
        }));
    }
    let cells: Vec<String> = text.split(',').map(|c| c.trim().to_owned()).collect();
    let Some(names) = header else {
        *header = Some(cells);
        return None;
    };
    if cells.len() != names.len() {
        return Some(Err(ApiError::new(
            ErrorKind::Unprocessable,
            Code::InvalidBody,
            format!("expected {} fields, found {}", names.len(), cells.len()),
        )));
    }
    // Build the same object an NDJSON line would be, so one validation serves both.
    let mut object = serde_json::Map::new();
    for (name, cell) in names.iter().zip(cells) {
        if cell.is_empty() {
            continue;
        }
        let value = match name.as_str() {
            "sku" | "pool" => Value::from(cell),
            _ => match cell.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    return Some(Err(ApiError::invalid(
                        name,
                        format!("{name} must be a whole number"),
                    )));
                }
            },
        };
        object.insert(name.clone(), value);
    }
    Some(serde_json::from_value(Value::Object(object)).map_err(|e| {
        ApiError::new(
            ErrorKind::Unprocessable,
            Code::InvalidBody,
            crate::error::echo_up_to(&e.to_string(), 160),
        )
    }))
}

/// Decides a chunk's lines concurrently and sends their results in order; `false` when
/// the client has gone.
async fn decide(
    state: &std::sync::Arc<AppState>,
    origin: &Origin,
    chunk: Vec<(usize, std::result::Result<RegisterSkuRequest, ApiError>)>,
    summary: &mut Summary,
    tx: &mut futures::channel::mpsc::Sender<Chunk>,
) -> bool {
    let results = futures::future::join_all(chunk.into_iter().map(|(n, parsed)| async move {
        match parsed {
            Ok(request) => import_line(state, origin, n, request).await,
            Err(e) => LineResult::error(n, None, &e),
        }
    }))
    .await;
    let mut out = Vec::new();
    for r in &results {
        summary.lines += 1;
        match r.outcome {
            "registered" => summary.registered += 1,
            "updated" => summary.updated += 1,
            "unchanged" => summary.unchanged += 1,
            _ => summary.errors += 1,
        }
        if serde_json::to_writer(&mut out, r).is_ok() {
            out.push(b'\n');
        }
    }
    tx.send(Ok(web::Bytes::from(out))).await.is_ok()
}

async fn send(tx: &mut futures::channel::mpsc::Sender<Chunk>, value: &Value) -> bool {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    tx.send(Ok(web::Bytes::from(line))).await.is_ok()
}

/// The origin of line `n`'s command `what` (`""` or `"/update"`): the request's key, if
/// any, extended so that each line's command has one of its own.
fn line_origin(origin: &Origin, n: usize, what: &str) -> Origin {
    Origin {
        idempotency_key: origin
            .idempotency_key
            .as_ref()
            .map(|k| format!("{k}/{n}{what}")),
        ..origin.clone()
    }
}

/// The pool's limit: on hand, license limit (`None`: unlimited) or capacity; a kit has
/// none of its own.
fn limit_of(pool: &PoolConfig) -> Option<Quantity> {
    match pool {
        PoolConfig::Physical { on_hand, .. } => Some(*on_hand),
        PoolConfig::Digital { license_limit } => *license_limit,
        PoolConfig::PrintOnDemand { capacity, .. } => Some(*capacity),
        PoolConfig::Kit { .. } => None,
    }
}

async fn import_line(
    state: &AppState,
    origin: &Origin,
    n: usize,
    request: RegisterSkuRequest,
) -> LineResult {
    let threshold = request.low_stock_threshold;
    let (sku, pool) = match request.validate() {
        Ok(valid) => valid,
        Err(e) => return LineResult::error(n, Some(request.sku), &e),
    };
    let name = Some(sku.to_string());
    let fail = |e: Error| LineResult::error(n, name.clone(), &ApiError::from(e));
    let registered = state
        .inventory
        .register_new(&sku, pool.clone(), &line_origin(origin, n, ""))
        .await;
    let result = match registered {
        Err(e) => fail(e),
        Ok(r) if r.created => {
            if let Some(threshold) = threshold
                && state.models.set_threshold(&sku, threshold).await.is_ok()
            {
                state.remember_threshold(&sku, threshold);
            }
            LineResult {
                line: n,
                sku: name.clone(),
                outcome: "registered",
                version: Some(r.version),
                error: None,
                message: None,
            }
        }
        Ok(_) => update(state, origin, n, &sku, &pool)
            .await
            .unwrap_or_else(fail),
    };
    state.inventory.rest(&sku);
    result
}

/// An existing SKU: its limit set to the line's, if it differs.
async fn update(
    state: &AppState,
    origin: &Origin,
    n: usize,
    sku: &stockade_domain::Sku,
    pool: &PoolConfig,
) -> std::result::Result<LineResult, Error> {
    let level = state.inventory.stock(sku).await?;
    let done = |outcome, version| LineResult {
        line: n,
        sku: Some(sku.to_string()),
        outcome,
        version: Some(version),
        error: None,
        message: None,
    };
    if level.view.pool != pool.kind() {
        return Err(Error::Rejected {
            sku: sku.clone(),
            rejection: Rejection::UnsupportedForPool {
                pool: level.view.pool,
                what: format!("become a {:?} SKU by import", pool.kind()).to_lowercase(),
            },
        });
    }
    // A kit is its components, fixed at registration.
    if let PoolConfig::Kit { components } = pool {
        if level.view.components == *components {
            return Ok(done("unchanged", level.version));
        }
        return Err(Error::Rejected {
            sku: sku.clone(),
            rejection: Rejection::UnsupportedForPool {
                pool: level.view.pool,
                what: "change its components (register the new kit under a new SKU)".into(),
            },
        });
    }
    let wanted = limit_of(pool);
    if level.view.limit == wanted {
        return Ok(done("unchanged", level.version));
    }
    let Some(wanted) = wanted else {
        return Err(Error::Invalid(format!(
            "{sku} has a license limit; an import cannot make it unlimited"
        )));
    };
    let adjusted = state
        .inventory
        .adjust(
            sku,
            Adjustment {
                location: None,
                change: StockChange::Count(wanted),
                reason: "import".into(),
                reference: None,
                expected_version: None,
            },
            &line_origin(origin, n, "/update"),
        )
        .await?;
    Ok(done("updated", adjusted.version))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
}

fn csv_wanted(req: &HttpRequest) -> Result<bool> {
    let query: ExportQuery = serde_urlencoded_query(req.query_string())?;
    match query.format.as_deref() {
        None | Some("ndjson") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(HttpError(ApiError::invalid(
            "format",
            "format is ndjson (the default) or csv",
        ))),
    }
}

/// A CSV cell: quoted when it holds a comma, a quote or a line break.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Streams `page(after)` rows as NDJSON or CSV with `columns`, until a page comes back
/// short. `key` gives the resume point of a row.
fn stream_rows<R, F, Fut>(
    csv: bool,
    columns: &'static [&'static str],
    page: F,
) -> impl futures::Stream<Item = Chunk>
where
    R: Serialize,
    F: Fn(Option<Value>) -> Fut + 'static,
    Fut: std::future::Future<Output = std::result::Result<(Vec<R>, Option<Value>), ApiError>>,
{
    let header = csv.then(|| web::Bytes::from(format!("{}\n", columns.join(","))));
    let rows = futures::stream::unfold(Some(None), move |after| {
        let fetched = after.map(&page);
        async move {
            let (rows, next) = match fetched?.await {
                Ok(page) => page,
                Err(e) => {
                    let line = json!({"error": e.code, "message": e.message}).to_string();
                    return Some((Ok(web::Bytes::from(line + "\n")), None));
                }
            };
            let mut out = String::new();
            for row in &rows {
                let value = serde_json::to_value(row).unwrap_or(Value::Null);
                if csv {
                    let cells: Vec<String> = columns.iter().map(|c| cell(&value[*c])).collect();
                    out.push_str(&cells.join(","));
                } else {
                    out.push_str(&value.to_string());
                }
                out.push('\n');
            }
            let more = next.map(Some);
            if rows.is_empty() && more.is_none() {
                return None;
            }
            Some((Ok(web::Bytes::from(out)), more))
        }
    });
    futures::stream::iter(header.map(Ok)).chain(rows)
}

/// A streamed export answer.
fn streamed(csv: bool, body: impl futures::Stream<Item = Chunk> + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(if csv {
            "text/csv"
        } else {
            "application/x-ndjson"
        })
        .streaming(body)
}

/// `GET /api/skus/export`.
pub async fn export_skus(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    state.authorize(&req, Need::Read, None)?;
    let csv = csv_wanted(&req)?;
    let state = shared(&state);
    const COLUMNS: &[&str] = &[
        "sku",
        "pool",
        "on_hand",
        "reserved",
        "available",
        "status",
        "version",
        "updated_at",
    ];
    let body = stream_rows(csv, COLUMNS, move |after: Option<Value>| {
        let state = state.clone();
        async move {
            let after = after
                .as_ref()
                .and_then(Value::as_str)
                .and_then(|s| stockade_domain::Sku::new(s).ok());
            let rows = state
                .models
                .stock_page(after, EXPORT_PAGE)
                .await
                .map_err(ApiError::from)?;
            let next = (rows.len() == EXPORT_PAGE)
                .then(|| rows.last().map(|r| Value::from(r.sku.to_string())))
                .flatten();
            Ok((rows.iter().map(StockOut::from_row).collect(), next))
        }
    });
    Ok(streamed(csv, body))
}

/// A reservation line from the read models, as exported and as an order lookup shows
/// it: instants in RFC 3339, as everywhere.
#[derive(Debug, Serialize)]
pub(crate) struct ReservationLineOut {
    reservation_id: String,
    sku: String,
    order_id: Option<String>,
    qty: u64,
    channel: String,
    state: String,
    reserved_at: String,
    expires_at: String,
    resolved_at: Option<String>,
}

impl From<stockade_projections::db::ReservationRow> for ReservationLineOut {
    fn from(r: stockade_projections::db::ReservationRow) -> Self {
        Self {
            reservation_id: r.id,
            sku: r.sku,
            order_id: r.order_id,
            qty: r.qty,
            channel: r.channel,
            state: r.state,
            reserved_at: r.reserved_at.to_string(),
            expires_at: r.expires_at.to_string(),
            resolved_at: r.resolved_at.map(|t| t.to_string()),
        }
    }
}

/// `GET /api/reservations/export` (admin: it names every order and channel).
pub async fn export_reservations(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    state.authorize(&req, Need::Admin, None)?;
    let csv = csv_wanted(&req)?;
    let state = shared(&state);
    const COLUMNS: &[&str] = &[
        "reservation_id",
        "sku",
        "order_id",
        "qty",
        "channel",
        "state",
        "reserved_at",
        "expires_at",
        "resolved_at",
    ];
    let body = stream_rows(csv, COLUMNS, move |after: Option<Value>| {
        let state = state.clone();
        async move {
            let after =
                after.and_then(|v| Some((v[0].as_str()?.to_owned(), v[1].as_str()?.to_owned())));
            let rows = state
                .models
                .reservations_page(after, EXPORT_PAGE)
                .await
                .map_err(ApiError::from)?;
            let next = (rows.len() == EXPORT_PAGE)
                .then(|| rows.last().map(|r| json!([r.id, r.sku])))
                .flatten();
            let out: Vec<ReservationLineOut> =
                rows.into_iter().map(ReservationLineOut::from).collect();
            Ok((out, next))
        }
    });
    Ok(streamed(csv, body))
}
