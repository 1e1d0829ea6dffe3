//! `GET /v1/cash/days` and `GET /v1/cash/days/{day}`: per sale day (JST), the cash the
//! chain received, what each counter counted at its close, what the town deposited, and
//! the gaps (docs/AUDIT.md). The wallet's `operator close-day` reads its counter's day here;
//! counter operators and the everything scope read them (docs/RULES.md §5).

use axum::extract::{Path, State};
use axum::routing::{get, MethodRouter};
use axum::Json;
use machi_api::{CashDayView, CashReport, ErrorBody};

use super::access::CASH;
use super::{Access, ApiError, AppState};

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![
        ("/v1/cash/days", Access::Roles(CASH), get(days)),
        ("/v1/cash/days/{day}", Access::Roles(CASH), get(day)),
    ]
}

/// Every day with a sale, a close or a deposit, oldest first. Counter operators and the
/// everything scope.
#[utoipa::path(get, path = "/v1/cash/days", tag = "chain", security(("read_session" = [])),
    responses((status = 200, body = CashReport),
        (status = 401, body = ErrorBody, description = "read_auth_required, read_session_invalid, read_session_expired"),
        (status = 403, body = ErrorBody, description = "not_allowed: not an operator, the town, an auditor or a town service")))]
async fn days(State(state): State<AppState>) -> Json<CashReport> {
    let chain = state.shared.chain.read().await;
    Json(CashReport::new(&chain.state, chain.head.height))
}

/// One day (empty figures when nothing happened that day). Counter operators and the
/// everything scope.
#[utoipa::path(get, path = "/v1/cash/days/{day}", tag = "chain",
    params(("day" = String, Path, description = "the JST date, YYYY-MM-DD")),
    security(("read_session" = [])),
    responses((status = 200, body = CashDayView), (status = 400, body = ErrorBody, description = "bad_day"),
        (status = 401, body = ErrorBody, description = "read_auth_required, read_session_invalid, read_session_expired"),
        (status = 403, body = ErrorBody, description = "not_allowed: not an operator, the town, an auditor or a town service")))]
async fn day(State(state): State<AppState>, Path(day): Path<String>) -> Result<Json<CashDayView>, ApiError> {
    if machi_ledger::time::parse_date(&day).is_none() {
        return Err(ApiError::bad_request("bad_day", "a day is a date, YYYY-MM-DD"));
    }
    let chain = state.shared.chain.read().await;
    Ok(Json(CashReport::new(&chain.state, chain.head.height).day(&day)))
}
