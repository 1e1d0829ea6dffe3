//! Every vector in `tests/data/format-v1.json` (from an independent implementation of
//! the formats of docs/FORMAT.md) must be reproduced exactly.

use ed25519_dalek::{Signer, SigningKey};
use machi_ledger::{merkle_root, outcome_record, tx_id, AccountId, BlockHeader, Hash32, TxId};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../data/format-v1.json")).expect("vectors parse")
}

fn h32(v: &Value) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str().expect("hex string"), &mut out).expect("32 bytes of hex");
    out
}

fn key_for(v: &Value, public_hex: &str) -> SigningKey {
    let key =
        v["keys"].as_array().unwrap().iter().find(|k| k["public_hex"] == public_hex).expect("key in vectors");
    SigningKey::from_bytes(&h32(&key["seed_hex"]))
}

#[test]
fn keys_derive_from_seeds() {
    let v = vectors();
    for key in v["keys"].as_array().unwrap() {
        let signing = SigningKey::from_bytes(&h32(&key["seed_hex"]));
        assert_eq!(hex::encode(signing.verifying_key().to_bytes()), key["public_hex"]);
    }
}

#[test]
fn tx_ids_and_signatures() {
    let v = vectors();
    let chain_id = v["chain_id"].as_str().unwrap();
    let txs = v["transactions"].as_array().unwrap();
    assert!(!txs.is_empty());
    for tx in txs {
        let signer = AccountId(h32(&tx["signer_public_hex"]));
        let body = hex::decode(tx["body_hex"].as_str().unwrap()).unwrap();
        let id = tx_id(chain_id, &signer, &body);
        assert_eq!(id.to_hex(), tx["tx_id_hex"], "tx id");
        let key = key_for(&v, tx["signer_public_hex"].as_str().unwrap());
        assert_eq!(hex::encode(key.sign(&id.0).to_bytes()), tx["signature_hex"], "signature");
    }
}

#[test]
fn merkle_roots_for_0_to_7_leaves() {
    let v = vectors();
    let cases = v["merkle"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let leaves: Vec<[u8; 32]> = case["leaves_hex"].as_array().unwrap().iter().map(h32).collect();
        assert_eq!(merkle_root(&leaves).to_hex(), case["root_hex"], "{} leaves", leaves.len());
    }
}

#[test]
fn outcome_records() {
    let v = vectors();
    for case in v["outcomes"].as_array().unwrap() {
        let id = TxId(h32(&case["tx_id_hex"]));
        let status = case["status"].as_u64().unwrap() as u8;
        let code = case["reason_code"].as_u64().unwrap() as u16;
        assert_eq!(outcome_record(&id, status, code).to_hex(), case["outcome_hex"]);
    }
}

#[test]
fn block_headers_hashes_and_signatures() {
    let v = vectors();
    let chain_id = v["chain_id"].as_str().unwrap();
    for case in v["blocks"].as_array().unwrap() {
        let header = BlockHeader {
            chain_id: chain_id.to_string(),
            height: case["height"].as_u64().unwrap(),
            prev_hash: Hash32(h32(&case["prev_hash_hex"])),
            timestamp_ms: case["timestamp_ms"].as_u64().unwrap(),
            tx_count: case["tx_count"].as_u64().unwrap() as u32,
            tx_root: Hash32(h32(&case["tx_root_hex"])),
            outcome_root: Hash32(h32(&case["outcome_root_hex"])),
            producer: AccountId(h32(&case["producer_public_hex"])),
        };
        assert_eq!(hex::encode(header.bytes()), case["header_bytes_hex"]);
        assert_eq!(header.hash().to_hex(), case["block_hash_hex"]);
        let producer = key_for(&v, case["producer_public_hex"].as_str().unwrap());
        assert_eq!(hex::encode(producer.sign(&header.hash().0).to_bytes()), case["signature_hex"]);
    }
}

/// The blocks' roots are the Merkle roots of the vector transactions and outcomes, in order.
#[test]
fn block_roots_come_from_the_vector_transactions() {
    let v = vectors();
    let ids: Vec<[u8; 32]> =
        v["transactions"].as_array().unwrap().iter().map(|t| h32(&t["tx_id_hex"])).collect();
    let outcomes: Vec<[u8; 32]> =
        v["outcomes"].as_array().unwrap().iter().map(|o| h32(&o["outcome_hex"])).collect();
    for case in v["blocks"].as_array().unwrap() {
        let n = case["tx_count"].as_u64().unwrap() as usize;
        assert_eq!(merkle_root(&ids[..n]).to_hex(), case["tx_root_hex"]);
        assert_eq!(merkle_root(&outcomes[..n]).to_hex(), case["outcome_root_hex"]);
    }
}
