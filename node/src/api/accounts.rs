//! `GET /v1/accounts/{id}`: role, balances by issue and kind, purchases, history.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use machi_ledger::api::{AccountView, BalanceView, SetsBoughtView};
use machi_ledger::time::format_jst_date;
use machi_ledger::AccountId;

use super::{parse_hex32, query_param, ApiError, AppState};

pub(super) const HISTORY_ENTRIES_MAX: usize = 500;
const HISTORY_ENTRIES_DEFAULT: usize = 50;
/// How long a history read waits for the indexer to reach the head it saw.
const INDEX_WAIT_MAX: Duration = Duration::from_secs(2);

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/accounts/{id}", get(account))
}

async fn account(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<AccountView>, ApiError> {
    let id: AccountId = parse_hex32(&id, "account id")?;
    let limit = match query_param(&query, "history") {
        Some(n) => n
            .parse()
            .map_err(|_| ApiError::bad_request("bad_query", "history is a whole number"))?,
        None => HISTORY_ENTRIES_DEFAULT,
    };
    let limit = usize::min(limit, HISTORY_ENTRIES_MAX);
    let (mut view, head) = {
        let chain = state.shared.chain.read().await;
        let account = chain
            .state
            .accounts
            .get(&id)
            .ok_or_else(|| ApiError::not_found("account"))?;
        let balances = account
            .lots
            .iter()
            .map(|lot| {
                let issue = &chain.state.issues[&lot.issue];
                BalanceView {
                    issue: lot.issue,
                    kind: lot.kind,
                    amount: lot.amount,
                    spend_until_ms: issue.params.spend_until_ms,
                    spend_until_jst: format_jst_date(issue.params.spend_until_ms),
                    expired: issue.residents_expired
                        || chain.head.timestamp_ms > issue.params.spend_until_ms,
                }
            })
            .collect();
        let view = AccountView {
            id,
            role: account.role.name().to_string(),
            name: account.name.clone(),
            frozen: account.frozen,
            replaced_by: account.replaced_by,
            total: account.total(),
            balances,
            sets_bought: account
                .bought
                .iter()
                .map(|(issue, sets)| SetsBoughtView {
                    issue: *issue,
                    sets: *sets,
                })
                .collect(),
            history: Vec::new(),
        };
        (view, chain.head.height)
    };
    // Read your writes: the history includes every block committed before this request.
    let mut indexed = state.shared.indexed_height.subscribe();
    let _ = tokio::time::timeout(INDEX_WAIT_MAX, indexed.wait_for(|h| *h >= head)).await;
    let shared = state.shared.clone();
    view.history = tokio::task::spawn_blocking(move || shared.index.history(&id, limit))
        .await
        .map_err(|e| ApiError::internal("reading history", e))?;
    Ok(Json(view))
}
