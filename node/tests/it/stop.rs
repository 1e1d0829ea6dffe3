//! A part the node cannot live without that fails stops the whole `machi-node` process,
//! with one clear line and a non-zero exit, instead of leaving it serving reads and
//! refusing every write for ever. The trigger is one the product meets: a block that is
//! not confirmed makes the producer rebuild its state from the block log, and a log that
//! was damaged on disk meanwhile cannot be rebuilt from.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use machi_api::{ClusterView, TxStatus};
use machi_client::{sign, Client};
use machi_ledger::{Action, ShopClass, SigningKey};

use crate::harness::{id, new_key};

const CHAIN: &str = "stop-town";
/// How long the test waits for the process to stop: the block's confirmation time-out
/// (5 s) and the rebuild, with room for a slow machine.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

struct Replica {
    dir: PathBuf,
    child: Child,
    api: String,
    /// Everything the process wrote to stderr, once it has ended.
    stderr: std::thread::JoinHandle<String>,
}

impl Replica {
    fn start(dir: &Path) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_machi-node"))
            .args(["run", "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("machi-node starts");
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        // The first stdout line names the API's address; the node serves once it is printed.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reads stdout");
        // The rest is read too: a replica prints another line, which a closed pipe would fail.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let api = line
            .trim()
            .strip_prefix("machi-node listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Replica { dir: dir.to_path_buf(), child, api, stderr }
    }

    /// Waits for the process to end by itself; kills it if it has not by the deadline.
    async fn wait_for_exit(mut self) -> (Option<ExitStatus>, String) {
        let pid = self.child.id();
        let waited = tokio::task::spawn_blocking(move || {
            let status = self.child.wait();
            (status, self.child)
        });
        let status = match tokio::time::timeout(STOP_DEADLINE, waited).await {
            Ok(joined) => Some(joined.unwrap().0.expect("waits for the process")),
            Err(_) => {
                // Still running: end it, so its stderr closes and the test can report.
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                None
            }
        };
        (status, self.stderr.join().unwrap())
    }
}

/// Addresses on loopback that were free a moment ago.
fn free_addrs(count: usize) -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..count).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect()
}

/// Two replicas set up the way the parties do it (keygen, init --cluster, init --genesis),
/// both voters: a block commits only when both hold it.
fn two_replicas(base: &Path) -> (Vec<PathBuf>, SigningKey) {
    let dirs: Vec<PathBuf> = (1..=2).map(|i| base.join(format!("r{i}"))).collect();
    let addrs = free_addrs(4);
    let mut toml = String::new();
    for (i, dir) in dirs.iter().enumerate() {
        let (_, key) = machi_node::keygen(dir).unwrap();
        toml += &format!(
            "[[replica]]\nid = {}\nname = \"replica {}\"\napi_addr = \"{}\"\nraft_addr = \"{}\"\nproducer_key = \"{key}\"\n\n",
            i + 1,
            i + 1,
            addrs[2 * i],
            addrs[2 * i + 1]
        );
    }
    let cluster = base.join("cluster.toml");
    std::fs::write(&cluster, toml).unwrap();
    let town =
        machi_node::init_cluster(&dirs[0], CHAIN, &machi_node::read_cluster_file(&cluster).unwrap()).unwrap();
    machi_node::init_from_genesis(&dirs[1], &machi_node::genesis_path(&dirs[0]), None).unwrap();
    (dirs, machi_node::read_key(&town).unwrap())
}

fn register_shop(town: &SigningKey) -> machi_ledger::SignedTx {
    sign(
        CHAIN,
        town,
        Action::RegisterShop { shop: id(&new_key()), name: "店".into(), class: ShopClass::Local },
    )
}

/// Flips one bit inside the genesis record of a block log, as a failing disk might: the
/// record's checksum no longer holds, and intact records follow it.
fn damage_first_record(log: &Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(log).unwrap();
    let mut bytes = vec![0u8; 64];
    file.read_exact_at(&mut bytes, 0).unwrap();
    // Past the 8-byte header, a byte of the record (never 0x00, the delimiter) whose
    // flipped value is not 0x00 either.
    let at = (24..64).find(|&i| bytes[i] != 0 && bytes[i] != 0x80).unwrap();
    file.write_all_at(&[bytes[at] ^ 0x80], at as u64).unwrap();
    file.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_that_cannot_rebuild_its_state_stops_the_process_with_a_clear_line() {
    let base = tempfile::tempdir().unwrap();
    let (dirs, town) = two_replicas(base.path());
    let mut replicas: Vec<Replica> = dirs.iter().map(|dir| Replica::start(dir)).collect();

    // A first block, committed by both (a follower forwards it to the leader; while the
    // first election runs the same transaction is sent again, as a client does).
    let tx = register_shop(&town);
    let first = Client::new(&replicas[0].api).submit_settled(&tx, &tx.id(CHAIN), 10).await.unwrap();
    assert_eq!(first.status, TxStatus::Applied, "{first:?}");
    let cluster: ClusterView =
        reqwest::get(format!("{}/v1/cluster", replicas[0].api)).await.unwrap().json().await.unwrap();
    let leader_index = usize::try_from(cluster.leader.expect("a leader")).unwrap() - 1;
    let leader = replicas.remove(leader_index);
    let mut follower = replicas.pop().unwrap();

    // The leader's disk damages its block log; the follower goes away, so the leader's
    // next block is not confirmed and the producer rebuilds its state from that log.
    damage_first_record(&machi_node::log_path(&leader.dir));
    follower.child.kill().unwrap();
    follower.child.wait().unwrap();
    let client = Client::new(&leader.api);
    let tx = register_shop(&town);
    tokio::spawn(async move { client.submit(&tx).await });

    let (status, stderr) = leader.wait_for_exit().await;
    let status =
        status.unwrap_or_else(|| panic!("the node went on running after its producer failed:\n{stderr}"));
    assert_eq!(status.code(), Some(machi_host::supervise::EXIT_PART_FAILED), "{status:?}\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("the producer failed"))
        .unwrap_or_else(|| panic!("no line names the failed part:\n{stderr}"));
    assert!(line.contains("state cannot be rebuilt after a failed write"), "{line}");
    assert!(line.contains("stopping the process"), "{line}");
}
