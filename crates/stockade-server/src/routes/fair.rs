//! Fair selling over HTTP: a SKU's purchase limit and waitlist hold (admins), and the
//! waitlist itself (channels join, read their place and leave for their customers).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use stockade_wire::request::{customer, sku};
use stockade_wire::{
    ApiError, FairSellingOut, FairSellingRequest, JoinWaitlistRequest, WaitlistLeftOut,
    WaitlistPlaceOut,
};

use super::api::{check_key, detached, replayed, serde_urlencoded_query, write_request};
use crate::auth::Need;
use crate::error::Result;
use crate::state::AppState;

type State = web::Data<AppState>;

/// Places an admin read lists unless `limit` says otherwise.
const DEFAULT_PLACES: usize = 100;

/// `PUT /api/inventory/products/{sku}/fair-selling` (admin): the SKU's whole rules.
pub async fn set(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (FairSellingRequest, _, _) =
        write_request(&req, &state, payload, Need::Admin).await?;
    let sku = sku(&path, "sku")?;
    let rules = request.validate()?;
    check_key(&state, &origin, &format!("fair-selling:{sku}"), &bytes).await?;
    let inventory = state.inventory.clone();
    let setting = sku.clone();
    detached(async move { inventory.set_fair_selling(&setting, rules, &origin).await }).await??;
    let view = state.inventory.fair_selling(&sku, None, 0).await?;
    Ok(HttpResponse::Ok().json(FairSellingOut::new(&sku, &view, false)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlacesQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/inventory/products/{sku}/fair-selling?limit=N` (admin): the rules and the
/// first places in line, with their customers.
pub async fn get(req: HttpRequest, state: State, path: web::Path<String>) -> Result<HttpResponse> {
    state.authorize(&req, Need::Admin, None)?;
    let query: PlacesQuery = serde_urlencoded_query(req.query_string())?;
    let limit = match query.limit.unwrap_or(DEFAULT_PLACES) {
        n @ 1..=stockade_engine::MAX_PLACES_LISTED => n,
        _ => {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be 1-{}", stockade_engine::MAX_PLACES_LISTED),
            )
            .into());
        }
    };
    let sku = sku(&path, "sku")?;
    let view = state.inventory.fair_selling(&sku, None, limit).await?;
    Ok(HttpResponse::Ok().json(FairSellingOut::new(&sku, &view, true)))
}

/// `POST /api/inventory/products/{sku}/waitlist` (channels): a customer joins the line.
pub async fn join(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (request, bytes, origin): (JoinWaitlistRequest, _, _) =
        write_request(&req, &state, payload, Need::Channel).await?;
    let sku = sku(&path, "sku")?;
    let (customer, qty) = request.validate()?;
    check_key(&state, &origin, &format!("waitlist:{sku}"), &bytes).await?;
    let inventory = state.inventory.clone();
    let joining = sku.clone();
    let joined = detached(async move {
        inventory
            .join_waitlist(&joining, customer, qty, &origin)
            .await
    })
    .await??;
    let mut response = HttpResponse::Created();
    replayed(&mut response, joined.replayed);
    Ok(response.json(WaitlistPlaceOut {
        version: Some(joined.version),
        ..WaitlistPlaceOut::new(&sku, &joined.place)
    }))
}

/// `GET /api/inventory/products/{sku}/waitlist/{customer}` (channels): where the customer
/// stands, and what they may still buy under the SKU's limit.
pub async fn place(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    state.authorize(&req, Need::Channel, None)?;
    let (sku_text, customer_text) = path.into_inner();
    let sku = sku(&sku_text, "sku")?;
    let customer = customer(&customer_text, "customer")?;
    let view = state
        .inventory
        .fair_selling(&sku, Some(&customer), 0)
        .await?;
    Ok(HttpResponse::Ok().json(WaitlistPlaceOut::of_customer(&sku, &customer, &view)?))
}

/// `DELETE /api/inventory/products/{sku}/waitlist/{customer}` (channels): the customer
/// leaves the line.
pub async fn leave(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let caller = state.authorize(&req, Need::Channel, None)?;
    let origin = state.origin(&req, caller.as_ref())?;
    let (sku_text, customer_text) = path.into_inner();
    let sku = sku(&sku_text, "sku")?;
    let customer = customer(&customer_text, "customer")?;
    check_key(&state, &origin, &format!("leave:{sku}:{customer}"), b"").await?;
    let inventory = state.inventory.clone();
    let (leaving, who) = (sku.clone(), customer.clone());
    let version =
        detached(async move { inventory.leave_waitlist(&leaving, who, &origin).await }).await??;
    Ok(HttpResponse::Ok().json(WaitlistLeftOut::new(&sku, &customer, version)))
}
