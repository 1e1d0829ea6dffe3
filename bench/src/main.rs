//! `machi-bench`: drives a running machi-node with real signed transactions from many
//! keys, and measures the machine's own limits in the same run.

mod cost;
mod counter;
mod limits;
mod rehearse;
mod replay;
mod scenarios;
mod stats;
mod town;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use scenarios::{Load, Mode};
use town::TownSize;

/// machi-bench: sale-day load generator for machi-node.
///
/// Every scenario first measures the machine's limits (Ed25519 batch verification on all
/// cores, strict verification, SHA-256, fsync) so results are also given as fractions of
/// them. Build with `cargo build --release -p machi-bench`.
#[derive(Parser)]
#[command(name = "machi-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure the machine's own limits only.
    Limits {
        #[arg(long)]
        json: bool,
    },
    /// Residents paying shops, as batches or as single requests.
    Payments {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value = "batch")]
        mode: Mode,
        /// Concurrent requests in flight (connections).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Transactions per request in batch mode.
        #[arg(long, default_value_t = 512)]
        batch_size: usize,
        /// Offered load in transactions per second (single mode); default: closed loop.
        #[arg(long)]
        rate: Option<f64>,
        /// Transactions signed in advance; the run stops early if they run out.
        #[arg(long, default_value_t = 300_000)]
        pool: usize,
    },
    /// Where each microsecond of a payment goes (parse, decode, verify, apply, encode,
    /// fsync), measured stage by stage, and the memory resident accounts take.
    Cost {
        /// Resident accounts to hold in memory for the memory figure.
        #[arg(long, default_value_t = 1_000_000)]
        memory_residents: u64,
        /// Transactions per block for the amortised fsync cost.
        #[arg(long, default_value_t = 512)]
        block_txs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Replay/verify rate of the chain in DIR (`machi-node audit`) and restart-to-ready
    /// time. Make a long chain first, e.g. with `payments --pool 1000000`, then stop the
    /// node.
    Audit {
        #[arg(long)]
        data_dir: PathBuf,
        /// The machi-node binary.
        #[arg(long, default_value = "machi-node")]
        node_bin: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// A whole sale day, compressed: sale, payments, refunds, cash-outs, settlement,
    /// expiry; ends with the audit summary. For counter staff to rehearse on a practice
    /// node.
    Rehearse {
        #[arg(long, default_value = "http://127.0.0.1:7070")]
        node: String,
        #[arg(long)]
        town_key: PathBuf,
        #[arg(long, default_value_t = 2_000)]
        residents: usize,
        #[arg(long, default_value_t = 20)]
        shops: usize,
        #[arg(long, default_value_t = 5)]
        counters: usize,
        #[arg(long, default_value_t = 5)]
        payments_per_resident: usize,
        /// Seconds residents may spend before the issue expires.
        #[arg(long, default_value_t = 20)]
        spend_seconds: u64,
    },
    /// Shops' counters through the merchant API: invoice → resident pays → paid event.
    /// Needs a node and a merchant API (e.g. `machi-merchant demo`) and its admin token.
    Counter {
        #[arg(long, default_value = "http://127.0.0.1:7070")]
        node: String,
        #[arg(long, default_value = "http://127.0.0.1:7071")]
        merchant: String,
        /// The town's key file (DIR/keys/town.key).
        #[arg(long)]
        town_key: PathBuf,
        /// A town admin token of the merchant API (`machi-merchant admin-token`).
        #[arg(long)]
        admin_token: String,
        #[arg(long, default_value_t = 8)]
        shops: usize,
        #[arg(long, default_value_t = 5_000)]
        residents: usize,
        /// Counters selling at once.
        #[arg(long, default_value_t = 32)]
        counters: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long)]
        json: bool,
    },
    /// Goodput under a flood of bad signatures: residents' payments (single requests)
    /// alone, then while other clients send payments with bad signatures, half naming
    /// registered residents and half from unknown keys.
    Flood {
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
    },
    /// An issue of 2,000 sets opens and 20,000 purchase attempts from 50 operators arrive.
    SaleOpen {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 2_000)]
        sets: u32,
        #[arg(long, default_value_t = 20_000)]
        attempts: usize,
        #[arg(long, default_value_t = 50)]
        operators: usize,
    },
}

#[derive(Args)]
struct Common {
    /// The node, e.g. http://127.0.0.1:7070
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    node: String,
    /// The town's key file (DIR/keys/town.key of `machi-node init`).
    #[arg(long)]
    town_key: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    residents: usize,
    #[arg(long, default_value_t = 40)]
    shops: usize,
    /// Longest time the load runs, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the id of every transaction the node acknowledged as committed, one a line.
    #[arg(long)]
    acked_log: Option<PathBuf>,
}

fn read_key(path: &std::path::Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .with_context(|| format!("{} does not hold 64 hex digits", path.display()))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    let limits = tokio::task::spawn_blocking(|| limits::measure(Duration::from_millis(1_000))).await??;
    let (common, outcome, results) = match command {
        Command::Limits { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&json!({ "limits": limits }))?);
            } else {
                limits::print(&limits);
            }
            return Ok(());
        }
        Command::Cost { memory_residents, block_txs, json } => {
            let stages =
                tokio::task::spawn_blocking(move || cost::stages(limits.fsync_4k_median_us, block_txs))
                    .await?;
            let memory = tokio::task::spawn_blocking(move || cost::memory(memory_residents)).await?;
            let total: f64 = stages.iter().map(|s| s.micros_per_tx).sum();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({ "limits": limits, "stages": stages, "total_micros_per_tx": total, "memory": memory })
                    )?
                );
            } else {
                limits::print(&limits);
                println!("cost of one payment, per stage (one core, µs):");
                for s in &stages {
                    println!(
                        "  {:<48} {:>8.2}  ({:>4.1}%)",
                        s.stage,
                        s.micros_per_tx,
                        100.0 * s.micros_per_tx / total
                    );
                }
                println!("  {:<48} {:>8.2}  → {:.0} tx/s per core", "total", total, 1e6 / total);
                println!(
                    "memory: {} resident accounts add {:.0} MiB ({:.0} bytes each)",
                    memory.resident_accounts,
                    memory.rss_bytes_added as f64 / 1048576.0,
                    memory.bytes_per_resident
                );
            }
            return Ok(());
        }
        Command::Audit { data_dir, node_bin, json } => {
            let outcome = replay::run(&node_bin, &data_dir).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&json!({ "limits": limits, "audit": outcome }))?);
            } else {
                limits::print(&limits);
                println!("audit of {} transactions in {} blocks: {:.2} s = {:.0} tx/s ({:.2} × Ed25519 batch-verify rate)", outcome.txs, outcome.blocks, outcome.audit_s, outcome.audit_tx_per_s, outcome.audit_tx_per_s / limits.ed25519_batch_verify_per_s);
                println!("restart to ready: {:.2} s", outcome.restart_to_ready_s);
            }
            return Ok(());
        }
        Command::Rehearse {
            node,
            town_key,
            residents,
            shops,
            counters,
            payments_per_resident,
            spend_seconds,
        } => {
            let client = machi_client::Client::new(&node);
            let plan = rehearse::Plan {
                residents,
                shops,
                operators: counters,
                payments_per_resident,
                spend_seconds,
            };
            return rehearse::run(&client, read_key(&town_key)?, &plan).await;
        }
        Command::Counter {
            node,
            merchant,
            town_key,
            admin_token,
            shops,
            residents,
            counters,
            duration,
            json,
        } => {
            let client = machi_client::Client::new(&node);
            let plan = counter::Plan { shops, residents, counters, duration: Duration::from_secs(duration) };
            let outcome = counter::run(&client, &merchant, read_key(&town_key)?, &admin_token, &plan).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "limits": limits, "counter": outcome }))?
                );
            } else {
                limits::print(&limits);
                counter::print(&outcome);
            }
            return Ok(());
        }
        Command::Payments { common, mode, concurrency, batch_size, rate, pool } => {
            let client = machi_client::Client::new(&common.node);
            let size = TownSize {
                operators: 2,
                shops: common.shops,
                residents: common.residents,
                sets_each: 10,
                total_sets: (common.residents * 10) as u32,
                cap: 10,
            };
            let town = town::setup(&client, read_key(&common.town_key)?, &size).await?;
            let load =
                Load { mode, concurrency, batch_size, duration: Duration::from_secs(common.duration), rate };
            let (outcome, results) = scenarios::payments(&client, &town, &load, pool).await;
            (common, outcome, results)
        }
        Command::Flood { common, concurrency, bad_concurrency, pool } => {
            let client = machi_client::Client::new(&common.node);
            let size = TownSize {
                operators: 2,
                shops: common.shops,
                residents: common.residents,
                sets_each: 10,
                total_sets: (common.residents * 10) as u32,
                cap: 10,
            };
            let town = town::setup(&client, read_key(&common.town_key)?, &size).await?;
            let load = Load {
                mode: Mode::Single,
                concurrency,
                batch_size: 1,
                duration: Duration::from_secs(common.duration),
                rate: None,
            };
            let (outcome, results) = scenarios::flood(&client, &town, &load, bad_concurrency, pool).await;
            (common, outcome, results)
        }
        Command::SaleOpen { common, sets, attempts, operators } => {
            let client = machi_client::Client::new(&common.node);
            let size = TownSize {
                operators,
                shops: 1,
                residents: common.residents,
                sets_each: 0,
                total_sets: sets,
                cap: 2,
            };
            let town = town::setup(&client, read_key(&common.town_key)?, &size).await?;
            let (outcome, results) = scenarios::sale_open(&client, &town, attempts, 2).await?;
            (common, outcome, results)
        }
    };
    if let Some(path) = &common.acked_log {
        scenarios::write_acked(path, &results)?;
    }
    if common.json {
        let fraction = outcome.committed_tx_per_s / limits.ed25519_batch_verify_per_s;
        let value = json!({
            "limits": limits,
            "scenario": outcome,
            "committed_tx_per_s": outcome.committed_tx_per_s,
            "p50_ms": outcome.p50_ms,
            "p99_ms": outcome.p99_ms,
            "errors": outcome.errors,
            "ed25519_batch_verify_per_s": limits.ed25519_batch_verify_per_s,
            "fraction_of_batch_verify": fraction,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        limits::print(&limits);
        scenarios::print(&outcome, limits.ed25519_batch_verify_per_s);
    }
    if outcome.errors > 0 {
        std::process::exit(2);
    }
    Ok(())
}
