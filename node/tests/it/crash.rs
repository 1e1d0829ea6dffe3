//! kill -9 the real `machi-node` process while clients are being answered, restart it,
//! and check that every acknowledged transaction is there with the same outcome and the
//! chain verifies. `MACHI_CRASH_CYCLES` sets the number of cycles (default 10).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use machi_api::{TxResultView, TxStatus};
use machi_client::{sign, Client};
use machi_ledger::{Action, ShopClass, SigningKey};

use crate::harness::{id, new_key};

struct Process {
    child: Child,
    client: Client,
}

/// The node in `dir`, read as its town (the everything scope).
fn start(dir: &Path) -> Process {
    let town = machi_node::read_key(&dir.join("keys/town.key")).expect("town key");
    let mut child = Command::new(env!("CARGO_BIN_EXE_machi-node"))
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("machi-node starts");
    // The first stdout line names the address; the node is serving once it is printed.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("reads stdout");
    let url = line
        .trim()
        .strip_prefix("machi-node listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    Process { client: Client::new(url).reading_as(town, "machi-node tests"), child }
}

fn kill9(mut process: Process) {
    // Child::kill sends SIGKILL on Unix: no shutdown code runs.
    process.child.kill().expect("SIGKILL");
    process.child.wait().expect("reaped");
}

/// Several clients register shops until stopped; every acknowledged result is kept.
async fn load(
    client: Client,
    chain_id: String,
    town: SigningKey,
    acked: Arc<Mutex<Vec<TxResultView>>>,
    stop_at: Instant,
) {
    while Instant::now() < stop_at {
        let batch: Vec<_> = (0..8)
            .map(|_| {
                sign(
                    &chain_id,
                    &town,
                    Action::RegisterShop {
                        shop: id(&new_key()), name: "店".into(), class: ShopClass::Local
                    },
                )
            })
            .collect();
        match client.submit_batch(&batch).await {
            Ok(results) => {
                acked.lock().unwrap().extend(results.into_iter().filter(|r| r.status == TxStatus::Applied))
            }
            Err(_) => return, // the node is gone: nothing in flight was acknowledged
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_transaction() {
    let cycles: u32 = std::env::var("MACHI_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), "crash-town").unwrap();
    let town = machi_node::read_key(&dir.path().join("keys/town.key")).unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut checked_up_to = 0;
    for cycle in 0..cycles {
        let process = start(dir.path());
        let stop_at = Instant::now() + Duration::from_secs(5);
        let workers: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(load(
                    process.client.clone(),
                    "crash-town".into(),
                    town.clone(),
                    acked.clone(),
                    stop_at,
                ))
            })
            .collect();
        // Kill at a varying moment once this cycle has had some acknowledgements.
        let target = acked.lock().unwrap().len() + 20 + 37 * (cycle as usize % 10);
        while acked.lock().unwrap().len() < target && Instant::now() < stop_at {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        kill9(process);
        for worker in workers {
            worker.await.unwrap();
        }
        let process = start(dir.path());
        let acknowledged = acked.lock().unwrap().clone();
        assert!(!acknowledged.is_empty());
        // Every acknowledgement of this cycle, and a spread of the earlier ones.
        let earlier = checked_up_to;
        checked_up_to = acknowledged.len();
        let step = (earlier / 200).max(1);
        let to_check = acknowledged[earlier..].iter().chain(acknowledged[..earlier].iter().step_by(step));
        for result in to_check {
            let tx = process
                .client
                .tx(&result.tx_id)
                .await
                .unwrap_or_else(|e| panic!("cycle {cycle}: {} lost: {e}", result.tx_id));
            assert_eq!(tx.result.status, TxStatus::Applied);
            assert_eq!(tx.result.height, Some(result.height.unwrap()));
        }
        kill9(process);
        let report = machi_node::audit_data_dir(dir.path()).expect("the chain verifies after kill -9");
        assert!(report.invariant_held_every_block);
        assert!(report.txs as usize > acknowledged.len());
    }
}
