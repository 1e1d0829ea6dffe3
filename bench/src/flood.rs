//! `flood`: goodput under a flood of bad signatures. Residents pay shops (single
//! requests) alone, then again while other clients send payments whose signatures are
//! bad, half naming registered residents as signers and half from keys the chain does not
//! know. The outcome is the good payments' during the flood; the notes give the rate
//! without it and what the flood got.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use machi_api::TxResultView;
use machi_client::Client;
use machi_ledger::SignedTx;

use crate::load::{drive, Common, Load, Outcome};
use crate::payments::payment;
use crate::town::{self, sign_all, Town};

/// Flags of `flood`.
#[derive(clap::Args)]
pub(crate) struct FloodArgs {
    #[command(flatten)]
    common: Common,
    /// Connections sending good payments.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Connections sending bad signatures.
    #[arg(long, default_value_t = 128)]
    bad_concurrency: usize,
    /// Good payments signed in advance (half for each phase).
    #[arg(long, default_value_t = 200_000)]
    pool: usize,
}

/// Distinct payments with bad signatures, sent over and over.
const BAD_TXS: usize = 2_000;
/// Keys the chain does not know, signing half the bad payments.
const STRANGERS: usize = 64;

pub(crate) async fn run(args: FloodArgs) -> anyhow::Result<()> {
    let limits = crate::limits::measure().await?;
    let common = &args.common;
    let town_key = town::read_key(&common.town_key)?;
    let client = town::town_client(&common.node, &town_key);
    let town = town::setup(&client, town_key, &common.paying_town()).await?;
    let good = Load::single(args.concurrency, Duration::from_secs(common.duration));
    let (outcome, results) = flood(&client, &town, &good, args.bad_concurrency, args.pool).await;
    crate::load::report(common, &limits, &outcome, &results)
}

async fn flood(
    client: &Client,
    town: &Town,
    good: &Load,
    bad_concurrency: usize,
    pool: usize,
) -> (Outcome, Vec<TxResultView>) {
    let mut quiet = sign_all(&town.chain_id, (0..pool).map(|i| payment(town, i)).collect());
    let loud = quiet.split_off(pool / 2);
    let (alone, _) = drive(client, quiet, good, "payments alone").await;

    let bad = Arc::new(bad_payments(town));
    let deadline = Instant::now() + good.duration;
    let reasons = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let mut flooders = tokio::task::JoinSet::new();
    for worker in 0..bad_concurrency {
        let (client, bad, reasons) = (client.clone(), bad.clone(), reasons.clone());
        flooders.spawn(send_bad(client, bad, reasons, worker, bad_concurrency, deadline));
    }
    let (mut outcome, results) = drive(client, loud, good, "flood").await;
    while flooders.join_next().await.is_some() {}
    let reasons = Arc::try_unwrap(reasons).expect("flooders done").into_inner().expect("poisoned");
    let bad_total: u64 = reasons.values().sum();
    outcome.notes.push(format!(
        "good payments alone: {:.0} tx/s (p99 {:.1} ms); during the flood {:.0} tx/s = {:.2} × alone",
        alone.committed_tx_per_s,
        alone.p99_ms,
        outcome.committed_tx_per_s,
        outcome.committed_tx_per_s / alone.committed_tx_per_s
    ));
    outcome.notes.push(format!(
        "bad requests answered: {bad_total} ({:.0}/s) from {bad_concurrency} clients; {}",
        bad_total as f64 / outcome.elapsed_s,
        reasons.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ")
    ));
    (outcome, results)
}

/// Payments with a flipped signature bit, half signed by registered residents and half by
/// strangers. Refused ones are never stored, so each is checked afresh every time it is
/// sent.
fn bad_payments(town: &Town) -> Vec<SignedTx> {
    let strangers: Vec<_> =
        (0..STRANGERS).map(|_| machi_ledger::SigningKey::generate(&mut rand::rngs::OsRng)).collect();
    let work = (0..BAD_TXS)
        .map(|i| {
            let (resident, action) = payment(town, i);
            let signer = if i % 2 == 0 { resident } else { strangers[i % strangers.len()].clone() };
            (signer, action)
        })
        .collect();
    let mut bad = sign_all(&town.chain_id, work);
    for tx in &mut bad {
        tx.signature[7] ^= 0x10;
    }
    bad
}

/// One flooding client: sends bad payment `worker`, `worker + stride`, ... until the
/// deadline, counting the answers by reason.
async fn send_bad(
    client: Client,
    bad: Arc<Vec<SignedTx>>,
    reasons: Arc<Mutex<HashMap<String, u64>>>,
    worker: usize,
    stride: usize,
    deadline: Instant,
) {
    let mut i = worker;
    while Instant::now() < deadline {
        let reason = match client.submit(&bad[i % bad.len()]).await {
            Ok(r) => r.reason.map(|code| code.to_string()).unwrap_or_else(|| format!("{:?}", r.status)),
            Err(e) => e.to_string().split(':').next().unwrap_or("error").to_string(),
        };
        *reasons.lock().expect("poisoned").entry(reason).or_default() += 1;
        i += stride;
    }
}
