//! machi-api's one integration-test binary: exported blocks (the JSON lines of
//! docs/FORMAT.md) turn back into the same blocks, and nothing else does.

mod export;
// The ledger's strategies for any body, transaction and block.
#[path = "../../../ledger/tests/it/strategies.rs"]
mod strategies;
