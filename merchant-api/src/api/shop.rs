//! A shop's side, with its bearer token: invoices, refunds, balance, cash-outs,
//! statements and the event stream for the counter device. A token reaches only its
//! own shop's things; another shop's invoice is "not found".

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use machi_host::ApiError;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use utoipa::IntoParams;

use super::{idempotency_key, AppState, Auth, RawJson};
use crate::model::{
    Balance, CashOut, CashOutRequest, CreateInvoiceRequest, Invoice, InvoiceStatus, RefundRequest, Scope,
    ShopEvent, ShopView,
};

/// Events a reconnecting device may be sent from the store at once.
const EVENTS_REPLAY_MAX: usize = 1_000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/shop", get(me))
        .route("/v1/invoices", post(create_invoice).get(list_invoices))
        .route("/v1/invoices/{id}", get(invoice))
        .route("/v1/invoices/{id}/refunds", post(refund))
        .route("/v1/balance", get(balance))
        .route("/v1/cashouts", post(cash_out).get(cash_outs))
        .route("/v1/statements/{month}", get(statement))
        .route("/v1/events", get(events))
}

/// The shop this token belongs to.
#[utoipa::path(get, path = "/v1/shop", tag = "shop", security(("shop" = [])),
    responses((status = 200, body = ShopView), (status = 401), (status = 403)))]
pub(super) async fn me(State(m): State<AppState>, auth: Auth) -> Result<Json<ShopView>, ApiError> {
    let shop = auth.shop(Scope::ReadOnly)?;
    let shop = m.shop(&shop).ok_or_else(|| ApiError::not_found("shop"))?;
    Ok(Json(ShopView::new(&shop.record)))
}

/// Create a payment request. With an `Idempotency-Key`, repeating the same request
/// returns the same invoice (200); the same key with another body is 409.
#[utoipa::path(post, path = "/v1/invoices", tag = "shop", security(("shop" = [])),
    request_body = CreateInvoiceRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    responses((status = 201, body = Invoice), (status = 200, body = Invoice, description = "the invoice this key made before"),
        (status = 400), (status = 401), (status = 403), (status = 409, description = "idempotency_conflict")))]
pub(super) async fn create_invoice(
    State(m): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: RawJson<CreateInvoiceRequest>,
) -> Result<(StatusCode, Json<Invoice>), ApiError> {
    let shop = auth.shop(Scope::PointOfSale)?;
    let key = idempotency_key(&headers)?;
    let (invoice, created) = m.create_invoice(shop, &body.value, &body.raw, key.as_deref()).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(invoice)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct InvoiceFilter {
    /// open, paid, expired, partly_refunded or refunded.
    status: Option<InvoiceStatus>,
    /// Created on or after this JST day (YYYY-MM-DD).
    from: Option<String>,
    /// Created on or before this JST day (YYYY-MM-DD).
    to: Option<String>,
    /// At most this many, newest first (default and most: 500).
    limit: Option<usize>,
}

/// A shop's invoices, newest first.
#[utoipa::path(get, path = "/v1/invoices", tag = "shop", security(("shop" = [])), params(InvoiceFilter),
    responses((status = 200, body = Vec<Invoice>), (status = 400, description = "bad_date"), (status = 401)))]
pub(super) async fn list_invoices(
    State(m): State<AppState>,
    auth: Auth,
    filter: Result<Query<InvoiceFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Invoice>>, ApiError> {
    let shop = auth.shop(Scope::ReadOnly)?;
    let Query(filter) = filter.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let day = |text: &Option<String>, end: bool| -> Result<Option<u64>, ApiError> {
        let Some(text) = text else { return Ok(None) };
        let ms = if end {
            machi_ledger::time::end_of_day_jst_ms(text)
        } else {
            machi_ledger::time::start_of_day_jst_ms(text)
        };
        ms.map(Some).ok_or_else(|| ApiError::bad_request("bad_date", "dates are YYYY-MM-DD"))
    };
    let from = day(&filter.from, false)?.unwrap_or(0);
    let to = day(&filter.to, true)?.unwrap_or(u64::MAX - 1);
    let limit = filter.limit.unwrap_or(crate::invoices::INVOICES_LIST_MAX);
    Ok(Json(m.invoices(&shop, filter.status, from, to, limit)))
}

#[utoipa::path(get, path = "/v1/invoices/{id}", tag = "shop", security(("shop" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Invoice), (status = 404), (status = 401)))]
pub(super) async fn invoice(
    State(m): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Invoice>, ApiError> {
    let shop = auth.shop(Scope::ReadOnly)?;
    Ok(Json(m.invoice(&shop, &id)?))
}

/// Refund part or all of a paid invoice to the resident who paid it; never more than
/// the payment less earlier refunds. Answers once the refund is on chain.
#[utoipa::path(post, path = "/v1/invoices/{id}/refunds", tag = "shop", security(("shop" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = RefundRequest,
    responses((status = 200, body = Invoice), (status = 404), (status = 409, description = "invoice_not_paid"),
        (status = 422, description = "refund_exceeds_payment")))]
pub(super) async fn refund(
    State(m): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: RawJson<RefundRequest>,
) -> Result<Json<Invoice>, ApiError> {
    let shop = auth.shop(Scope::PointOfSale)?;
    let key = idempotency_key(&headers)?;
    Ok(Json(m.refund(&shop, &id, body.value.amount, &body.raw, key.as_deref()).await?))
}

/// The shop's balance by issue, with what is pending cash-out.
#[utoipa::path(get, path = "/v1/balance", tag = "shop", security(("shop" = [])),
    responses((status = 200, body = Balance), (status = 401), (status = 503)))]
pub(super) async fn balance(State(m): State<AppState>, auth: Auth) -> Result<Json<Balance>, ApiError> {
    let shop = auth.shop(Scope::ReadOnly)?;
    Ok(Json(m.balance(&shop).await?))
}

/// Request a cash-out (換金) of an issue's value; the fee and the net transfer are stated.
#[utoipa::path(post, path = "/v1/cashouts", tag = "shop", security(("shop" = [])),
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = CashOutRequest,
    responses((status = 201, body = CashOut), (status = 403, description = "wrong_scope: needs a full token"),
        (status = 422, description = "nothing_to_cash_out, or the ledger's reason")))]
pub(super) async fn cash_out(
    State(m): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: RawJson<CashOutRequest>,
) -> Result<(StatusCode, Json<CashOut>), ApiError> {
    let shop = auth.shop(Scope::Full)?;
    let key = idempotency_key(&headers)?;
    Ok((StatusCode::CREATED, Json(m.request_cash_out(&shop, &body.value, &body.raw, key.as_deref()).await?)))
}

#[utoipa::path(get, path = "/v1/cashouts", tag = "shop", security(("shop" = [])),
    responses((status = 200, body = Vec<CashOut>), (status = 401)))]
pub(super) async fn cash_outs(State(m): State<AppState>, auth: Auth) -> Result<Json<Vec<CashOut>>, ApiError> {
    let shop = auth.shop(Scope::ReadOnly)?;
    Ok(Json(m.cash_outs(&shop)))
}

/// A month's itemised statement as CSV (JST): payments, refunds, cash-outs with fees,
/// and cash-outs paid. `X-Statement-Status: closed` once the month is over; a closed
/// statement never changes.
#[utoipa::path(get, path = "/v1/statements/{month}", tag = "shop", security(("shop" = [])),
    params(("month" = String, Path, description = "YYYY-MM")),
    responses((status = 200, description = "CSV", content_type = "text/csv"), (status = 400, description = "bad_month")))]
pub(super) async fn statement(
    State(m): State<AppState>,
    auth: Auth,
    Path(month): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let shop = auth.shop(Scope::ReadOnly)?;
    let (csv, closed) = m.statement(&shop, &month)?;
    let status = if closed { "closed" } else { "open" };
    let disposition = format!("attachment; filename=\"statement-{month}.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::HeaderName::from_static("x-statement-status"), status.to_string()),
        ],
        csv,
    ))
}

/// Server-sent events for the counter device: `invoice.paid`, `refund.done`,
/// `cash_out.paid`. Each has an id; reconnect with `Last-Event-ID` to get what was missed.
#[utoipa::path(get, path = "/v1/events", tag = "shop", security(("shop" = [])),
    params(("Last-Event-ID" = Option<u64>, Header)),
    responses((status = 200, description = "text/event-stream of ShopEvent", body = ShopEvent)))]
pub(super) async fn events(
    State(m): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let shop = auth.shop(Scope::ReadOnly)?;
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    // Subscribe before reading the store, so nothing falls between the two.
    let live = m.events.subscribe();
    let mut replayed = Vec::new();
    if after != u64::MAX {
        for (_, value) in m.store.events.range((after + 1).to_be_bytes()..).filter_map(|item| item.ok()) {
            let event: ShopEvent = serde_json::from_slice(&value).expect("values this program wrote decode");
            if event.shop == shop {
                replayed.push(event);
            }
            if replayed.len() >= EVENTS_REPLAY_MAX {
                break;
            }
        }
    }
    let last = replayed.last().map_or(if after == u64::MAX { 0 } else { after }, |e| e.seq);
    let to_sse = |event: &ShopEvent| {
        Event::default().id(event.seq.to_string()).event(event.kind.clone()).json_data(event).ok()
    };
    let replay = stream::iter(replayed.iter().filter_map(to_sse).map(Ok).collect::<Vec<_>>());
    let live = BroadcastStream::new(live).filter_map(move |item| {
        let out = match item {
            Ok(event) if event.shop == shop && event.seq > last => to_sse(&event).map(Ok),
            Ok(_) => None,
            Err(_) => Some(Ok(Event::default()
                .event("lagged")
                .data("events were missed; reconnect with Last-Event-ID"))),
        };
        std::future::ready(out)
    });
    // The stream ends when the service shuts down, so shutdown is not held up by counters.
    let mut closing = m.closing.subscribe();
    let closed = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    let stream = replay.chain(live).take_until(Box::pin(closed));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
