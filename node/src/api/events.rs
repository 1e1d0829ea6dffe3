//! `GET /v1/events?account=ID`: server-sent events, one per committed transaction that
//! concerns the account (without `account`: every transaction).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, MethodRouter};
use axum::Extension;
use futures_util::stream::{self, Stream, StreamExt};
use machi_api::{ErrorBody, TxEvent, TxStatus};
use machi_ledger::AccountId;
use tokio_stream::wrappers::BroadcastStream;

use crate::access::Reader;

use super::{parse_hex32, query_param, Access, ApiError, AppState};

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![("/v1/events", Access::Reader, get(events))]
}

/// Server-sent events: one `tx` event (a TxEvent) per committed transaction that
/// concerns the account, or every one without `account`; a `lagged` event when a slow
/// reader missed some. The stream ends when the node stops.
///
/// With `account`: the account's own key (or the key that replaced it) and the everything
/// scope; to anyone else `not_found`, the very answer an account that does not exist gets.
/// Without: the everything scope only.
#[utoipa::path(get, path = "/v1/events", tag = "chain",
    params(("account" = Option<String>, Query, description = "only this account's transactions (64 hex digits)")),
    security((), ("read_session" = [])),
    responses((status = 200, body = TxEvent, content_type = "text/event-stream",
            description = "a stream of `tx` events, each a TxEvent"),
        (status = 400, body = ErrorBody, description = "bad_id"),
        (status = 401, body = ErrorBody, description = "read_auth_required (every transaction), \
            read_session_invalid, read_session_expired"),
        (status = 403, body = ErrorBody, description = "not_allowed (every transaction), key_replaced, \
            account_frozen"),
        (status = 404, body = ErrorBody, description = "not_found: no such account, or not the reader's")))]
async fn events(
    State(state): State<AppState>,
    Extension(reader): Extension<Reader>,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let account: Option<AccountId> = match query_param(&query, "account") {
        Some(text) => Some(parse_hex32(text, "account")?),
        None => None,
    };
    match &account {
        Some(account) => {
            let chain = state.shared.chain.read().await;
            if !reader.may_read(&chain.state, account) {
                return Err(ApiError::not_found("account"));
            }
        }
        None => super::access::refuse_unless(&reader, super::access::EVERYTHING)?,
    }
    let receiver = state.shared.events.subscribe();
    let mut closing = state.shared.closing.subscribe();
    // A reader whose key is frozen or replaced reads nothing more: its stream ends before
    // the block that does it.
    let reader_key = match &reader {
        Reader::Key(key) => Some(key.account),
        Reader::Anonymous => None,
    };
    let revoked = move |batch: &Result<Arc<Vec<TxEvent>>, _>| match (batch, reader_key) {
        (Ok(events), Some(key)) => events.iter().any(|e| {
            e.status == TxStatus::Applied
                && matches!(e.kind.as_str(), "freeze" | "replace_key")
                && e.accounts.contains(&key)
                && e.signer != key
        }),
        _ => false,
    };
    let stream = BroadcastStream::new(receiver).take_while(move |batch| std::future::ready(!revoked(batch)));
    let stream = stream.flat_map(move |batch| {
        let events: Vec<Result<Event, Infallible>> = match batch {
            Ok(events) => events
                .iter()
                .filter(|e| account.is_none_or(|a| e.accounts.contains(&a)))
                .filter_map(|e| Event::default().event("tx").json_data(e).ok())
                .map(Ok)
                .collect(),
            // A slow reader missed events: say so, so it can re-read the account.
            Err(_) => {
                vec![Ok(Event::default().event("lagged").data("events were missed; re-read the account"))]
            }
        };
        stream::iter(events)
    });
    // The stream ends when the node shuts down.
    let closed = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    let stream = stream.take_until(Box::pin(closed));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
