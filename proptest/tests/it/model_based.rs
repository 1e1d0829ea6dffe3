//! Random transaction sequences against the reference model. A failure prints the seed;
//! `MACHI_SEED=<seed> cargo test -p machi-proptest model` replays exactly that case.

#[test]
fn ledger_agrees_with_the_model() {
    let (cases, steps) = machi_proptest::cases();
    let seeds: Vec<u64> = match std::env::var("MACHI_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let base: u64 = rand::random();
            (0..cases).map(|i| base.wrapping_add(i)).collect()
        }
    };
    let mut total = machi_proptest::Stats::default();
    for seed in seeds {
        match machi_proptest::run(seed, steps) {
            Ok(stats) => {
                total.steps += stats.steps;
                total.applied += stats.applied;
                total.rejected += stats.rejected;
                total.refused += stats.refused;
                for (reason, n) in stats.reasons {
                    *total.reasons.entry(reason).or_default() += n;
                }
            }
            Err(f) => panic!(
                "case failed at step {}: {}\nreproduce with: MACHI_SEED={} cargo test -p machi-proptest model",
                f.step, f.message, f.seed
            ),
        }
    }
    // The generator must reach the interesting paths, or the test proves little.
    for reason in
        ["sold_out", "over_cap", "insufficient_balance", "refund_exceeds_payment", "wrong_role", "duplicate"]
    {
        assert!(
            total.reasons.contains_key(reason) || std::env::var("MACHI_SEED").is_ok(),
            "no case reached {reason}: {:?}",
            total.reasons
        );
    }
    assert!(total.applied > total.steps / 10, "too few transactions applied: {total:?}");
    eprintln!("model-based: {total:?}");
}
