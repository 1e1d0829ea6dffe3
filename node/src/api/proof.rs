//! `GET /v1/transactions/{id}/proof`: a committed transaction's block header and the RFC
//! 6962 inclusion proofs of its id and its outcome record (docs/FORMAT.md, "Checking a
//! receipt"). The block is read from the log after the chain's lock is released; only its
//! transaction ids and outcome records are hashed, nothing is replayed.

use axum::extract::{Path, State};
use axum::routing::{get, MethodRouter};
use axum::Json;
use machi_api::{BlockHeaderView, ErrorBody, OutcomeRecordView, TxProof};
use machi_ledger::{inclusion_proof, outcome_record, Block, TxId};

use super::{parse_hex32, Access, ApiError, AppState};
use crate::chain::TxLoc;

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![("/v1/transactions/{id}/proof", Access::Public, get(proof))]
}

/// The proof that a committed transaction, with its outcome, is in its block: the block
/// header (every field the block hash covers) and the hash, the transaction's index, the
/// trees' size, and the audit paths of the transaction id and of its outcome record.
#[utoipa::path(get, path = "/v1/transactions/{id}/proof", tag = "transactions",
    params(("id" = String, Path, description = "the transaction id, 64 hex digits")),
    responses((status = 200, body = TxProof), (status = 400, body = ErrorBody, description = "bad_id"),
        (status = 404, body = ErrorBody, description = "not_found: not on the chain (yet)")))]
async fn proof(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TxProof>, ApiError> {
    let id: TxId = parse_hex32(&id, "transaction id")?;
    let (loc, read) = {
        let chain = state.shared.chain.read().await;
        let record = *chain.state.txs.get(&id).ok_or_else(|| ApiError::not_found("transaction"))?;
        let loc = TxLoc { height: record.height, index: record.index };
        (loc, chain.block_read(loc))
    };
    let shared = state.shared.clone();
    let proof = tokio::task::spawn_blocking(move || {
        let mut blocks = read.read(|| (shared.reopen_log)())?;
        let (_, block) = blocks.pop().ok_or_else(|| std::io::Error::other("the block is not in the log"))?;
        prove(&block, id, loc.index as usize)
    })
    .await
    .map_err(|e| ApiError::internal("making a proof", e))?
    .map_err(|e| ApiError::internal("making a proof", e))?;
    Ok(Json(proof))
}

/// The proof of the transaction at `index` of `block`, which must be `id`.
fn prove(block: &Block, id: TxId, index: usize) -> std::io::Result<TxProof> {
    let chain_id = &block.header.chain_id;
    let ids: Vec<[u8; 32]> = block.txs.iter().map(|tx| tx.id(chain_id).0).collect();
    let outcome =
        *block.outcomes.get(index).ok_or_else(|| std::io::Error::other("no outcome at the index"))?;
    if ids.get(index) != Some(&id.0) {
        return Err(std::io::Error::other(format!(
            "transaction {index} of block {} is not {id}",
            block.header.height
        )));
    }
    let records: Vec<[u8; 32]> = ids
        .iter()
        .zip(&block.outcomes)
        .map(|(tx, o)| outcome_record(&TxId(*tx), o.status(), o.reason_code()).0)
        .collect();
    Ok(TxProof {
        tx_id: id,
        header: BlockHeaderView::new(&block.header),
        block_hash: block.hash(),
        signature: hex::encode(block.signature),
        index: index as u32,
        tree_size: block.header.tx_count,
        tx_path: inclusion_proof(&ids, index),
        outcome: OutcomeRecordView::new(outcome),
        outcome_path: inclusion_proof(&records, index),
    })
}
