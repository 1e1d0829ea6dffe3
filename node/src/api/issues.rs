//! `GET /v1/issues` and `GET /v1/issues/{id}`: parameters, sets sold and left, supply;
//! `GET /v1/issues/{id}/lottery` and `.../lottery/{account}`: a lottery issue's draw.

use axum::extract::{Path, State};
use axum::routing::{get, MethodRouter};
use axum::Extension;
use axum::Json;
use machi_api::{ErrorBody, IssueView, LotteryEntryView, LotteryView, SaleMode};
use machi_ledger::{AccountId, IssueState};

use crate::access::Reader;

use super::{parse_hex32, Access, ApiError, AppState};

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![
        ("/v1/issues", Access::Public, get(list)),
        ("/v1/issues/{id}", Access::Public, get(one)),
        ("/v1/issues/{id}/lottery", Access::Reader, get(lottery)),
        ("/v1/issues/{id}/lottery/{account}", Access::Reader, get(lottery_entry)),
    ]
}

fn view(issue: &IssueState, lottery: bool, now_ms: u64) -> IssueView {
    let p = &issue.params;
    IssueView {
        params: p.clone(),
        sale_mode: if lottery { SaleMode::Lottery } else { SaleMode::FirstCome },
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
    let lottery = |i: &IssueState| chain.state.lotteries.contains_key(&i.params.id);
    Json(chain.state.issues.values().map(|i| view(i, lottery(i), now)).collect())
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
    Ok(Json(view(issue, chain.state.lotteries.contains_key(&id), state.shared.clock.now_ms())))
}

fn issue_id(id: &str) -> Result<u32, ApiError> {
    id.parse().map_err(|_| ApiError::bad_request("bad_id", "an issue id is a whole number"))
}

/// A lottery issue's lottery: schedule, parties with their commitments and secrets, the
/// applications, and once drawn the seed, who did not reveal, the winners, the waiting
/// list and the purchases. The per-account lists (applications, winners, waiting list,
/// allotment) are given only to the everything scope; anyone else gets the counts, with
/// the lists empty and `lists_withheld` true.
#[utoipa::path(get, path = "/v1/issues/{id}/lottery", tag = "issues",
    params(("id" = u32, Path, description = "the issue's number")),
    security((), ("read_session" = [])),
    responses((status = 200, body = LotteryView), (status = 400, body = ErrorBody, description = "bad_id"),
        (status = 401, body = ErrorBody, description = "read_session_invalid, read_session_expired"),
        (status = 404, body = ErrorBody, description = "not_found: no such issue, or it is sold first come")))]
async fn lottery(
    State(state): State<AppState>,
    Extension(reader): Extension<Reader>,
    Path(id): Path<String>,
) -> Result<Json<LotteryView>, ApiError> {
    let id = issue_id(&id)?;
    let chain = state.shared.chain.read().await;
    let issue = chain.state.issues.get(&id).ok_or_else(|| ApiError::not_found("issue"))?;
    let lottery = chain.state.lotteries.get(&id).ok_or_else(|| ApiError::not_found("lottery issue"))?;
    let view = LotteryView::new(issue, lottery, state.shared.clock.now_ms());
    Ok(Json(if reader.everything() { view } else { view.withhold_lists() }))
}

/// One resident's application and result (当選 / 補欠 / 落選), by any key that has held
/// their identity since the draw, and by the everything scope; to anyone else `not_found`,
/// the very answer an account that does not exist gets.
#[utoipa::path(get, path = "/v1/issues/{id}/lottery/{account}", tag = "issues",
    params(("id" = u32, Path, description = "the issue's number"),
        ("account" = String, Path, description = "the resident's account, 64 hex digits")),
    security((), ("read_session" = [])),
    responses((status = 200, body = LotteryEntryView), (status = 400, body = ErrorBody, description = "bad_id"),
        (status = 401, body = ErrorBody, description = "read_session_invalid, read_session_expired"),
        (status = 403, body = ErrorBody, description = "key_replaced, account_frozen: the session's key"),
        (status = 404, body = ErrorBody, description = "not_found: no such issue, it is sold first come, or \
            the account is not the reader's")))]
async fn lottery_entry(
    State(state): State<AppState>,
    Extension(reader): Extension<Reader>,
    Path((id, account)): Path<(String, String)>,
) -> Result<Json<LotteryEntryView>, ApiError> {
    let id = issue_id(&id)?;
    let account: AccountId = parse_hex32(&account, "account id")?;
    let chain = state.shared.chain.read().await;
    let issue = chain.state.issues.get(&id).ok_or_else(|| ApiError::not_found("issue"))?;
    let lottery = chain.state.lotteries.get(&id).ok_or_else(|| ApiError::not_found("lottery issue"))?;
    if !reader.may_read(&chain.state, &account) {
        return Err(ApiError::not_found("account"));
    }
    Ok(Json(LotteryEntryView::new(issue, lottery, account, state.shared.clock.now_ms())))
}
