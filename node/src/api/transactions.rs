//! `POST /v1/transactions` (one or a batch; answers once the block is durable) and
//! `GET /v1/transactions/{id}`.

use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Extension;
use axum::Json;
use machi_api::{
    ErrorBody, ErrorDetail, SubmitRequest, SubmitResponse, TxCode, TxErrorBody, TxResultView, TxView,
    SUBMIT_TXS_MAX,
};
use machi_ledger::{decode, SignedTx, TxBody, TxId, VerifiedTx};
use tokio::sync::oneshot;

use super::{parse_hex32, Access, ApiError, AppState, JsonBody};
use crate::access::Reader;
use crate::replica::replication::Route;
use crate::shared::Submission;

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![
        ("/v1/transactions", Access::Public, post(submit)),
        ("/v1/transactions/{id}", Access::Reader, get(status)),
    ]
}

/// One transaction's answer: the result itself when applied, else an error body that
/// also carries the result.
fn single_response(view: TxResultView) -> Response {
    let status = StatusCode::from_u16(view.http_status()).expect("a result's status is a valid HTTP status");
    if status == StatusCode::OK {
        return Json(SubmitResponse::One(view)).into_response();
    }
    let error = ErrorDetail {
        code: view.reason.map(|code| code.name().to_string()).unwrap_or_default(),
        message: view.message.clone().unwrap_or_default(),
    };
    (status, Json(TxErrorBody { error, result: view })).into_response()
}

/// Submit one signed transaction, or an array of up to 1,024; answers once the block
/// holding them is durable (a transaction already on the chain gets its first result).
/// One transaction that is not applied is answered with an error that carries its
/// result, at the status of its code; a batch is answered 200 with every result in order.
#[utoipa::path(post, path = "/v1/transactions", tag = "transactions",
    request_body = SubmitRequest,
    responses(
        (status = 200, body = SubmitResponse, description = "applied (one), or every result (a batch)"),
        (status = 400, body = ErrorBody, description = "invalid_request, malformed_json, empty_batch; or the one \
            transaction was refused (then a TxErrorBody with its result: wrong_chain, ttl_expired, malformed_body…)"),
        (status = 401, body = TxErrorBody, description = "bad_signature, bad_key, unknown_signer"),
        (status = 403, body = TxErrorBody, description = "wrong_role, key_revoked"),
        (status = 409, body = TxErrorBody, description = "conflicting_duplicate"),
        (status = 413, body = ErrorBody, description = "body_too_large, batch_too_large"),
        (status = 422, body = TxErrorBody, description = "rejected by a rule, recorded on chain"),
        (status = 503, body = ErrorBody, description = "busy, shutting_down; storage_unavailable (a TxErrorBody): \
            nothing was committed, send the same transaction again")))]
async fn submit(
    State(state): State<AppState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return JsonBody::<SubmitRequest>::rejection(rejection).into_response(),
    };
    // A follower sends the request on to the leader as it came, and relays the answer.
    match state.replicas.route(LEADER_WAIT).await {
        Route::Here => {}
        Route::Leader(_, leader) => return forward(&state, &leader, body).await,
        Route::NoLeader => return no_leader(&state.shared),
    }
    let request = match JsonBody::<SubmitRequest>::parse(&body) {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    match request {
        SubmitRequest::One(tx) => match submit_all(&state, vec![tx]).await {
            Ok(mut views) => single_response(views.remove(0)),
            Err(e) => e.into_response(),
        },
        SubmitRequest::Many(txs) if txs.is_empty() => {
            ApiError::bad_request("empty_batch", "the batch holds no transactions").into_response()
        }
        SubmitRequest::Many(txs) if txs.len() > SUBMIT_TXS_MAX => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("a batch holds at most {SUBMIT_TXS_MAX} transactions"),
        )
        .into_response(),
        SubmitRequest::Many(txs) => match submit_all(&state, txs).await {
            Ok(views) => Json(SubmitResponse::Many(views)).into_response(),
            Err(e) => e.into_response(),
        },
    }
}

/// How long a write waits for a leader (a replica that just started, or an election):
/// longer than a failover takes.
const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// Longest a forwarded write waits for the leader's answer: the leader answers once the
/// block is committed, or says it is not confirmed within its own time limit.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends a write on to the leader and relays its answer. If the leader does not answer,
/// the client hears 503 `unconfirmed`: the transactions may have committed there, and
/// the same ones sent again learn their outcome.
async fn forward(
    state: &AppState,
    leader: &crate::replica::ReplicaNode,
    body: axum::body::Bytes,
) -> Response {
    let url = format!("http://{}/v1/transactions", leader.api_addr);
    let sent = state
        .shared
        .forwarding
        .post(url)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .timeout(FORWARD_TIMEOUT)
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!("forwarding a write to the leader {}: {e}", leader.api_addr);
            let code = if e.is_connect() { TxCode::NoLeader } else { TxCode::Unconfirmed };
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code.name(),
                machi_api::explain(code, machi_api::Lang::En),
            )
            .into_response();
        }
    };
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match response.bytes().await {
        Ok(bytes) => {
            // Read your writes: answer once this replica has applied the block, so that
            // the client's next read here (a balance after a payment) shows it.
            if let Some(height) = committed_height(&bytes) {
                if !state.shared.applied_at_least(height, FORWARD_APPLY_WAIT).await {
                    tracing::warn!("block {height} committed by the leader is not applied here yet");
                }
            }
            (status, [(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, TxCode::Unconfirmed.name(), e.to_string())
            .into_response(),
    }
}

/// Longest a follower waits to apply the block holding a forwarded write before it
/// relays the answer anyway (a lagging replica: the client's reads may then lag too, and
/// `?min_height=` waits for them).
const FORWARD_APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The highest block height in a submit answer (one result or a batch), if any.
fn committed_height(body: &[u8]) -> Option<u64> {
    match serde_json::from_slice::<SubmitResponse>(body).ok()? {
        SubmitResponse::One(result) => result.height,
        SubmitResponse::Many(results) => results.iter().filter_map(|r| r.height).max(),
    }
}

/// No leader within the wait (an election that did not finish, no majority), or this
/// replica halted.
fn no_leader(shared: &crate::shared::Shared) -> Response {
    let code =
        if shared.halted.lock().expect("halted").is_some() { TxCode::Halted } else { TxCode::NoLeader };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code.name(), machi_api::explain(code, machi_api::Lang::En))
        .into_response()
}

/// Decodes, answers replays from the chain, verifies signatures in one batch off the
/// async threads, and hands the rest to the producer. Results line up with `txs`.
pub(crate) async fn submit_all(state: &AppState, txs: Vec<SignedTx>) -> Result<Vec<TxResultView>, ApiError> {
    let chain_id = state.shared.chain_id.clone();
    let mut results: Vec<Option<TxResultView>> = vec![None; txs.len()];
    let mut decoded: Vec<(usize, VerifiedTx)> = Vec::with_capacity(txs.len());
    for (i, signed) in txs.into_iter().enumerate() {
        let id = signed.id(&chain_id);
        match decode(&chain_id, signed) {
            Err(e) => results[i] = Some(TxResultView::refused(id, e.into(), e.to_string())),
            Ok(tx) if tx.body.chain_id != chain_id => {
                let message = format!(
                    "this node serves chain {chain_id:?}, the transaction is for {:?}",
                    tx.body.chain_id
                );
                results[i] = Some(TxResultView::refused(id, TxCode::WrongChain, message));
            }
            Ok(tx) => decoded.push((i, tx)),
        }
    }
    let mut fresh: Vec<(usize, VerifiedTx)> = Vec::with_capacity(decoded.len());
    if !decoded.is_empty() {
        // One short read of the chain for the whole request: signers it does not know are
        // refused before any signature is checked, and replays are answered.
        let chain = state.shared.chain.read().await;
        let mut named = std::collections::HashSet::new();
        for (i, tx) in decoded {
            let signer = tx.signed.signer;
            if !chain.state.accounts.contains_key(&signer) && !named.contains(&signer) {
                state.shared.metrics.unknown_signers.fetch_add(1, Ordering::Relaxed);
                results[i] = Some(TxResultView::from_refusal(tx.id, machi_ledger::Refusal::UnknownSigner));
                continue;
            }
            match replayed(&chain, &tx) {
                Some(view) => results[i] = Some(view),
                None => {
                    // An account registered earlier in the same request may sign after it.
                    named.extend(tx.body.action.counterparties());
                    fresh.push((i, tx));
                }
            }
        }
    }
    let (indices, txs): (Vec<usize>, Vec<VerifiedTx>) = fresh.into_iter().unzip();
    let verified = state.verifier.verify(txs).await.map_err(|e| match e {
        crate::verify::VerifyError::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            TxCode::Busy.name(),
            "the node is at capacity; try again shortly",
        ),
        crate::verify::VerifyError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            TxCode::ShuttingDown.name(),
            "the node is stopping",
        ),
    })?;
    let mut accepted = Vec::with_capacity(indices.len());
    let mut accepted_at = Vec::with_capacity(indices.len());
    for ((i, tx), check) in indices.into_iter().zip(verified.0).zip(verified.1) {
        match check {
            Ok(()) => {
                accepted_at.push(i);
                accepted.push(tx);
            }
            Err(e) => results[i] = Some(TxResultView::refused(tx.id, e.into(), e.to_string())),
        }
    }
    if !accepted.is_empty() {
        let (reply, answer) = oneshot::channel();
        match state.submit.try_send(Submission { txs: accepted, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                state.shared.metrics.submissions_busy.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TxCode::Busy.name(),
                    "the node is at capacity; try again shortly",
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TxCode::ShuttingDown.name(),
                    "the node is stopping",
                ));
            }
        }
        let views = answer.await.map_err(|e| ApiError::internal("block producer", e))?;
        for (i, view) in accepted_at.into_iter().zip(views) {
            results[i] = Some(view);
        }
    }
    Ok(results.into_iter().map(|r| r.expect("every transaction has a result")).collect())
}

/// A transaction already on the chain gets its first result; the same id with another
/// signature is a conflict.
fn replayed(chain: &crate::chain::Chain, tx: &VerifiedTx) -> Option<TxResultView> {
    let record = *chain.state.txs.get(&tx.id)?;
    let block = chain.block(record.height).ok()?;
    let stored = block.txs.get(record.index as usize)?;
    if stored.signature != tx.signed.signature {
        let message = "a transaction with this id is on the chain with another signature".to_string();
        return Some(TxResultView::refused(tx.id, TxCode::ConflictingDuplicate, message));
    }
    Some(TxResultView::committed(tx.id, record.outcome, record.height, chain.hashes[record.height as usize]))
}

/// A committed transaction: its result, its block and place in it, its body. Read by its
/// signer, by any account it concerns (those its events name) and the everything scope;
/// to anyone else it is `not_found`, the very answer a transaction not on the chain gets.
#[utoipa::path(get, path = "/v1/transactions/{id}", tag = "transactions",
    params(("id" = String, Path, description = "the transaction id, 64 hex digits")),
    security((), ("read_session" = [])),
    responses((status = 200, body = TxView), (status = 400, body = ErrorBody, description = "bad_id"),
        (status = 401, body = ErrorBody, description = "read_session_invalid, read_session_expired"),
        (status = 403, body = ErrorBody, description = "key_replaced, account_frozen: the session's key"),
        (status = 404, body = ErrorBody, description = "not_found: not on the chain (yet), or not the reader's")))]
async fn status(
    State(state): State<AppState>,
    Extension(reader): Extension<Reader>,
    Path(id): Path<String>,
) -> Result<Json<TxView>, ApiError> {
    let id: TxId = parse_hex32(&id, "transaction id")?;
    let chain = state.shared.chain.read().await;
    let record = *chain.state.txs.get(&id).ok_or_else(|| ApiError::not_found("transaction"))?;
    let block = chain.block(record.height).map_err(|e| ApiError::internal("reading a block", e))?;
    let tx = &block.txs[record.index as usize];
    let concerned = match TxBody::decode(&tx.body) {
        Ok(body) => crate::chain::involved(&chain.state, tx.signer, &body),
        Err(_) => vec![tx.signer],
    };
    if !reader.may_read_any(&chain.state, &concerned) {
        return Err(ApiError::not_found("transaction"));
    }
    Ok(Json(TxView {
        result: TxResultView::committed(id, record.outcome, record.height, block.hash()),
        index: record.index,
        timestamp_ms: block.header.timestamp_ms,
        signer: tx.signer,
        signature: hex::encode(tx.signature),
        body_hex: hex::encode(&tx.body),
        body: TxBody::decode(&tx.body).ok(),
    }))
}
