//! Blocks, the head, the supply report, health and metrics.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use machi_ledger::api::{BlockView, HeadView, HealthView, IssueSupplyView, SupplyReport};

use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/chain/head", get(head))
        .route("/v1/supply", get(supply))
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
}

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

async fn head(State(state): State<AppState>) -> Json<HeadView> {
    let chain = state.shared.chain.read().await;
    Json(HeadView {
        chain_id: chain.chain_id().to_string(),
        height: chain.head.height,
        hash: chain.head.hash(),
        timestamp_ms: chain.head.timestamp_ms,
        txs_total: chain.txs_total,
    })
}

async fn supply(State(state): State<AppState>) -> Json<SupplyReport> {
    let chain = state.shared.chain.read().await;
    Json(SupplyReport {
        chain_id: chain.chain_id().to_string(),
        height: chain.head.height,
        block_hash: chain.head.hash(),
        issues: chain.state.issues.values().map(|i| IssueSupplyView::new(&i.params, &i.supply)).collect(),
    })
}

async fn health(State(state): State<AppState>) -> Json<HealthView> {
    let chain = state.shared.chain.read().await;
    Json(HealthView {
        status: "ok".into(),
        chain_id: chain.chain_id().to_string(),
        height: chain.head.height,
    })
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (height, txs) = {
        let chain = state.shared.chain.read().await;
        (chain.head.height, chain.txs_total)
    };
    let body = state.shared.metrics.render(height, txs);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
