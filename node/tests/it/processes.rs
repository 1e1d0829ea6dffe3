//! Replicas as real `machi-node` processes on loopback, set up the way the parties do it
//! (`keygen` on each, `init --cluster` at the town, `init --genesis` elsewhere) and started,
//! killed (SIGKILL), stopped (SIGTERM), exported and verified with the real binary.
//!
//! Every process a `Cluster` starts is killed when it is dropped, so a failing test leaves
//! none behind; a failing test also prints the end of each replica's log.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use machi_api::{ClusterView, HeadView};
use machi_client::Client;
use machi_ledger::SigningKey;

use crate::raft_proxy::RaftNet;

/// Every wait on the cluster ends by this deadline, or the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);
/// The pause between two looks at a condition being waited on.
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// How long a replica may take to exit after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// How long one look at a replica's API may take.
const LOOK_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of each replica's log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

const NODE: &str = env!("CARGO_BIN_EXE_machi-node");

/// Free loopback ports below the kernel's ephemeral range. A replica binds its ports
/// again on every restart; a port in the ephemeral range could meanwhile become the
/// source port of some outgoing connection, and the restart would fail.
fn free_ports(count: usize) -> Vec<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let range = 10_000..low;
    assert!(range.len() > 1_000, "the ephemeral range starts at {low}: no room below it");
    let mut ports = Vec::new();
    let mut held = Vec::new();
    while ports.len() < count {
        let port = range.start + (rand::random::<u16>() % range.len() as u16);
        // Held until all are picked, so the same port is not picked twice.
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
            ports.push(port);
        }
    }
    ports
}

/// Runs a `machi-node` command to its end; its stdout, or a panic with its stderr.
fn machi_node(args: &[&str]) -> String {
    let output = Command::new(NODE).args(args).env("RUST_LOG", "warn").output().expect("machi-node runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "machi-node {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// One replica: its data folder, addresses, and the process while it runs.
pub(crate) struct Replica {
    pub(crate) id: u64,
    pub(crate) dir: PathBuf,
    /// Where its Raft listener really listens (`--raft-listen`); the genesis names the
    /// proxy in front of it when the cluster has proxies.
    pub(crate) raft_listen: String,
    pub(crate) url: String,
    pub(crate) client: Client,
    log: PathBuf,
    /// The process while it runs (a lock, so a wait can check it has not exited).
    child: Mutex<Option<Child>>,
}

impl Replica {
    /// Fails the test at once if the process has exited on its own.
    fn assert_alive(&self) {
        let exited = self.child.lock().unwrap().as_mut().and_then(|c| c.try_wait().expect("waits"));
        if let Some(status) = exited {
            panic!("replica {} exited on its own ({status}); see its log", self.id);
        }
    }

    /// The process, if it runs (a lock poisoned by a failing test still yields it, so the
    /// process is killed all the same).
    fn child(&mut self) -> &mut Option<Child> {
        self.child.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }
}

/// A cluster of replicas in a temp folder, set up with the real binary.
pub(crate) struct Cluster {
    pub(crate) work: tempfile::TempDir,
    pub(crate) chain_id: String,
    pub(crate) town: SigningKey,
    pub(crate) replicas: Vec<Replica>,
    /// The fault-injecting proxies in front of the Raft listeners, when asked for.
    pub(crate) net: Option<RaftNet>,
    /// Which replica each running process is, for the proxies.
    pids: Arc<Mutex<HashMap<u32, u64>>>,
    http: reqwest::Client,
}

impl Cluster {
    /// `size` voters, set up but not started. With `proxied`, each replica's `raft_addr`
    /// in the genesis is a proxy that forwards to its real Raft listener.
    pub(crate) async fn create(chain_id: &str, size: usize, proxied: bool) -> Cluster {
        let work = tempfile::tempdir().expect("temp dir");
        let ports = free_ports(3 * size);
        let mut replicas = Vec::new();
        let mut toml = String::new();
        for i in 0..size {
            let id = i as u64 + 1;
            let dir = work.path().join(format!("r{id}"));
            let keygen = machi_node(&["keygen", "--data-dir", path_str(&dir)]);
            let key = keygen.lines().last().expect("keygen prints the key").trim().to_string();
            assert_eq!(key.len(), 64, "keygen's last line is the public key: {keygen}");
            let (api, raft, listen) = (ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]);
            let api_addr = format!("127.0.0.1:{api}");
            // Without proxies the replica listens where the genesis says.
            let raft_listen = format!("127.0.0.1:{}", if proxied { listen } else { raft });
            toml += &format!(
                "[[replica]]\nid = {id}\nname = \"replica {id}\"\napi_addr = \"{api_addr}\"\n\
                 raft_addr = \"127.0.0.1:{raft}\"\nproducer_key = \"{key}\"\nvoter = true\n\n"
            );
            let url = format!("http://{api_addr}");
            replicas.push(Replica {
                id,
                log: work.path().join(format!("r{id}.log")),
                dir,
                raft_listen,
                client: Client::with_timeout(&url, Duration::from_secs(30)),
                url,
                child: Mutex::new(None),
            });
        }
        let cluster_file = work.path().join("cluster.toml");
        std::fs::write(&cluster_file, toml).unwrap();
        let first = &replicas[0].dir;
        machi_node(&[
            "init",
            "--data-dir",
            path_str(first),
            "--chain-id",
            chain_id,
            "--cluster",
            path_str(&cluster_file),
        ]);
        // Kept beside the replicas: a wiped replica starts again from it.
        let genesis = work.path().join("genesis.json");
        std::fs::copy(first.join("genesis.json"), &genesis).unwrap();
        for replica in &replicas[1..] {
            machi_node(&["init", "--data-dir", path_str(&replica.dir), "--genesis", path_str(&genesis)]);
        }
        let town = machi_node::read_key(&first.join("keys/town.key")).expect("town key");
        // The tests read every replica as the town (the everything scope).
        for replica in &mut replicas {
            replica.client = replica.client.reading_as(town.clone(), "machi-node tests");
        }
        let pids = Arc::new(Mutex::new(HashMap::new()));
        let net = if proxied {
            let links = replicas
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id, format!("127.0.0.1:{}", ports[3 * i + 1]), r.raft_listen.clone()))
                .collect();
            Some(RaftNet::start(links, pids.clone()).await)
        } else {
            None
        };
        let http = reqwest::Client::builder().timeout(LOOK_TIMEOUT).no_proxy().build().unwrap();
        Cluster { work, chain_id: chain_id.to_string(), town, replicas, net, pids, http }
    }

    fn at(&self, id: u64) -> &Replica {
        self.replicas.iter().find(|r| r.id == id).expect("a replica of this cluster")
    }

    fn at_mut(&mut self, id: u64) -> &mut Replica {
        self.replicas.iter_mut().find(|r| r.id == id).expect("a replica of this cluster")
    }

    pub(crate) fn url(&self, id: u64) -> &str {
        &self.at(id).url
    }

    pub(crate) fn client(&self, id: u64) -> &Client {
        &self.at(id).client
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.url.clone()).collect()
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        self.replicas.iter().map(|r| r.id).collect()
    }

    pub(crate) async fn start_all(&mut self) {
        for id in self.ids() {
            self.start(id).await;
        }
    }

    /// Starts replica `id` (`machi-node run`) and returns once it serves its API: the
    /// first line it prints says so.
    pub(crate) async fn start(&mut self, id: u64) {
        let replica = self.at(id);
        assert!(!replica.running(), "replica {id} runs already");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&replica.log).unwrap();
        let mut child = Command::new(NODE)
            .args(["run", "--data-dir", path_str(&replica.dir), "--raft-listen", &replica.raft_listen])
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("machi-node starts");
        self.pids.lock().unwrap().insert(child.id(), id);
        // Read the first line, then keep draining stdout so the process never blocks on it.
        let stdout = child.stdout.take().unwrap();
        let (first, line) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut text = String::new();
            let _ = reader.read_line(&mut text);
            let _ = first.send(text);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let replica = self.at_mut(id);
        *replica.child.lock().unwrap() = Some(child);
        let line = match tokio::time::timeout(DEADLINE, line).await {
            Ok(Ok(line)) => line,
            _ => panic!("replica {id} did not start: no first line within {DEADLINE:?}"),
        };
        let expected = format!("machi-node listening on {}", replica.url);
        assert_eq!(line.trim(), expected, "replica {id} started at another address");
    }

    /// `kill -9` (SIGKILL: no shutdown code runs); returns the moment it was sent.
    pub(crate) fn kill9(&mut self, id: u64) -> Instant {
        let mut child = self.at_mut(id).child().take().expect("the replica runs");
        child.kill().expect("SIGKILL");
        let killed = Instant::now();
        child.wait().expect("reaped");
        killed
    }

    /// SIGTERM, and waits for the process to exit cleanly.
    pub(crate) async fn stop(&mut self, id: u64) {
        let mut child = self.at_mut(id).child().take().expect("the replica runs");
        let status =
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -TERM failed for replica {id}");
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("waits") {
                assert!(status.success(), "replica {id} exited with {status} after SIGTERM");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("replica {id} did not exit within {STOP_WAIT:?} of SIGTERM");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub(crate) async fn stop_all(&mut self) {
        for id in self.ids() {
            if self.at(id).running() {
                self.stop(id).await;
            }
        }
    }

    /// `GET /v1/cluster` on replica `id`, if it answers.
    pub(crate) async fn cluster_view(&self, id: u64) -> Option<ClusterView> {
        let response = self.http.get(format!("{}/v1/cluster", self.url(id))).send().await.ok()?;
        response.json().await.ok()
    }

    /// The replica that leads: it says it leads, and a majority of the replicas say so
    /// (an isolated old leader may still believe it leads). Waits for one, other than
    /// `not`, among the running replicas `among` (all when empty).
    pub(crate) async fn leader(&self, not: Option<u64>, among: &[u64]) -> u64 {
        let deadline = Instant::now() + DEADLINE;
        let majority = self.replicas.len() / 2 + 1;
        loop {
            let mut says = HashMap::<u64, Vec<u64>>::new();
            for replica in self.replicas.iter().filter(|r| r.running()) {
                replica.assert_alive();
                if !among.is_empty() && !among.contains(&replica.id) {
                    continue;
                }
                if let Some(leader) = self.cluster_view(replica.id).await.and_then(|v| v.leader) {
                    says.entry(leader).or_default().push(replica.id);
                }
            }
            let found = says
                .iter()
                .find(|(leader, by)| Some(**leader) != not && by.contains(leader) && by.len() >= majority);
            if let Some((leader, _)) = found {
                return *leader;
            }
            assert!(Instant::now() < deadline, "no leader within {DEADLINE:?}: {says:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every running replica names the same leader in the same term: the
    /// elections of a cluster's first moments are over.
    pub(crate) async fn settled(&self) -> u64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut seen = Vec::new();
            for replica in self.replicas.iter().filter(|r| r.running()) {
                seen.push(self.cluster_view(replica.id).await.map(|v| (v.leader, v.term)));
            }
            if let Some(Some((Some(leader), _))) = seen.first() {
                if seen.iter().all(|s| s == &seen[0]) {
                    return *leader;
                }
            }
            assert!(Instant::now() < deadline, "the replicas did not settle on a leader: {seen:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every running replica has applied within `lag` blocks of the leader's
    /// head (as the leader's `/v1/cluster` shows them): the cluster is whole again after
    /// a restart, and its followers are all fit to take over.
    pub(crate) async fn in_step(&self, lag: u64) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let leader = self.leader(None, &[]).await;
            if let Some(view) = self.cluster_view(leader).await {
                let running: Vec<u64> = self.replicas.iter().filter(|r| r.running()).map(|r| r.id).collect();
                let heights: Vec<Option<u64>> = view
                    .members
                    .iter()
                    .filter(|m| running.contains(&m.id))
                    .map(|m| m.applied_height)
                    .collect();
                let top = view.members.iter().find(|m| m.id == leader).and_then(|m| m.applied_height);
                if let Some(top) = top {
                    if heights.iter().all(|h| h.is_some_and(|h| h + lag >= top)) {
                        return;
                    }
                }
            }
            assert!(Instant::now() < deadline, "the replicas did not come within {lag} blocks of the leader");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until replica `id` has applied block `height` (`?min_height=`), and returns
    /// its head.
    pub(crate) async fn caught_up(&self, id: u64, height: u64) -> HeadView {
        let deadline = Instant::now() + DEADLINE;
        let url = format!("{}/v1/chain/head?min_height={height}", self.url(id));
        loop {
            self.at(id).assert_alive();
            // The replica waits up to 10 s itself before it answers `behind`.
            let sent = self.http.get(&url).timeout(Duration::from_secs(15)).send().await;
            if let Ok(response) = sent {
                if response.status().is_success() {
                    return response.json().await.expect("a head");
                }
            }
            assert!(
                Instant::now() < deadline,
                "replica {id} did not reach height {height} within {DEADLINE:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The head of every running replica once all have applied `height`: they must agree.
    pub(crate) async fn heads_agree(&self, height: u64) -> HeadView {
        let mut heads = Vec::new();
        for replica in self.replicas.iter().filter(|r| r.running()) {
            heads.push((replica.id, self.caught_up(replica.id, height).await));
        }
        // The same height everywhere first (a replica may still be applying the last block).
        let top = heads.iter().map(|(_, h)| h.height).max().unwrap();
        let mut agreed = Vec::new();
        for (id, _) in heads {
            agreed.push((id, self.caught_up(id, top).await));
        }
        let (_, first) = &agreed[0];
        for (id, head) in &agreed[1..] {
            assert_eq!(
                (head.height, head.hash, head.txs_total),
                (first.height, first.hash, first.txs_total),
                "replica {id}'s head differs from replica {}'s",
                agreed[0].0
            );
        }
        first.clone()
    }

    /// Stops every replica, exports each chain, and checks the exports are byte-identical
    /// and that `machi-node verify` passes on each. Returns the verify report (JSON).
    pub(crate) async fn stop_export_verify(&mut self) -> serde_json::Value {
        self.stop_all().await;
        let mut exports = Vec::new();
        for replica in &self.replicas {
            let out = self.work.path().join(format!("r{}.export.jsonl", replica.id));
            machi_node(&["export", "--data-dir", path_str(&replica.dir), "--out", path_str(&out)]);
            exports.push((replica.id, out));
        }
        let first = std::fs::read(&exports[0].1).unwrap();
        for (id, path) in &exports[1..] {
            let other = std::fs::read(path).unwrap();
            assert!(
                other == first,
                "replica {id}'s export ({} bytes) differs from replica {}'s ({} bytes)",
                other.len(),
                exports[0].0,
                first.len()
            );
        }
        let mut reports = Vec::new();
        for (_, path) in &exports {
            let text = machi_node(&["verify", path_str(path), "--format", "json"]);
            let report: serde_json::Value = serde_json::from_str(&text).expect("verify prints JSON");
            assert_eq!(report["invariant_held_every_block"], true, "{report}");
            reports.push(report);
        }
        reports.remove(0)
    }

    /// Stops replica `id` and copies its data folder to `to` (a backup taken while stopped).
    pub(crate) async fn backup(&mut self, id: u64, to: &Path) {
        self.stop(id).await;
        copy_dir(&self.at(id).dir, to);
    }

    /// Puts a backup in place of replica `id`'s data folder (the replica is stopped).
    pub(crate) fn restore(&mut self, id: u64, from: &Path) {
        let dir = self.at(id).dir.clone();
        assert!(!self.at(id).running(), "stop replica {id} first");
        std::fs::remove_dir_all(&dir).unwrap();
        copy_dir(from, &dir);
    }

    /// Replica `id` loses its data folder (it is stopped); its producer key is put back
    /// and the chain started again from the town's genesis, as docs/OPERATIONS.md says.
    pub(crate) fn wipe(&mut self, id: u64) {
        let dir = self.at(id).dir.clone();
        assert!(!self.at(id).running(), "stop replica {id} first");
        let key = std::fs::read(dir.join("keys/producer.key")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let key_path = dir.join("keys/producer.key");
        std::fs::write(&key_path, key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let genesis = self.work.path().join("genesis.json");
        machi_node(&["init", "--data-dir", path_str(&dir), "--genesis", path_str(&genesis)]);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            if let Some(mut child) = replica.child().take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            for replica in &self.replicas {
                // Backtrace frames (indented) are left out; the whole log stays on disk.
                let text = std::fs::read_to_string(&replica.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                eprintln!(
                    "---- replica {} log (last {} lines) ----\n{}",
                    replica.id,
                    tail.len(),
                    tail.join("\n")
                );
            }
            // Kept for a look at the data folders and whole logs.
            let work = std::mem::replace(&mut self.work, tempfile::tempdir().expect("temp dir"));
            eprintln!("the cluster's folder is kept: {}", work.keep().display());
        }
    }
}
