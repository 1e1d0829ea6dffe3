//! `GET /v1/accounts/{id}`: role, balances by issue and kind, purchases, history (the
//! account's own key and the everything scope); `GET /v1/shops/{id}`: a shop's public
//! profile.

use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, MethodRouter};
use axum::Extension;
use axum::Json;
use machi_api::{
    AccountView, BalanceView, ErrorBody, HistoryEntry, SetsBoughtView, ShopView, TxCode, TxStatus,
};
use machi_ledger::{Outcome, Role, TxBody};

use crate::access::Reader;
use crate::chain::{BlockReads, Chain};
use crate::shared::Shared;
use machi_ledger::time::format_jst_date;
use machi_ledger::AccountId;

use super::{parse_hex32, query_param, Access, ApiError, AppState};

pub(super) const HISTORY_ENTRIES_MAX: usize = 500;
const HISTORY_ENTRIES_DEFAULT: usize = 50;

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![("/v1/accounts/{id}", Access::Reader, get(account)), ("/v1/shops/{id}", Access::Public, get(shop))]
}

/// An account: role, name, balances by issue and kind (with expiry), sets bought, and
/// its latest transactions, newest first. Read by the account's own key (also the key
/// that replaced it) and the everything scope; to anyone else it is `not_found`, the very
/// answer a missing account gets.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "the account id (its public key), 64 hex digits"),
        ("history" = Option<usize>, Query, description = "history entries, default 50, at most 500")),
    security((), ("read_session" = [])),
    responses((status = 200, body = AccountView), (status = 400, body = ErrorBody, description = "bad_id, bad_query"),
        (status = 401, body = ErrorBody, description = "read_session_invalid, read_session_expired"),
        (status = 403, body = ErrorBody, description = "key_replaced, account_frozen: the session's key"),
        (status = 404, body = ErrorBody, description = "not_found: no such account, or not the reader's")))]
async fn account(
    State(state): State<AppState>,
    Extension(reader): Extension<Reader>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<AccountView>, ApiError> {
    let id: AccountId = parse_hex32(&id, "account id")?;
    let limit = match query_param(&query, "history") {
        Some(n) => n.parse().map_err(|_| ApiError::bad_request("bad_query", "history is a whole number"))?,
        None => HISTORY_ENTRIES_DEFAULT,
    };
    let limit = usize::min(limit, HISTORY_ENTRIES_MAX);
    let (mut view, reads) = {
        let chain = state.shared.chain.read().await;
        // Another's account is answered exactly as one that does not exist.
        if !reader.may_read(&chain.state, &id) {
            return Err(ApiError::not_found("account"));
        }
        (account_view(&chain, id)?, chain.history_reads(&id, limit))
    };
    // Blocks are read and decoded after the lock is released: the producer never waits
    // for a long history.
    let shared = state.shared.clone();
    let chain_id = state.shared.chain_id.clone();
    view.history = tokio::task::spawn_blocking(move || history(reads, &shared, &chain_id))
        .await
        .map_err(|e| ApiError::internal("reading history", e))?
        .map_err(|e| ApiError::internal("reading history", e))?;
    Ok(Json(view))
}

/// Everything but the history, under the chain's lock.
fn account_view(chain: &Chain, id: AccountId) -> Result<AccountView, ApiError> {
    let account = chain.state.accounts.get(&id).ok_or_else(|| ApiError::not_found("account"))?;
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
                expired: issue.residents_expired || chain.head.timestamp_ms > issue.params.spend_until_ms,
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
            .map(|(issue, sets)| SetsBoughtView { issue: *issue, sets: *sets })
            .collect(),
        history: Vec::new(),
    };
    Ok(view)
}

/// The history entries of `reads`, newest first (blocking: reads the block log).
fn history(reads: BlockReads, shared: &Shared, chain_id: &str) -> std::io::Result<Vec<HistoryEntry>> {
    let blocks = reads.read(|| (shared.reopen_log)())?;
    let mut entries = Vec::with_capacity(blocks.len());
    for (loc, block) in blocks {
        let tx = &block.txs[loc.index as usize];
        let outcome = block.outcomes[loc.index as usize];
        let body = TxBody::decode(&tx.body).ok();
        let (status, reason) = match outcome {
            Outcome::Applied => (TxStatus::Applied, None),
            Outcome::Rejected(r) => (TxStatus::Rejected, Some(TxCode::from(r))),
        };
        entries.push(HistoryEntry {
            tx_id: tx.id(chain_id),
            height: loc.height,
            timestamp_ms: block.header.timestamp_ms,
            kind: body.as_ref().map_or("unknown", |b| b.action.kind_name()).to_string(),
            status,
            reason,
            signer: tx.signer,
            body,
        });
    }
    Ok(entries)
}

/// A registered shop as a payer sees it before paying: its name, class and whether it is
/// frozen. Any account that is not a shop is `not_found`, as a missing one.
#[utoipa::path(get, path = "/v1/shops/{id}", tag = "accounts",
    params(("id" = String, Path, description = "the shop's account id, 64 hex digits")),
    responses((status = 200, body = ShopView), (status = 400, body = ErrorBody, description = "bad_id"),
        (status = 404, body = ErrorBody, description = "not_found: no shop with that id")))]
async fn shop(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ShopView>, ApiError> {
    let id: AccountId = parse_hex32(&id, "shop id")?;
    let chain = state.shared.chain.read().await;
    match chain.state.accounts.get(&id) {
        Some(account) => match account.role {
            Role::Shop(class) => {
                Ok(Json(ShopView { id, name: account.name.clone(), class, frozen: account.frozen }))
            }
            _ => Err(ApiError::not_found("shop")),
        },
        None => Err(ApiError::not_found("shop")),
    }
}
