//! The ledger against the reference model, as a proptest state machine
//! (`machi_proptest::machine`): random sequences of every transaction kind, compared step
//! by step, replayed and produced again at the end.
//!
//! Deterministic: the generator's seed is fixed (`machi_proptest::SEED_CI`; `MACHI_SEED`
//! picks another), so every run tries the same sequences. A failure is shrunk to a short
//! sequence, printed one step a line, and its seed appended to
//! `proptest/tests/regressions/model_based.txt`; commit that file, and every later run
//! tries the saved seeds first. Longer runs: `MACHI_PROPTEST_CASES` (sequences, 192 in CI)
//! and `MACHI_PROPTEST_STEPS` (transactions per sequence, 300).

use std::time::Instant;

use machi_proptest::machine::{reachable, take_stats, LedgerAgainstModel, Reference};
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestError, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

/// Where failing seeds are kept: beside this file, whatever directory the test runs in.
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/regressions/model_based.txt");

/// Shrinking runs the whole sequence once per try; this bounds a failure's report time.
const SHRINK_ITERS_MAX: u32 = 4_096;

#[test]
fn ledger_agrees_with_the_model() {
    let (cases, steps) = machi_proptest::cases();
    let seed = machi_proptest::seed();
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        max_shrink_iters: SHRINK_ITERS_MAX,
        ..Config::default()
    };
    let started = Instant::now();
    let mut runner = TestRunner::new(config.clone());
    let result = runner.run(&Reference::sequential_strategy(steps), |(town, transitions, seen)| {
        LedgerAgainstModel::test_sequential(config.clone(), town, transitions, seen);
        Ok(())
    });
    let elapsed = started.elapsed();
    let stats = take_stats();
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (town, transitions, _))) => {
            let lines: Vec<String> =
                transitions.iter().enumerate().map(|(i, step)| format!("  {:>3}. {step:?}", i + 1)).collect();
            panic!(
                "{why}\nshrunk to {} steps from {town:?}:\n{}\nseed saved in {REGRESSIONS}",
                transitions.len(),
                lines.join("\n")
            );
        }
        Err(TestError::Abort(why)) => panic!("the test could not run: {why}"),
    }
    eprintln!(
        "model-based: seed {seed}, {} cases × {steps} steps, {:.1} s: {stats:?}",
        stats.cases,
        elapsed.as_secs_f64()
    );
    // The generator must reach the interesting paths, or the test proves little: every
    // reason and refusal a chain with a genesis can give, checked at CI's size or more.
    let full = cases >= machi_proptest::CASES_CI && steps >= machi_proptest::STEPS_CI as usize;
    if full {
        let missed: Vec<&str> = reachable().into_iter().filter(|r| !stats.reasons.contains_key(r)).collect();
        assert!(missed.is_empty(), "no case reached {missed:?}: {stats:?}");
    }
    assert!(stats.applied > stats.transactions / 10, "too few transactions applied: {stats:?}");
}
