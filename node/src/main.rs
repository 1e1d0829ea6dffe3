//! `machi-node`: create a chain, run the node, export, audit and verify.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use machi_ledger::Hash32;

/// machi-node: the ledger node of a town's premium voucher currency.
///
/// Start with `machi-node init --data-dir DIR --chain-id ID`, then
/// `machi-node run --data-dir DIR --listen 127.0.0.1:7070`.
#[derive(Parser)]
#[command(name = "machi-node", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new chain in DIR: genesis, the town's key and the producer's key.
    Init {
        /// Folder for the chain (block log, index, keys). Must not hold a chain yet.
        #[arg(long)]
        data_dir: PathBuf,
        /// Name of the chain, e.g. `bandai-2026`; part of every transaction id.
        #[arg(long)]
        chain_id: String,
    },
    /// Serve the HTTP API from DIR until Ctrl-C or SIGTERM.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
        /// Connections served at once; more wait until one closes.
        #[arg(long, default_value_t = machi_node::CONNECTIONS_MAX)]
        connections_max: usize,
    },
    /// Start a working local demo town: creates DIR (a chain with an operator, two shops,
    /// an issue on sale and three residents who bought sets) if needed, then serves it.
    Demo {
        #[arg(long, default_value = "machi-demo")]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
    },
    /// Write the chain as JSON Lines, one block per line (the format of docs/FORMAT.md).
    Export {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Replay the whole chain from genesis, checking every hash, signature and rule, and
    /// print the supply report. Exits 1 and names the first bad block if anything fails.
    Audit {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Check an export file alone (no database needed) and print the same report as audit.
    Verify {
        /// The export file (JSON Lines).
        file: PathBuf,
        /// HEIGHT:HASH of a head you hold from earlier: catches blocks deleted from the end.
        #[arg(long)]
        expect_head: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Print the HTTP API's OpenAPI document (also served at GET /openapi.json).
    Openapi,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Csv,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Init { data_dir, chain_id } => {
            let (town, producer) = machi_node::init(&data_dir, &chain_id)?;
            println!("created chain {chain_id:?} in {}", data_dir.display());
            let town_account = machi_ledger::AccountId::of(&machi_node::read_key(&town)?);
            println!(
                "town key:     {}  (keep it offline: it creates issues and registers operators and delegates)",
                town.display()
            );
            println!(
                "town account: {town_account}  (services check the chain against it: machi-merchant --town)"
            );
            println!("producer key: {}", producer.display());
            println!("next: machi-node run --data-dir {}", data_dir.display());
            Ok(())
        }
        Command::Run { data_dir, listen, connections_max } => {
            let limits = machi_node::ServeLimits { connections_max, ..Default::default() };
            run(data_dir, listen, false, limits)
        }
        Command::Demo { data_dir, listen } => {
            if !machi_node::log_path(&data_dir).exists() {
                machi_node::init(&data_dir, "machi-demo")?;
            }
            run(data_dir, listen, true, machi_node::ServeLimits::default())
        }
        Command::Export { data_dir, out } => {
            let blocks = machi_node::export(&data_dir, &out)?;
            println!("wrote {blocks} blocks to {}", out.display());
            Ok(())
        }
        Command::Audit { data_dir, format } => report(machi_node::audit_data_dir(&data_dir), format),
        Command::Verify { file, expect_head, format } => {
            let expect = expect_head.map(|s| parse_head(&s)).transpose()?;
            report(machi_node::verify_export(&file, expect), format)
        }
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&machi_node::openapi())?);
            Ok(())
        }
    }
}

fn parse_head(text: &str) -> anyhow::Result<(u64, Hash32)> {
    let (height, hash) = text.split_once(':').context("--expect-head is HEIGHT:HASH")?;
    let height = height.parse().context("HEIGHT is a whole number")?;
    let hash = hash.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    Ok((height, hash))
}

fn report(result: anyhow::Result<machi_node::AuditReport>, format: Format) -> anyhow::Result<()> {
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("audit FAILED: {e:#}");
            std::process::exit(1);
        }
    };
    match format {
        Format::Text => print!("{}", machi_node::report_text(&report)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => print!("{}", machi_node::report_csv(&report)),
    }
    if !report.invariant_held_every_block {
        std::process::exit(1);
    }
    Ok(())
}

fn run(data_dir: PathBuf, listen: String, demo: bool, limits: machi_node::ServeLimits) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let node = machi_node::Node::open(&data_dir)?;
        if demo {
            machi_node::seed_demo(&node, &data_dir).await?;
        }
        let listener =
            tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("listening on {listen}"))?;
        let (height, chain_id) = {
            let chain = node.shared.chain.read().await;
            (chain.head.height, chain.chain_id().to_string())
        };
        let addr = listener.local_addr()?;
        tracing::info!("serving chain {chain_id:?} at height {height}");
        // The first line on stdout says where to connect (scripts and tests read it).
        println!("machi-node listening on http://{addr}");
        if demo {
            print_demo_guide(&data_dir, &addr.to_string());
        }
        use std::io::Write as _;
        std::io::stdout().flush()?;
        node.serve_with(listener, limits, machi_node::shutdown_signal()).await
    })
}

fn print_demo_guide(data_dir: &std::path::Path, addr: &str) {
    let resident = machi_node::read_key(&data_dir.join("keys/resident-1.key"))
        .map(|k| hex::encode(k.verifying_key().to_bytes()))
        .unwrap_or_default();
    println!();
    println!(
        "A demo town is running (chain in {}, keys in {}/keys).",
        data_dir.display(),
        data_dir.display()
    );
    println!("Try:");
    println!("  curl http://{addr}/v1/issues/1            # the issue on sale: sets sold and left");
    println!("  curl http://{addr}/v1/supply              # the supply report");
    println!("  curl http://{addr}/v1/accounts/{resident}");
    println!("                                            # resident 1: balance, history");
    println!("  curl http://{addr}/v1/blocks/1            # a block, as an auditor sees it");
    println!("  curl -N http://{addr}/v1/events           # live stream of committed transactions");
    println!(
        "  machi-node audit --data-dir {}   # after stopping: replay and verify everything",
        data_dir.display()
    );
    let key = data_dir.join("keys/resident-1.key");
    println!("Act as resident 1 with the wallet (in another terminal):");
    println!(
        "  cargo run -q -p machi-wallet -- --node http://{addr} import --key-file {} --label resident",
        key.display()
    );
    println!("                                            # asks for a new PIN twice; prints a card number");
    println!("  cargo run -q -p machi-wallet -- --node http://{addr} balance --card CARD_NUMBER_PRINTED");
    println!("Stop with Ctrl-C.");
}
