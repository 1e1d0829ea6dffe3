//! Any bytes as the node's JSON: submissions and exported blocks parse or are refused,
//! never panic; whatever parses goes through decoding and signature checks, and the batch
//! gives every signature the verdict a single check gives it (one acceptance rule).
#![no_main]

use libfuzzer_sys::fuzz_target;
use machi_api::{BlockView, SubmitRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<SubmitRequest>(data) {
        let txs = match request {
            SubmitRequest::One(tx) => vec![tx],
            SubmitRequest::Many(txs) => txs,
        };
        let decoded: Vec<_> = txs.into_iter().filter_map(|tx| machi_ledger::decode("fuzz-town", tx).ok()).collect();
        let results = machi_ledger::verify_batch(&decoded);
        assert_eq!(results.len(), decoded.len());
        for (tx, batched) in decoded.iter().zip(&results) {
            assert_eq!(*batched, machi_ledger::verify_one(tx), "batch and single disagree on {}", tx.id);
        }
    }
    if let Ok(view) = serde_json::from_slice::<BlockView>(data) {
        let _ = view.to_block();
    }
});
