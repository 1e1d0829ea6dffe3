//! `GET /v1/issues` and `GET /v1/issues/{id}`: parameters, sets sold and left, supply.

use axum::extract::{Path, State};
use axum::routing::{get, MethodRouter};
use axum::Json;
use machi_api::{ErrorBody, IssueView};
use machi_ledger::IssueState;

use super::{ApiError, AppState};

pub(super) fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![("/v1/issues", get(list)), ("/v1/issues/{id}", get(one))]
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

/// Every issue: parameters, sets sold and left, whether on sale, supply.
#[utoipa::path(get, path = "/v1/issues", tag = "issues", responses((status = 200, body = Vec<IssueView>)))]
async fn list(State(state): State<AppState>) -> Json<Vec<IssueView>> {
    let chain = state.shared.chain.read().await;
    let now = state.shared.clock.now_ms();
    Json(chain.state.issues.values().map(|i| view(i, now)).collect())
}

/// One issue.
#[utoipa::path(get, path = "/v1/issues/{id}", tag = "issues",
    params(("id" = u32, Path, description = "the issue's number")),
    responses((status = 200, body = IssueView), (status = 400, body = ErrorBody, description = "bad_id"),
        (status = 404, body = ErrorBody, description = "not_found")))]
async fn one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<IssueView>, ApiError> {
    let id: u32 = id.parse().map_err(|_| ApiError::bad_request("bad_id", "an issue id is a whole number"))?;
    let chain = state.shared.chain.read().await;
    let issue = chain.state.issues.get(&id).ok_or_else(|| ApiError::not_found("issue"))?;
    Ok(Json(view(issue, state.shared.clock.now_ms())))
}
