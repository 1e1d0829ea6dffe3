//! The HTTP API (docs/RULES.md §5): one router per resource, JSON errors with stable codes.

use std::sync::atomic::Ordering;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
/// The HTTP error shape and JSON extractor, shared with the merchant API so both answer alike.
pub use machi_host::{ApiError, JsonBody};

/// What every HTTP handler holds: the shared state, replication, the way to the producer,
/// the signature verifier, and the read sessions with the access log.
#[derive(Clone)]
pub(crate) struct AppState {
    pub shared: std::sync::Arc<crate::shared::Shared>,
    pub replicas: std::sync::Arc<crate::replica::replication::Replicas>,
    pub submit: std::sync::mpsc::SyncSender<crate::shared::Submission>,
    pub verifier: crate::verify::Verifier,
    pub readers: std::sync::Arc<crate::access::Readers>,
    /// Signs this replica's attestations (`GET /v1/attestation`, `GET /v1/supply`).
    pub attestor: std::sync::Arc<verifiable::Attestor>,
}

mod access;
mod accounts;
mod cash;
mod chain;
mod cluster;
mod dashboard;
mod events;
mod issues;
mod openapi;
mod proof;
pub(crate) mod transactions;
pub(crate) mod verifiable;

pub(crate) use chain::HEAD_WAIT_MS_MAX;
pub(crate) use openapi::ApiDoc;

/// Largest request body accepted (a full batch of typical transactions fits easily).
pub const BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

pub(crate) use access::Access;

/// Every route: its path, who may call it (`Access`, docs/RULES.md §5) and its handlers,
/// by resource. The router is built from this one list; the OpenAPI test checks that the
/// document describes each path and method, and the privacy test that each answers every
/// kind of reader as RULES.md says.
fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    [
        access::routes(),
        transactions::routes(),
        proof::routes(),
        accounts::routes(),
        issues::routes(),
        cash::routes(),
        chain::routes(),
        cluster::routes(),
        events::routes(),
        dashboard::routes(),
        openapi::routes(),
        verifiable::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The path of every route the API serves, as written in the OpenAPI document.
pub fn paths() -> Vec<&'static str> {
    routes().into_iter().map(|(path, _, _)| path).collect()
}

pub(crate) fn app(state: AppState) -> Router {
    let router = routes().into_iter().fold(Router::new(), |router, (path, access, methods)| {
        let methods = match access {
            Access::Public => methods,
            access => methods
                .route_layer(axum::middleware::from_fn_with_state((state.clone(), access), access::enforce)),
        };
        router.route(path, methods)
    });
    router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(BODY_BYTES_MAX, crate::serve::refuse_oversized))
        .layer(axum::middleware::from_fn_with_state(state.clone(), wait_for_min_height))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Longest a read with `?min_height=H` waits for this replica to apply block `H`.
pub(crate) const MIN_HEIGHT_WAIT_MS_MAX: u64 = 10_000;

/// A read with `?min_height=H` (any route) is answered once this replica has applied
/// block `H`, so a client that wrote through one replica reads its write on another. Not
/// within `MIN_HEIGHT_WAIT_MS_MAX`: 503 `behind`, naming how far this replica is.
async fn wait_for_min_height(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let query = request.uri().query().map(str::to_string);
    if let Some(text) = query_param(&query, "min_height") {
        let Ok(height) = text.parse::<u64>() else {
            return ApiError::bad_request(
                "bad_min_height",
                "min_height must be a block height (a whole number)",
            )
            .into_response();
        };
        let wait = std::time::Duration::from_millis(MIN_HEIGHT_WAIT_MS_MAX);
        if !state.shared.applied_at_least(height, wait).await {
            let applied = *state.shared.applied.borrow();
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "behind",
                format!("this replica has applied blocks up to {applied}, not yet {height}; try again or ask another"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

async fn count_requests(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let metrics = &state.shared.metrics;
    metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    if response.status().is_client_error() {
        metrics.http_client_errors.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// The value of `name` in a query string. machi's query values (hex ids, numbers,
/// dates) never need percent-decoding.
fn query_param<'a>(query: &'a Option<String>, name: &str) -> Option<&'a str> {
    query
        .as_deref()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Parses a 64-hex-digit path segment.
fn parse_hex32<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("bad_id", format!("{what} must be 64 lowercase hex digits")))
}
