//! Blocks, the head, the supply report, health and metrics.

use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use axum::Json;
use machi_api::{BlockView, ClockView, ErrorBody, HaltView, HeadView, HealthView, SupplyReport};

use std::sync::atomic::Ordering;

use super::access::EVERYTHING;
use super::{query_param, Access, ApiError, AppState};

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![
        ("/v1/blocks/{height}", Access::Roles(EVERYTHING), get(block)),
        ("/v1/chain/head", Access::Public, get(head)),
        ("/v1/supply", Access::Public, get(supply)),
        ("/v1/health", Access::Public, get(health)),
        ("/metrics", Access::Public, get(metrics)),
    ]
}

/// A block as exported (one line of `machi-node export`, docs/FORMAT.md), with every
/// transaction's body: the everything scope only (the headers are public elsewhere).
#[utoipa::path(get, path = "/v1/blocks/{height}", tag = "chain",
    params(("height" = u64, Path, description = "the block's height; 0 is genesis")),
    security(("read_session" = [])),
    responses((status = 200, body = BlockView), (status = 400, body = ErrorBody, description = "bad_height"),
        (status = 401, body = ErrorBody, description = "read_auth_required, read_session_invalid, read_session_expired"),
        (status = 403, body = ErrorBody, description = "not_allowed: not the town, an auditor or a town service"),
        (status = 404, body = ErrorBody, description = "not_found: above the head")))]
async fn block(
    State(state): State<AppState>,
    Path(height): Path<String>,
) -> Result<Json<BlockView>, ApiError> {
    let height: u64 = height
        .parse()
        .map_err(|_| ApiError::bad_request("bad_height", "a block height is a whole number"))?;
    let chain = state.shared.chain.read().await;
    if height > chain.head.height {
        return Err(ApiError::not_found("block"));
    }
    let block = chain.block(height).map_err(|e| ApiError::internal("reading a block", e))?;
    Ok(Json(BlockView::new(&block)))
}

/// Longest a `GET /v1/chain/head?after=H&wait_ms=M` waits for a block above `H`.
pub(crate) const HEAD_WAIT_MS_MAX: u64 = 30_000;

/// The head; with `after=H&wait_ms=M`, waits up to `M` ms for a block above height `H`
/// (a long poll: followers such as the merchant API learn of a new block at once).
#[utoipa::path(get, path = "/v1/chain/head", tag = "chain",
    params(("after" = Option<u64>, Query, description = "with wait_ms: wait for a block above this height"),
        ("wait_ms" = Option<u64>, Query, description = "with after: wait this long at most (capped at 30,000)")),
    responses((status = 200, body = HeadView), (status = 400, body = ErrorBody, description = "bad_query")))]
async fn head(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<HeadView>, ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        query_param(&query, name)
            .map(|v| {
                v.parse().map_err(|_| ApiError::bad_request("bad_query", format!("{name} is a whole number")))
            })
            .transpose()
    };
    if let (Some(after), Some(wait_ms)) = (number("after")?, number("wait_ms")?) {
        // Subscribed before the head is read: a block committed in between still wakes us.
        let mut blocks = state.shared.events.subscribe();
        let mut closing = state.shared.closing.subscribe();
        if state.shared.chain.read().await.head.height <= after {
            let wait = std::time::Duration::from_millis(wait_ms.min(HEAD_WAIT_MS_MAX));
            // A node shutting down answers at once rather than hold up its shutdown.
            tokio::select! {
                _ = tokio::time::timeout(wait, blocks.recv()) => {}
                _ = closing.wait_for(|c| *c) => {}
            }
        }
    }
    Ok(head_view(&state).await)
}

async fn head_view(state: &AppState) -> Json<HeadView> {
    let chain = state.shared.chain.read().await;
    Json(HeadView {
        chain_id: chain.chain_id().to_string(),
        height: chain.head.height,
        hash: chain.head.hash(),
        timestamp_ms: chain.head.timestamp_ms,
        txs_total: chain.txs_total,
    })
}

/// The supply report: per issue, where every issued yen is (docs/AUDIT.md), with this
/// replica's attestation of exactly this report (its supply digest is the report's).
#[utoipa::path(get, path = "/v1/supply", tag = "chain", responses((status = 200, body = SupplyReport)))]
async fn supply(State(state): State<AppState>) -> Json<SupplyReport> {
    let chain = state.shared.chain.read().await;
    let issues = super::verifiable::supply_views(&chain);
    let attestation = (*super::verifiable::attest(&state, &chain, &issues)).clone();
    Json(SupplyReport {
        chain_id: chain.chain_id().to_string(),
        height: chain.head.height,
        block_hash: chain.head.hash(),
        issues,
        attestation,
    })
}

/// `status` is `ok`, or `clock_ahead` while block times are held back from a system
/// clock that ran ahead, or `head_ahead_of_clock` while the chain's time is later than
/// the clock; `halted` (with the block and the reason) when this replica refused a
/// committed block. Also this replica's role.
#[utoipa::path(get, path = "/v1/health", tag = "chain", responses((status = 200, body = HealthView)))]
async fn health(State(state): State<AppState>) -> Json<HealthView> {
    let metrics = &state.shared.metrics;
    let clock = ClockView {
        ahead_ms: metrics.clock_ahead_ms.load(Ordering::Relaxed),
        head_ahead_ms: metrics.head_ahead_of_clock_ms.load(Ordering::Relaxed),
    };
    let status = match (clock.ahead_ms, clock.head_ahead_ms) {
        (0, 0) => "ok",
        (0, _) => "head_ahead_of_clock",
        _ => "clock_ahead",
    };
    let halted = state
        .shared
        .halted
        .lock()
        .expect("halted")
        .as_ref()
        .map(|h| HaltView { height: h.height, reason: h.reason.clone() });
    let status = if halted.is_some() { "halted" } else { status };
    let role = state.replicas.role().to_string();
    let chain = state.shared.chain.read().await;
    Json(HealthView {
        status: status.into(),
        chain_id: chain.chain_id().to_string(),
        height: chain.head.height,
        clock,
        role,
        halted,
    })
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "chain",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4",
        description = "the Prometheus text format")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (height, txs) = {
        let chain = state.shared.chain.read().await;
        (chain.head.height, chain.txs_total)
    };
    let body = state.shared.metrics.render(height, txs);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
