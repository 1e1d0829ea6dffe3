//! Without a token: the pay-code look-up wallets use, health, and the OpenAPI document.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use machi_api::PayCodeView;
use machi_host::ApiError;
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::AppState;
use crate::limiter::client_address;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/pay/{code}", get(pay_code))
        .route("/v1/health", get(health))
        .route("/openapi.json", get(openapi))
}

/// What a wallet needs to pay an open invoice: shop, class, amount, invoice id, expiry.
/// Rate-limited per client (429 `rate_limited` with `Retry-After`): per IPv4 address or
/// IPv6 /64, taken from `X-Forwarded-For` only behind a `--trusted-proxy`.
#[utoipa::path(get, path = "/v1/pay/{code}", tag = "public",
    params(("code" = String, Path, description = "the invoice's 8-digit pay code")),
    responses((status = 200, body = PayCodeView), (status = 404, description = "unknown_pay_code"),
        (status = 429, description = "rate_limited")))]
pub(super) async fn pay_code(
    State(m): State<AppState>,
    Path(code): Path<String>,
    request: Request,
) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let trusted = &m.network.trusted_proxies;
    if let Some(client) = peer.map(|peer| client_address(peer, request.headers(), trusted)) {
        let limited = m.pay_limiter.lock().expect("limiter lock").take(client, m.now_ms());
        if let Err(wait_ms) = limited {
            let retry = wait_ms.div_ceil(1000).to_string();
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many look-ups; wait a moment",
            );
            return ([(header::RETRY_AFTER, retry)], error).into_response();
        }
    }
    match m.pay_code(&code) {
        Ok(view) => Json::<PayCodeView>(view).into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok`, or `halted` when the node served a block that failed its checks and the
    /// service stopped reading the chain.
    status: String,
    chain_id: String,
    /// The last block the service has read from the node.
    synced_height: u64,
    /// What was wrong with the block, when halted.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

#[utoipa::path(get, path = "/v1/health", tag = "public",
    responses((status = 200, body = Health), (status = 503, body = Health, description = "halted")))]
pub(super) async fn health(State(m): State<AppState>) -> (StatusCode, Json<Health>) {
    let problem = m.halted();
    let (status, word) = match problem {
        None => (StatusCode::OK, "ok"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "halted"),
    };
    let health = Health {
        status: word.into(),
        chain_id: m.chain_id.clone(),
        synced_height: *m.synced.borrow(),
        problem,
    };
    (status, Json(health))
}

#[utoipa::path(get, path = "/openapi.json", tag = "public", responses((status = 200, description = "this document")))]
pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, about) in [("admin", "the town's admin token (mta_…)"), ("shop", "a shop's token (mst_…)")]
        {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(about.to_string());
            components.add_security_scheme(name, SecurityScheme::Http(http));
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "machi-merchant", description = "The shops' backend of machi: invoices, payments matched from the chain, refunds, cash-outs and Zengin settlement. Errors are {\"error\": {\"code\", \"message\"}}."),
    paths(
        super::admin::register_shop, super::admin::list_shops, super::admin::change_bank, super::admin::suspend, super::admin::create_token, super::admin::list_tokens,
        super::admin::revoke_token, super::admin::settle, super::admin::list_settlements, super::admin::settlement,
        super::admin::zengin,
        super::shop::me, super::shop::create_invoice, super::shop::list_invoices, super::shop::invoice,
        super::shop::refund, super::shop::balance, super::shop::cash_out, super::shop::cash_outs,
        super::shop::statement, super::shop::events,
        pay_code, health, openapi
    ),
    modifiers(&BearerSchemes)
)]
pub(crate) struct ApiDoc;
