//! `audit`: how fast a long chain is replayed and verified (`machi-node audit`, every
//! signature and rule), and how long a restart takes until the node answers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::json;

/// Flags of `audit`.
#[derive(clap::Args)]
pub(crate) struct AuditArgs {
    #[arg(long)]
    data_dir: PathBuf,
    /// The machi-node binary.
    #[arg(long, default_value = "machi-node")]
    node_bin: PathBuf,
    #[arg(long)]
    json: bool,
}

/// Longest wait for a restarted node to answer.
const READY_S_MAX: u64 = 120;

#[derive(Debug, Serialize)]
struct AuditOutcome {
    txs: u64,
    blocks: u64,
    audit_s: f64,
    audit_tx_per_s: f64,
    restart_to_ready_s: f64,
}

pub(crate) async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let limits = crate::limits::measure().await?;
    let outcome = audit(&args.node_bin, &args.data_dir).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "limits": limits, "audit": outcome }))?);
    } else {
        crate::limits::print(&limits);
        println!(
            "audit of {} transactions in {} blocks: {:.2} s = {:.0} tx/s ({:.2} × Ed25519 batch-verify rate)",
            outcome.txs,
            outcome.blocks,
            outcome.audit_s,
            outcome.audit_tx_per_s,
            outcome.audit_tx_per_s / limits.ed25519_batch_verify_per_s
        );
        println!("restart to ready: {:.2} s", outcome.restart_to_ready_s);
    }
    Ok(())
}

async fn audit(node_bin: &Path, data_dir: &Path) -> anyhow::Result<AuditOutcome> {
    let started = Instant::now();
    let output = Command::new(node_bin)
        .args(["audit", "--format", "json", "--data-dir"])
        .arg(data_dir)
        .output()
        .with_context(|| format!("running {}", node_bin.display()))?;
    let audit_s = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("audit failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let txs = report["txs"].as_u64().unwrap_or(0);
    let blocks = report["blocks"].as_u64().unwrap_or(0);
    let restart_to_ready_s = restart_to_ready(node_bin, data_dir).await?.as_secs_f64();
    Ok(AuditOutcome { txs, blocks, audit_s, audit_tx_per_s: txs as f64 / audit_s, restart_to_ready_s })
}

/// From spawning the node to its first successful health check; then stops it.
async fn restart_to_ready(node_bin: &Path, data_dir: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = Command::new(node_bin)
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let url =
        line.trim().strip_prefix("machi-node listening on ").context("the node did not start")?.to_string();
    let client = machi_client::Client::new(&url);
    let deadline = Instant::now() + Duration::from_secs(READY_S_MAX);
    while client.health().await.is_err() {
        if Instant::now() > deadline {
            bail!("the node did not become ready in two minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = started.elapsed();
    // SIGTERM lets it write a checkpoint as a normal stop would.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    Ok(ready)
}
