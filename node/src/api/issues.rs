//! `GET /v1/issues` and `GET /v1/issues/{id}`: parameters, sets sold and left, supply.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use machi_api::IssueView;
use machi_ledger::IssueState;

use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/issues", get(list)).route("/v1/issues/{id}", get(one))
}

fn view(issue: &IssueState, now_ms: u64) -> IssueView {
    let p = &issue.params;
    IssueView {
        params: p.clone(),
        sets_sold: issue.supply.sets_sold,
        sets_left: issue.sets_left(),
        on_sale: now_ms >= p.sale_start_ms && now_ms < p.sale_end_ms && issue.sets_left() > 0,
        residents_expired: issue.residents_expired,
        shops_expired: issue.shops_expired,
        supply: issue.supply.clone(),
    }
}

async fn list(State(state): State<AppState>) -> Json<Vec<IssueView>> {
    let chain = state.shared.chain.read().await;
    let now = state.shared.clock.now_ms();
    Json(chain.state.issues.values().map(|i| view(i, now)).collect())
}

async fn one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<IssueView>, ApiError> {
    let id: u32 = id.parse().map_err(|_| ApiError::bad_request("bad_id", "an issue id is a whole number"))?;
    let chain = state.shared.chain.read().await;
    let issue = chain.state.issues.get(&id).ok_or_else(|| ApiError::not_found("issue"))?;
    Ok(Json(view(issue, state.shared.clock.now_ms())))
}
