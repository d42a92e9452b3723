//! The REST API: SKUs, stock, adjustments, transfers between locations and reservations.
//!
//! Single-SKU reads answer from the engine's durable state, exact at the instant of the
//! read (`as_of`), so a reader never sees a hold that is not durable or a lapsed hold that
//! still counts. Lists answer from the stock-levels read model, which follows the log (how
//! closely under load: `docs/benchmarks.md`); every item carries its `version`, so a
//! reader can tell.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use stockade_domain::{Sku, Timestamp};
use stockade_engine::ReserveOptions;
use stockade_wire::request::{page_limit, receipt_ref, reservation_id, sku, transfer_id};
use stockade_wire::{
    AdjustRequest, AdjustedOut, AmendRequest, ApiError, BackorderLimitOut, BackorderLimitRequest,
    ChangedOut, Code, ErrorKind, ExtendRequest, Page, ReceiptOut, ReceiptRequest,
    ReceiveReceiptRequest, RegisterSkuRequest, ReservationOut, ReservationStatusOut,
    ReserveRequest, ResolveRequest, ResolvedOut, StockOut, TransferOut, TransferRequest,
};

use crate::auth::Need;
use crate::body;
use crate::error::{HttpError, Result};
use crate::state::AppState;

type State = web::Data<AppState>;

fn now_millis() -> u64 {
    Timestamp::from_system_time(SystemTime::now()).as_millis()
}

/// Checks the key (if any) against the body it came with, before anything runs.
pub(crate) async fn check_key(
    state: &AppState,
    origin: &stockade_engine::Origin,
    endpoint: &str,
    bytes: &[u8],
) -> Result<()> {
    if let (Some(key), Some(principal)) = (&origin.idempotency_key, &origin.principal) {
        state
            .keys
            .check(
                principal.as_str(),
                key,
                endpoint,
                &body::canonical(bytes),
                now_millis(),
            )
            .await?;
    }
    Ok(())
}

/// Runs an engine call to completion even if the client goes away. actix drops a
/// handler's future when its connection resets; an order whose lines were half held (or
/// half committed) must not be abandoned in the middle of its compensation for that.
pub(crate) async fn detached<T: 'static>(
    work: impl std::future::Future<Output = Result<T, stockade_engine::Error>> + 'static,
) -> Result<Result<T, stockade_engine::Error>> {
    actix_web::rt::spawn(work).await.map_err(|e| {
        HttpError(ApiError::new(
            ErrorKind::Unavailable,
            Code::Unavailable,
            format!("the request's task ended early: {e}"),
        ))
    })
}

pub(crate) fn replayed(response: &mut actix_web::HttpResponseBuilder, replayed: bool) {
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
}

/// The first steps of every write: the caller's token checked for `need`, the body read
/// and parsed as `T` (its raw bytes kept for the idempotency fingerprint), and the origin
/// the engine records.
pub(crate) async fn write_request<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
    need: Need,
) -> Result<(T, web::Bytes, stockade_engine::Origin)> {
    let caller = state.authorize(req, need, None)?;
    let bytes = body::read(req, payload, state.config.limits.max_body_bytes).await?;
    let parsed: T = body::parse(&bytes)?;
    let origin = state.origin(req, caller.as_ref())?;
    Ok((parsed, bytes, origin))
}

/// `POST /api/skus` (admin).
pub async fn register(
    req: HttpRequest,
    state: State,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (RegisterSkuRequest, _, _) =
        write_request(&req, &state, payload, Need::Admin).await?;
    let (sku, pool) = request.validate()?;
    check_key(&state, &origin, "register", &bytes).await?;
    if let Some(threshold) = request.low_stock_threshold {
        // Only for a SKU that does not exist yet, so a registration that is refused (or
        // a retry replayed) leaves an existing SKU's threshold alone. Set before the SKU
        // exists, so its first row and notice already have the right status. (Two
        // registrations of a new SKU racing each other may both set it.)
        let exists = match state.inventory.stock(&sku).await {
            Ok(_) => true,
            Err(stockade_engine::Error::Rejected {
                rejection: stockade_domain::Rejection::UnknownSku,
                ..
            }) => false,
            Err(e) => return Err(e.into()),
        };
        if !exists {
            state.models.set_threshold(&sku, threshold).await?;
            state.remember_threshold(&sku, threshold);
        }
    }
    let inventory = state.inventory.clone();
    let registering = sku.clone();
    detached(async move { inventory.register(&registering, pool, &origin).await }).await??;
    let level = state.inventory.stock(&sku).await?;
    let threshold = state.threshold(&sku).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/inventory/products/{sku}")))
        .json(StockOut::from_level(&level, threshold)))
}

/// `GET /api/inventory/products/{sku}`.
pub async fn stock(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    state.authorize(&req, Need::Read, None)?;
    let sku = sku(&path, "sku")?;
    let level = state.inventory.stock(&sku).await?;
    let threshold = state.threshold(&sku).await?;
    Ok(HttpResponse::Ok().json(StockOut::from_level(&level, threshold)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    after: Option<String>,
    /// Only SKUs that start with this.
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// Only SKUs stocked at this location, each with its figures there.
    #[serde(default)]
    location: Option<String>,
}

/// `GET /api/inventory/products?after=SKU&limit=N` (and `prefix=`, `location=`).
pub async fn list(req: HttpRequest, state: State) -> Result<HttpResponse> {
    state.authorize(&req, Need::Read, None)?;
    let query: ListQuery = serde_urlencoded_query(req.query_string())?;
    let after: Option<Sku> = query
        .after
        .as_deref()
        .map(|a| sku(a, "after"))
        .transpose()?;
    let limit = page_limit(query.limit)?;
    let prefix = match query.prefix.as_deref() {
        None | Some("") => String::new(),
        // A prefix is checked like a SKU: it is the start of one.
        Some(p) => sku(p, "prefix")?.to_string(),
    };
    if let Some(location) = query.location.as_deref() {
        let location = stockade_wire::request::location(location, "location")?;
        let rows = state
            .models
            .stock_at(location.as_str(), after, &prefix, limit)
            .await?;
        return Ok(HttpResponse::Ok().json(Page::of_located(&rows, limit)));
    }
    let rows = state.models.stock_search(after, &prefix, limit).await?;
    Ok(HttpResponse::Ok().json(Page::of_stock(&rows, limit)))
}

/// A query string as `T`; an unknown or malformed parameter is a 422 naming it.
pub fn serde_urlencoded_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T> {
    web::Query::<T>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| {
            // Our words around serde's account of which parameter is wrong.
            let detail = match &e {
                actix_web::error::QueryPayloadError::Deserialize(inner) => inner.to_string(),
                other => other.to_string(),
            };
            HttpError(ApiError::new(
                ErrorKind::Unprocessable,
                Code::InvalidQuery,
                format!(
                    "the query string cannot be read: {}",
                    crate::error::echo_up_to(&detail, 160)
                ),
            ))
        })
}

/// `POST /api/inventory/products/{sku}/adjustments` (admin).
pub async fn adjust(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (AdjustRequest, _, _) =
        write_request(&req, &state, payload, Need::Admin).await?;
    let sku = sku(&path, "sku")?;
    let adjustment = request.validate()?;
    check_key(&state, &origin, &format!("adjust:{sku}"), &bytes).await?;
    let inventory = state.inventory.clone();
    let adjusting = sku.clone();
    match detached(async move { inventory.adjust(&adjusting, adjustment, &origin).await }).await? {
        Ok(adjusted) => {
            let mut response = HttpResponse::Ok();
            replayed(&mut response, adjusted.replayed);
            Ok(response.json(AdjustedOut::new(&sku, &adjusted)))
        }
        Err(e) => Err(with_current(&state, e).await.into()),
    }
}

/// `POST /api/inventory/products/{sku}/transfers` (admin): ship units between locations.
pub async fn ship_transfer(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (TransferRequest, _, _) =
        write_request(&req, &state, payload, Need::Admin).await?;
    let sku = sku(&path, "sku")?;
    let transfer = request.validate()?;
    check_key(&state, &origin, &format!("transfer:{sku}"), &bytes).await?;
    let inventory = state.inventory.clone();
    let shipping = sku.clone();
    let shipped =
        detached(async move { inventory.ship_transfer(&shipping, transfer, &origin).await })
            .await?;
    match shipped {
        Ok(t) => {
            let mut response = HttpResponse::Created();
            replayed(&mut response, t.replayed);
            Ok(response.json(TransferOut::new(&sku, &t)))
        }
        Err(e) => Err(with_current(&state, e).await.into()),
    }
}

/// `POST /api/inventory/products/{sku}/transfers/{id}/receive` (admin): the units arrived.
pub async fn receive_transfer(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    // No body is needed; one that is sent must be empty or `{}`.
    let (origin, Empty {}, _) = admin_optional_body(&req, &state, payload).await?;
    let (sku_text, id_text) = path.into_inner();
    let sku = sku(&sku_text, "sku")?;
    let id = transfer_id(&id_text, "id")?;
    check_key(&state, &origin, &format!("receive:{sku}:{id}"), b"").await?;
    let inventory = state.inventory.clone();
    let receiving = sku.clone();
    let received =
        detached(async move { inventory.receive_transfer(&receiving, id, &origin).await }).await?;
    match received {
        Ok(t) => {
            let mut response = HttpResponse::Ok();
            replayed(&mut response, t.replayed);
            Ok(response.json(TransferOut::new(&sku, &t)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/inventory/products/{sku}/backorders` (admin): how many units may be held
/// beyond on hand.
pub async fn set_backorder_limit(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (BackorderLimitRequest, _, _) =
        write_request(&req, &state, payload, Need::Admin).await?;
    let sku = sku(&path, "sku")?;
    let (limit, location) = request.validate()?;
    check_key(&state, &origin, &format!("backorders:{sku}"), &bytes).await?;
    let inventory = state.inventory.clone();
    let setting = sku.clone();
    let set = detached(async move {
        inventory
            .set_backorder_limit(&setting, limit, location, &origin)
            .await
    })
    .await??;
    let mut response = HttpResponse::Ok();
    replayed(&mut response, set.replayed);
    Ok(response.json(BackorderLimitOut {
        sku: sku.to_string(),
        location: set.location.as_ref().map(|l| l.to_string()),
        backorder_limit: set.limit.get(),
        previous: set.previous.get(),
        version: set.version,
    }))
}

/// `POST /api/inventory/products/{sku}/receipts` (admin): stock expected from a supplier.
pub async fn expect_receipt(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (ReceiptRequest, _, _) =
        write_request(&req, &state, payload, Need::Admin).await?;
    let sku = sku(&path, "sku")?;
    let receipt = request.validate()?;
    check_key(&state, &origin, &format!("receipt:{sku}"), &bytes).await?;
    let inventory = state.inventory.clone();
    let expected =
        detached(async move { inventory.expect_receipt(&sku, receipt, &origin).await }).await??;
    let mut response = HttpResponse::Created();
    replayed(&mut response, expected.replayed);
    Ok(response.json(ReceiptOut::new(&expected, "expected")))
}

/// `POST /api/inventory/products/{sku}/receipts/{reference}/receive` (admin): units of it
/// arrived; they fill backorders first.
pub async fn receive_receipt(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (origin, request, bytes): (_, ReceiveReceiptRequest, _) =
        admin_optional_body(&req, &state, payload).await?;
    let (sku_text, reference_text) = path.into_inner();
    let sku = sku(&sku_text, "sku")?;
    let reference = receipt_ref(&reference_text, "reference")?;
    let qty = request.qty.map(stockade_domain::Quantity::new);
    check_key(
        &state,
        &origin,
        &format!("receive-receipt:{sku}:{reference}"),
        &bytes,
    )
    .await?;
    let inventory = state.inventory.clone();
    let received = detached(async move {
        inventory
            .receive_receipt(&sku, reference, qty, &origin)
            .await
    })
    .await??;
    let mut response = HttpResponse::Ok();
    replayed(&mut response, received.replayed);
    Ok(response.json(ReceiptOut::new(&received, "received")))
}

/// `POST /api/inventory/products/{sku}/receipts/{reference}/cancel` (admin): what is still
/// expected of it will not come.
pub async fn cancel_receipt(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (origin, Empty {}, _) = admin_optional_body(&req, &state, payload).await?;
    let (sku_text, reference_text) = path.into_inner();
    let sku = sku(&sku_text, "sku")?;
    let reference = receipt_ref(&reference_text, "reference")?;
    check_key(
        &state,
        &origin,
        &format!("cancel-receipt:{sku}:{reference}"),
        b"",
    )
    .await?;
    let inventory = state.inventory.clone();
    let cancelled =
        detached(async move { inventory.cancel_receipt(&sku, reference, &origin).await }).await??;
    let mut response = HttpResponse::Ok();
    replayed(&mut response, cancelled.replayed);
    Ok(response.json(ReceiptOut::new(&cancelled, "cancelled")))
}

/// A version conflict as an error that hands the caller what it needs to decide again:
/// the SKU's stock as it is now, under `current`. Other errors as they are.
async fn with_current(state: &AppState, e: stockade_engine::Error) -> ApiError {
    let stockade_engine::Error::Conflict { sku, .. } = &e else {
        return e.into();
    };
    let sku = sku.clone();
    let mut error = ApiError::from(e);
    if let Ok(level) = state.inventory.stock(&sku).await {
        let threshold = state.threshold(&sku).await.unwrap_or(0);
        error = error.with("current", StockOut::from_level(&level, threshold));
    }
    error
}

/// `POST /api/reservations` (channel), with an optional `Idempotency-Key`.
pub async fn reserve(
    req: HttpRequest,
    state: State,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (ReserveRequest, _, _) =
        write_request(&req, &state, payload, Need::Channel).await?;
    let checked = request.validate()?;
    check_key(&state, &origin, "reserve", &bytes).await?;
    let options = ReserveOptions {
        customer: checked.customer,
        ttl: checked.ttl,
        order_id: checked.order_id,
        origin,
        expected_versions: checked.expected_versions,
    };
    let inventory = state.inventory.clone();
    match detached(async move { inventory.reserve_order(checked.lines, options).await }).await? {
        Ok(reservation) => {
            metrics::counter!("stockade_reservations_total", "outcome" => "held").increment(1);
            let mut response = HttpResponse::Created();
            response.insert_header(("Location", format!("/api/reservations/{}", reservation.id)));
            replayed(&mut response, reservation.replayed);
            Ok(response.json(ReservationOut::from(&reservation)))
        }
        Err(e) => {
            let outcome = if e.rejection().is_some() {
                "refused"
            } else {
                "error"
            };
            metrics::counter!("stockade_reservations_total", "outcome" => outcome).increment(1);
            Err(with_current(&state, e).await.into())
        }
    }
}

/// `GET /api/reservations/{id}`.
pub async fn reservation(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    state.authorize(&req, Need::Read, None)?;
    let id = reservation_id(&path)?;
    let status = state.inventory.reservation(id).await?;
    Ok(HttpResponse::Ok().json(ReservationStatusOut::from(&status)))
}

/// `POST /api/reservations/{id}/commit` (channel).
pub async fn commit(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    resolve(req, state, path, payload, true).await
}

/// `POST /api/reservations/{id}/release` (channel).
pub async fn release(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    resolve(req, state, path, payload, false).await
}

async fn resolve(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
    commit: bool,
) -> Result<HttpResponse> {
    let caller = state.authorize(&req, Need::Channel, None)?;
    // No body, `{}`, or `{"items": [...]}` for part of some lines.
    let bytes = body::read(&req, payload, state.config.limits.max_body_bytes).await?;
    let request: ResolveRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        ResolveRequest::default()
    } else {
        body::parse(&bytes)?
    };
    let part = request.validate()?;
    let id = reservation_id(&path)?;
    let origin = state.origin(&req, caller.as_ref())?;
    let endpoint = format!("{}:{id}", if commit { "commit" } else { "release" });
    // The whole commit takes no body, so its key is checked against none; a part's key
    // against its lines.
    let fingerprinted: &[u8] = if part.is_some() { &bytes } else { b"" };
    check_key(&state, &origin, &endpoint, fingerprinted).await?;
    let inventory = state.inventory.clone();
    let resolved = detached(async move {
        match (part, commit) {
            (None, true) => inventory.commit(id, &origin).await,
            (None, false) => inventory.release(id, &origin).await,
            (Some(lines), true) => inventory.commit_part(id, &lines, &origin).await,
            (Some(lines), false) => inventory.release_part(id, &lines, &origin).await,
        }
    })
    .await??;
    Ok(HttpResponse::Ok().json(ResolvedOut::from(&resolved)))
}

/// `POST /api/reservations/{id}/extend` (channel): keep every line longer.
pub async fn extend(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (ExtendRequest, _, _) =
        write_request(&req, &state, payload, Need::Channel).await?;
    let ttl = request.validate()?;
    let id = reservation_id(&path)?;
    check_key(&state, &origin, &format!("extend:{id}"), &bytes).await?;
    let inventory = state.inventory.clone();
    let changed = detached(async move { inventory.extend(id, ttl, &origin).await }).await??;
    let mut response = HttpResponse::Ok();
    replayed(&mut response, changed.replayed);
    Ok(response.json(ChangedOut::from(&changed)))
}

/// `POST /api/reservations/{id}/amend` (channel): change, add or take off lines.
pub async fn amend(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (AmendRequest, _, _) =
        write_request(&req, &state, payload, Need::Channel).await?;
    let lines = request.validate()?;
    let id = reservation_id(&path)?;
    check_key(&state, &origin, &format!("amend:{id}"), &bytes).await?;
    let inventory = state.inventory.clone();
    let changed = match detached(async move { inventory.amend(id, lines, &origin).await }).await? {
        Ok(changed) => changed,
        Err(e) => return Err(with_current(&state, e).await.into()),
    };
    let mut response = HttpResponse::Ok();
    replayed(&mut response, changed.replayed);
    Ok(response.json(ChangedOut::from(&changed)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// An admin's command on something a SKU names in its path (a transfer, a receipt):
/// the caller's origin, the body as `T` (no body, or only whitespace, reads as
/// `T::default()`), and the body's bytes for the key check.
async fn admin_optional_body<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<(stockade_engine::Origin, T, web::Bytes)> {
    let caller = state.authorize(req, Need::Admin, None)?;
    let bytes = body::read(req, payload, state.config.limits.max_body_bytes).await?;
    let request = if bytes.iter().all(u8::is_ascii_whitespace) {
        T::default()
    } else {
        body::parse(&bytes)?
    };
    let origin = state.origin(req, caller.as_ref())?;
    Ok((origin, request, bytes))
}

/// The shared state, for handlers that take it as an `Arc`.
pub fn shared(state: &State) -> Arc<AppState> {
    state.clone().into_inner()
}
