//! `BlockView`, the export's line per block: it turns back into the very block it shows,
//! and a line whose fields are not what they claim is refused.
//!
//! Fixed seed; `MACHI_PROPTEST_CASES` runs more cases. A failing case's seed is saved in
//! `api/tests/regressions/export.txt` and tried first on every later run.

use machi_api::BlockView;
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

use crate::strategies::block;

fn config() -> ProptestConfig {
    let cases = std::env::var("MACHI_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512);
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x6d61_6368_692d_6578),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/regressions/export.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// An exported block (one JSON line) turns back into the same block: same bytes,
    /// same hash, same transaction ids.
    #[test]
    fn exported_blocks_turn_back_into_the_same_block(block in block()) {
        let line = serde_json::to_string(&BlockView::new(&block)).unwrap();
        prop_assert!(!line.contains('\n'), "one line per block");
        let view: BlockView = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(view.hash, block.hash());
        prop_assert_eq!(view.txs.iter().map(|t| t.id).collect::<Vec<_>>(), block.tx_ids());
        let back = view.to_block().map_err(TestCaseError::fail)?;
        prop_assert_eq!(back.encode(), block.encode());
        prop_assert_eq!(back, block);
    }
}

/// A chain id longer than any chain may have, in an export's block, is refused as
/// malformed input, never hashed (its length would not fit the u16 that the hashes
/// carry).
#[test]
fn overlong_chain_ids_are_refused_in_exported_blocks() {
    for chain_id in ["x".repeat(70_000), "y".repeat(65), String::new(), "bad chain".into()] {
        let view = serde_json::json!({
            "chain_id": chain_id,
            "height": 1,
            "hash": "00".repeat(32),
            "prev_hash": "00".repeat(32),
            "timestamp_ms": 0,
            "tx_root": "00".repeat(32),
            "outcome_root": "00".repeat(32),
            "producer": "00".repeat(32),
            "signature": "00".repeat(64),
            "txs": [{
                "id": "00".repeat(32), "signer": "00".repeat(32), "signature": "00".repeat(64),
                "body_hex": "00", "status": 0, "reason_code": 0, "reason": null, "body": null
            }],
        });
        let view: BlockView = serde_json::from_value(view).expect("the JSON shape is right");
        let refused = view.to_block().expect_err("refused");
        assert!(refused.contains("chain id"), "{refused}");
    }
}
