//! machi's reliability harness: a reference model of the money rules (`model`) and a
//! seeded simulation that drives the real ledger and the model side by side (`sim`).
//! Integration tests add storage fault injection, kill -9 cycles of the real node, and
//! hostile input against a running node.

mod model;
mod sim;

pub use sim::{run, Failure, Stats};

/// Cases and steps per case: bounded for CI, more with `MACHI_PROPTEST_CASES` and
/// `MACHI_PROPTEST_STEPS`.
pub fn cases() -> (u64, usize) {
    let env =
        |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    (env("MACHI_PROPTEST_CASES", 48), env("MACHI_PROPTEST_STEPS", 300) as usize)
}
