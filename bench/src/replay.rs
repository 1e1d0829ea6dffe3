//! `audit`: how fast a long chain is replayed and verified (`machi-node audit`, every
//! signature and rule), and how long a restart takes until the node answers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct ReplayOutcome {
    pub(crate) txs: u64,
    pub(crate) blocks: u64,
    pub(crate) audit_s: f64,
    pub(crate) audit_tx_per_s: f64,
    pub(crate) restart_to_ready_s: f64,
}

pub(crate) async fn run(node_bin: &Path, data_dir: &Path) -> anyhow::Result<ReplayOutcome> {
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

    // Restart: from spawning the process to the first successful health check.
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
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.health().await.is_err() {
        if Instant::now() > deadline {
            bail!("the node did not become ready in two minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let restart_to_ready_s = started.elapsed().as_secs_f64();
    // SIGTERM lets it write a checkpoint as a normal stop would.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    Ok(ReplayOutcome { txs, blocks, audit_s, audit_tx_per_s: txs as f64 / audit_s, restart_to_ready_s })
}
