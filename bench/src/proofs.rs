//! `proofs`: receipts checked by many people at once. Fills blocks of `--block-txs`
//! transactions (the town registering operators, one full batch per block), then asks
//! for the inclusion proofs of random transactions of them
//! (`GET /v1/transactions/{id}/proof`, public: asked anonymously) from `--concurrency`
//! connections, and for comparison the plain look-ups (`GET /v1/transactions/{id}`, read
//! as the town, whose transactions they are). Every proof is checked against its block
//! hash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use machi_api::TxStatus;
use machi_client::Client;
use machi_ledger::{Action, TxId};
use rand::Rng;

use crate::stats::{median, percentile};
use crate::town::{id, keys, read_key, sign_all};

/// Flags of `proofs`.
#[derive(clap::Args)]
pub(crate) struct ProofsArgs {
    /// The node (or a chain's replicas separated by commas).
    #[arg(long, default_value = "http://127.0.0.1:7600", value_parser = machi_client::node_list)]
    node: String,
    /// The town's key file (it registers the operators that fill the blocks).
    #[arg(long)]
    town_key: std::path::PathBuf,
    /// Blocks to fill.
    #[arg(long, default_value_t = 20)]
    blocks: usize,
    /// Transactions per block (at most a batch, 1,024).
    #[arg(long, default_value_t = 1_024)]
    block_txs: usize,
    /// Connections asking at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds each phase runs.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

pub(crate) async fn run(args: ProofsArgs) -> anyhow::Result<()> {
    if args.block_txs == 0 || args.block_txs > machi_api::SUBMIT_TXS_MAX {
        bail!("--block-txs is 1 to {}", machi_api::SUBMIT_TXS_MAX);
    }
    let town = read_key(&args.town_key)?;
    // Blocks and plain look-ups are read as the town (the transactions are its own);
    // proofs anonymously, as anyone holding a receipt asks for one.
    let client = crate::town::town_client(&args.node, &town);
    let public = Client::new(&args.node);
    let chain_id = client.head().await?.chain_id;
    let mut ids: Vec<TxId> = Vec::with_capacity(args.blocks * args.block_txs);
    let mut block_sizes = Vec::new();
    for _ in 0..args.blocks {
        let work = keys(args.block_txs)
            .iter()
            .map(|k| (town.clone(), Action::RegisterOperator { operator: id(k), name: "窓口".into() }))
            .collect();
        let txs = sign_all(&chain_id, work);
        let results = client.submit_batch(&txs).await?;
        if let Some(bad) = results.iter().find(|r| r.status != TxStatus::Applied) {
            bail!("filling a block failed: {bad:?}");
        }
        let height = results[0].height.context("committed without a height")?;
        block_sizes.push(client.block(height).await?.txs.len());
        ids.extend(results.iter().map(|r| r.tx_id));
    }
    let ids = Arc::new(ids);
    println!(
        "filled {} blocks, {} transactions each (median); {} transactions to ask about",
        args.blocks,
        median(&mut block_sizes.iter().map(|&n| n as f64).collect::<Vec<_>>()),
        ids.len()
    );
    let duration = Duration::from_secs(args.duration);
    let proofs = phase(&public, &ids, args.concurrency, duration, true).await?;
    let lookups = phase(&client, &ids, args.concurrency, duration, false).await?;
    println!("| request | requests/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, mut latencies, elapsed) in [
        ("GET /v1/transactions/{id}/proof", proofs.0, proofs.1),
        ("GET /v1/transactions/{id} (as the town)", lookups.0, lookups.1),
    ] {
        let count = latencies.len();
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.2} |",
            count as f64 / elapsed,
            median(&mut latencies),
            percentile(&mut latencies, 99.0),
            percentile(&mut latencies, 100.0)
        );
    }
    Ok(())
}

/// Asks about random transactions of `ids` from `concurrency` tasks for `duration`:
/// every latency in ms, and the seconds it took.
async fn phase(
    client: &Client,
    ids: &Arc<Vec<TxId>>,
    concurrency: usize,
    duration: Duration,
    proofs: bool,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, ids) = (client.clone(), ids.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let tx = ids[rand::thread_rng().gen_range(0..ids.len())];
                let asked = Instant::now();
                if proofs {
                    let proof = client.proof(&tx).await?;
                    if !proof.check(&tx, &proof.block_hash).proven() {
                        bail!("the proof of {tx} does not check out");
                    }
                } else {
                    client.tx(&tx).await?;
                }
                latencies.push(asked.elapsed().as_secs_f64() * 1_000.0);
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = workers.join_next().await {
        all.extend(done??);
    }
    Ok((all, start.elapsed().as_secs_f64()))
}
