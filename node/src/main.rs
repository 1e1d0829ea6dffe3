//! `machi-node`: create a chain, run the node, export, audit and verify.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use machi_ledger::Hash32;

/// machi-node: the ledger node of a town's premium voucher currency.
///
/// One node alone: `machi-node init --data-dir DIR --chain-id ID`, then
/// `machi-node run --data-dir DIR --listen 127.0.0.1:7070`.
///
/// Replicas (the town office, the bank, an auditor; docs/OPERATIONS.md): each runs
/// `machi-node keygen --data-dir DIR` and sends the printed key to the town; the town
/// writes cluster.toml and runs `machi-node init --data-dir DIR --chain-id ID --cluster
/// cluster.toml`, then hands DIR/genesis.json to the others, who run `machi-node init
/// --data-dir DIR --genesis genesis.json`; then each runs `machi-node run --data-dir DIR`.
#[derive(Parser)]
#[command(name = "machi-node", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make this replica's producer key, DIR/keys/producer.key (mode 0600), and print its
    /// public key (64 hex digits, the last line) for the town's cluster.toml.
    Keygen {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Create a chain in DIR. Alone: makes the town's and the producer's keys and genesis.
    /// With --cluster (the town's replica, after keygen): makes the town's key and a
    /// genesis naming the replicas, also written to DIR/genesis.json for the others. With
    /// --genesis (every other replica, after keygen): starts from the town's genesis file,
    /// after checking it.
    Init {
        /// Folder for the chain (block log, index, Raft log, keys). Must not hold a chain yet.
        #[arg(long)]
        data_dir: PathBuf,
        /// Name of the chain, e.g. `bandai-2026`; part of every transaction id. Not with
        /// --genesis (the genesis names it).
        #[arg(long, required_unless_present = "genesis", conflicts_with = "genesis")]
        chain_id: Option<String>,
        /// The replicas the cluster starts with (TOML; see docs/OPERATIONS.md).
        #[arg(long, conflicts_with = "genesis")]
        cluster: Option<PathBuf>,
        /// The genesis file the town's replica wrote (its DIR/genesis.json).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// With --genesis, for a replica the town adds to a running cluster (not named in
        /// the genesis): the id the town gives it in the new replica set.
        #[arg(long, requires = "genesis")]
        replica_id: Option<u64>,
    },
    /// Serve the HTTP API from DIR until Ctrl-C or SIGTERM. A replica finds its addresses
    /// in the chain's replica set by its producer key.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
        /// Address of the HTTP API [default: the replica's api_addr, or 127.0.0.1:7070 for
        /// a node alone].
        #[arg(long)]
        listen: Option<String>,
        /// Address for replica-to-replica traffic [default: the replica's raft_addr].
        #[arg(long)]
        raft_listen: Option<String>,
        /// Connections served at once; more wait until one closes.
        #[arg(long, default_value_t = machi_node::CONNECTIONS_MAX)]
        connections_max: usize,
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
    /// The supply report per issue.
    Csv,
    /// The cash by day: received, counted, deposited, gaps (docs/AUDIT.md).
    CashCsv,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Keygen { data_dir } => {
            let (path, public) = machi_node::keygen(&data_dir)?;
            println!("producer key: {}  (stays on this machine)", path.display());
            println!("its public key, for the town's cluster.toml (producer_key):");
            println!("{public}");
            Ok(())
        }
        Command::Init { data_dir, chain_id, cluster, genesis, replica_id } => {
            init(&data_dir, chain_id, cluster, genesis, replica_id)
        }
        Command::Run { data_dir, listen, raft_listen, connections_max } => {
            let limits = machi_node::ServeLimits { connections_max, ..Default::default() };
            run(data_dir, listen, raft_listen, limits)
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
        Format::CashCsv => print!("{}", machi_node::report_cash_csv(&report)),
    }
    if !report.invariant_held_every_block {
        std::process::exit(1);
    }
    Ok(())
}

fn init(
    data_dir: &std::path::Path,
    chain_id: Option<String>,
    cluster: Option<PathBuf>,
    genesis: Option<PathBuf>,
    replica_id: Option<u64>,
) -> anyhow::Result<()> {
    let town = match (chain_id, cluster, genesis) {
        (_, _, Some(genesis)) => {
            let (block, me) = machi_node::init_from_genesis(data_dir, &genesis, replica_id)?;
            println!(
                "created chain {:?} in {} from {} (genesis {})",
                block.header.chain_id,
                data_dir.display(),
                genesis.display(),
                block.hash()
            );
            match me {
                Some(me) => {
                    println!(
                        "this is replica {} ({}), api {}, raft {}",
                        me.id, me.name, me.api_addr, me.raft_addr
                    );
                    println!("next: machi-node run --data-dir {}", data_dir.display());
                }
                None => {
                    println!(
                        "this replica joins later, as replica {}: the town names it with `machi-wallet town \
                         set-replicas`",
                        replica_id.unwrap_or_default()
                    );
                    println!(
                        "next: machi-node run --data-dir {} --listen API_ADDR --raft-listen RAFT_ADDR",
                        data_dir.display()
                    );
                }
            }
            return Ok(());
        }
        (Some(chain_id), Some(cluster), None) => {
            let cluster = machi_node::read_cluster_file(&cluster)?;
            let town = machi_node::init_cluster(data_dir, &chain_id, &cluster)?;
            println!(
                "created chain {chain_id:?} in {} naming {} replicas",
                data_dir.display(),
                cluster.replica.len()
            );
            println!(
                "genesis:      {}  (give it to every other replica: machi-node init --data-dir DIR --genesis FILE)",
                machi_node::genesis_path(data_dir).display()
            );
            town
        }
        (Some(chain_id), None, None) => {
            let (town, producer) = machi_node::init(data_dir, &chain_id)?;
            println!("created chain {chain_id:?} in {}", data_dir.display());
            println!("producer key: {}", producer.display());
            town
        }
        (None, _, None) => anyhow::bail!("--chain-id is needed unless --genesis is given"),
    };
    let town_account = machi_ledger::AccountId::of(&machi_node::read_key(&town)?);
    println!(
        "town key:     {}  (keep it offline: it creates issues and registers operators and delegates)",
        town.display()
    );
    println!("town account: {town_account}  (services check the chain against it: machi-merchant --town)");
    println!("next: machi-node run --data-dir {}", data_dir.display());
    Ok(())
}

fn run(
    data_dir: PathBuf,
    listen: Option<String>,
    raft_listen: Option<String>,
    limits: machi_node::ServeLimits,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let node = machi_node::Node::open(&data_dir)?;
        let (height, chain_id) = {
            let chain = node.shared.chain.read().await;
            (chain.head.height, chain.chain_id().to_string())
        };
        let me = node.replica().await;
        let joining = me.is_none() && node.names_replicas().await;
        if joining && (listen.is_none() || raft_listen.is_none()) {
            anyhow::bail!(
                "this replica is not named on chain yet (it joins later): give --listen and --raft-listen, the \
                 addresses the town names in set-replicas"
            );
        }
        let api_addr = listen.or_else(|| me.as_ref().map(|r| r.api_addr.clone()));
        let api_addr = api_addr.unwrap_or_else(|| "127.0.0.1:7070".to_string());
        let api = tokio::net::TcpListener::bind(&api_addr)
            .await
            .with_context(|| format!("listening on {api_addr}"))?;
        let addr = api.local_addr()?;
        tracing::info!("serving chain {chain_id:?} at height {height}");
        use std::io::Write as _;
        if me.is_none() && !joining {
            // The first line on stdout says where to connect (scripts and tests read it).
            println!("machi-node listening on http://{addr}");
            std::io::stdout().flush()?;
            return node.serve_with(api, limits, machi_node::shutdown_signal()).await;
        }
        let raft_addr = raft_listen.or_else(|| me.as_ref().map(|r| r.raft_addr.clone())).unwrap_or_default();
        let raft = tokio::net::TcpListener::bind(&raft_addr)
            .await
            .with_context(|| format!("listening for replicas on {raft_addr}"))?;
        println!("machi-node listening on http://{addr}");
        let name = me.map_or_else(|| "joining".to_string(), |me| format!("replica {} ({})", me.id, me.name));
        println!("{name} listening for replicas on {}", raft.local_addr()?);
        std::io::stdout().flush()?;
        node.serve_replica(api, raft, limits, machi_node::shutdown_signal()).await
    })
}
