//! The HTTP API (docs/RULES.md §6, MERCHANT-API.md): the node's error shape
//! (`{"error": {"code", "message"}}`) and limits; bearer-token authentication as an
//! extractor; one router per side: `admin` (the town), `shop` (a shop's token), `public`
//! (pay-code look-up, health, OpenAPI document).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use machi_host::{ApiError, JsonBody};
use machi_ledger::AccountId;
use serde::de::DeserializeOwned;

use crate::auth::{unauthorized, Caller};
use crate::merchant::Merchant;
use crate::model::Scope;

mod admin;
mod public;
mod shop;

pub(crate) use public::ApiDoc;

/// Largest request body: the largest request (a shop registration) is far smaller.
pub(crate) const BODY_BYTES_MAX: usize = 64 * 1024;

pub(crate) type AppState = Arc<Merchant>;

pub(crate) fn app(merchant: Arc<Merchant>) -> Router {
    Router::new()
        .merge(admin::router())
        .merge(shop::router())
        .merge(public::router())
        // The pages: their own session cookie, never a bearer token (crate::web).
        .merge(crate::web::router())
        // A path under /v1 is the API's JSON 404; anything else a person typed, a page.
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/v1/") {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()
            } else {
                crate::web::not_found()
            }
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(BODY_BYTES_MAX, machi_host::refuse_oversized))
        .with_state(merchant)
}

/// The authenticated caller.
pub(crate) struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, merchant: &AppState) -> Result<Auth, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing_token", "send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("missing_token", "send Authorization: Bearer <token>"))?;
        Ok(Auth(merchant.authenticate(token.trim())?))
    }
}

impl Auth {
    /// The caller's shop, if its token's scope allows `needed`.
    pub(crate) fn shop(&self, needed: Scope) -> Result<AccountId, ApiError> {
        match &self.0 {
            Caller::Shop { shop, scope } if *scope >= needed => Ok(*shop),
            Caller::Shop { scope, .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_scope",
                format!("this needs a {needed:?} token; this one is {scope:?}"),
            )),
            Caller::Admin => {
                Err(ApiError::new(StatusCode::FORBIDDEN, "shop_only", "this needs a shop's token"))
            }
        }
    }

    pub(crate) fn admin(&self) -> Result<(), ApiError> {
        match self.0 {
            Caller::Admin => Ok(()),
            Caller::Shop { .. } => {
                Err(ApiError::new(StatusCode::FORBIDDEN, "admin_only", "this needs the town's admin token"))
            }
        }
    }
}

/// A JSON body kept with its bytes (idempotency compares requests byte for byte).
pub(crate) struct RawJson<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T: DeserializeOwned> FromRequest<AppState> for RawJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<RawJson<T>, ApiError> {
        let raw = Bytes::from_request(request, state).await.map_err(JsonBody::<T>::rejection)?;
        Ok(RawJson { value: JsonBody::<T>::parse(&raw)?, raw })
    }
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("bad_idempotency_key", "Idempotency-Key must be ASCII"))?;
    crate::invoices::check_idempotency_key(key)?;
    Ok(Some(key.to_string()))
}

pub(crate) fn parse_account(text: &str) -> Result<AccountId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("shop"))
}
