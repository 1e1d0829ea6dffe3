//! Any bytes as a transaction body: decoding never panics, and what decodes is in the one
//! canonical encoding (re-encoding gives the same bytes), so a body has one id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use machi_ledger::{Block, TxBody};

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = TxBody::decode(data) {
        assert_eq!(body.encode(), data);
    }
    // Block records come from disk: a damaged one must be refused, never crash.
    if let Some(block) = Block::decode(data) {
        let _ = block.hash();
        let _ = block.tx_ids();
    }
});
