//! `GET /v1/transactions/{id}/proof` over real HTTP on a real block log: every proof
//! checks out against the block hash `GET /v1/blocks/{h}` gives, applied and rejected
//! outcomes alike; a proof with anything changed does not; an unknown id is 404.

use machi_api::{BlockView, TxProof, TxStatus};
use machi_ledger::{outcome_record, verify_inclusion, Action, Hash32, SignedTx};

use crate::harness::{id, new_key, TestNode};

/// Transactions in one block of this size: proofs several hashes long.
const BLOCK_TXS: usize = 37;

async fn proof(node: &TestNode, tx: &str) -> reqwest::Response {
    reqwest::get(format!("{}/v1/transactions/{tx}/proof", node.url)).await.expect("answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_checks_out_against_the_block_hash_and_a_changed_one_does_not() {
    let node = TestNode::start().await;
    // One block of operators, the last one registered twice: its second registration is
    // recorded as rejected.
    let keys: Vec<_> = (0..BLOCK_TXS - 1).map(|_| new_key()).collect();
    let mut txs: Vec<SignedTx> = keys
        .iter()
        .map(|k| node.sign(&node.town, Action::RegisterOperator { operator: id(k), name: "窓口".into() }))
        .collect();
    let again = Action::RegisterOperator { operator: id(&keys[BLOCK_TXS - 2]), name: "窓口".into() };
    txs.push(node.sign(&node.town, again));
    let results = node.client.submit_batch(&txs).await.expect("answered");
    let height = results[0].height.expect("committed");
    assert!(results.iter().all(|r| r.height == Some(height)), "one block: {results:?}");
    assert_eq!(results[BLOCK_TXS - 1].status, TxStatus::Rejected);

    let block: BlockView = node.client.block(height).await.unwrap();
    assert_eq!(block.txs.len(), BLOCK_TXS);
    for (index, result) in results.iter().enumerate() {
        let answer = proof(&node, &result.tx_id.to_hex()).await;
        assert_eq!(answer.status(), 200);
        let proof: TxProof = answer.json().await.expect("a proof");
        // Checked here with the ledger's functions alone, against the block as served.
        let header = proof.header.to_header().expect("a header");
        assert_eq!(header.hash(), block.hash, "the header hashes to the block's hash");
        assert_eq!(proof.block_hash, block.hash);
        assert_eq!((proof.index as usize, proof.tree_size as usize), (index, BLOCK_TXS));
        assert_eq!(header.tx_count as usize, BLOCK_TXS);
        let (i, n) = (index as u64, BLOCK_TXS as u64);
        assert!(verify_inclusion(&result.tx_id.0, i, n, &proof.tx_path, &header.tx_root));
        let record = outcome_record(&result.tx_id, proof.outcome.status, proof.outcome.reason_code);
        assert!(verify_inclusion(&record.0, i, n, &proof.outcome_path, &header.outcome_root));
        assert_eq!(proof.outcome.status, block.txs[index].status);
        assert_eq!(proof.outcome.reason_code, block.txs[index].reason_code);
        // And as the wallet checks it.
        let check = proof.check(&result.tx_id, &block.hash);
        assert!(check.header_matches && check.tx_included && check.outcome_included, "{check:?}");
        assert_eq!(check.proven(), result.status == TxStatus::Applied, "{index}: {check:?}");
    }

    // The rejected one: its proof holds, and says rejected; claiming it applied fails.
    let rejected = &results[BLOCK_TXS - 1];
    let honest: TxProof = proof(&node, &rejected.tx_id.to_hex()).await.json().await.unwrap();
    assert_eq!((honest.outcome.status, honest.outcome.reason_code), (1, rejected.reason_code));
    let mut claimed = honest.clone();
    claimed.outcome.status = 0;
    claimed.outcome.reason_code = 0;
    let check = claimed.check(&rejected.tx_id, &block.hash);
    assert!(!check.outcome_included && !check.proven(), "{check:?}");

    // Any change to an applied one's proof, or another block hash, is not proven.
    let applied = &results[5];
    let good: TxProof = proof(&node, &applied.tx_id.to_hex()).await.json().await.unwrap();
    assert!(good.check(&applied.tx_id, &block.hash).proven());
    let mut tampered: Vec<(&str, TxProof)> = Vec::new();
    let mut p = good.clone();
    p.tx_path[1].0[7] ^= 0x10;
    tampered.push(("a bit of the tx path", p));
    let mut p = good.clone();
    p.outcome_path[0].0[31] ^= 0x01;
    tampered.push(("a bit of the outcome path", p));
    let mut p = good.clone();
    p.index += 1;
    tampered.push(("the index", p));
    let mut p = good.clone();
    p.header.timestamp_ms += 1;
    tampered.push(("the header's time", p));
    let mut p = good.clone();
    p.header.tx_count -= 1;
    p.tree_size -= 1;
    tampered.push(("the tree size", p));
    let mut p = good.clone();
    p.header.tx_root = p.header.outcome_root;
    tampered.push(("the tx root", p));
    for (what, p) in &tampered {
        assert!(!p.check(&applied.tx_id, &block.hash).proven(), "changed {what}, still proven");
    }
    assert!(!good.check(&results[6].tx_id, &block.hash).proven(), "another transaction's id");
    let parent: BlockView = node.client.block(height - 1).await.unwrap();
    assert!(!good.check(&applied.tx_id, &parent.hash).proven(), "another block's hash");

    // The genesis block's one transaction: an empty path.
    let genesis: BlockView = node.client.block(0).await.unwrap();
    let first: TxProof = node.client.proof(&genesis.txs[0].id).await.expect("a proof");
    assert!(first.tx_path.is_empty() && first.outcome_path.is_empty());
    assert!(first.check(&genesis.txs[0].id, &genesis.hash).proven());
    assert_eq!(first.block_hash, genesis.hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_is_not_found_and_a_malformed_one_a_bad_id() {
    let node = TestNode::start().await;
    let unknown = Hash32([7; 32]).to_hex();
    for path in [format!("/v1/transactions/{unknown}"), format!("/v1/transactions/{unknown}/proof")] {
        let answer = reqwest::get(format!("{}{path}", node.url)).await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}: the same code as the look-up");
    }
    let answer = proof(&node, "xyz").await;
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_id");
    let missing = node.client.proof(&machi_ledger::TxId([7; 32])).await.expect_err("not found");
    assert_eq!(missing.code(), "not_found");
}
