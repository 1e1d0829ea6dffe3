//! machi's reliability harness: a reference model of the money rules (`model`) and a
//! state-machine property test that drives the real ledger and the model side by side
//! (`machine`, run by `tests/it/model_based.rs`). Integration tests add storage fault
//! injection, kill -9 cycles of the real node, and hostile input against a running node.

pub mod machine;
pub mod model;

/// The model test's cases and transactions per case: bounded for CI, more with
/// `MACHI_PROPTEST_CASES` and `MACHI_PROPTEST_STEPS`.
pub fn cases() -> (u32, usize) {
    let env =
        |name: &str, default: u32| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    (env("MACHI_PROPTEST_CASES", CASES_CI), env("MACHI_PROPTEST_STEPS", STEPS_CI) as usize)
}

/// The model test's size in CI.
pub const CASES_CI: u32 = 192;
pub const STEPS_CI: u32 = 300;

/// The seed of the model test's random generator: fixed, so every run tries the same
/// sequences; `MACHI_SEED` picks another for a long run that explores new ones.
pub fn seed() -> u64 {
    std::env::var("MACHI_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(SEED_CI)
}

/// "machi-model".
pub const SEED_CI: u64 = 0x6d61_6368_692d_6d6f;
