//! Three replicas as real `machi-node` processes on loopback, under a load of clients that
//! write through every replica (followers forward to the leader): the leader killed with
//! SIGKILL, the leader cut off from the others by a proxy on the Raft traffic, a replica
//! wiped and one restored from an old backup. Each ends with every replica stopped,
//! exported and verified: the exports byte-identical, every acknowledged transaction in
//! them once, and every transaction a client sent committed exactly once.
//!
//! `MACHI_CLUSTER_CYCLES` sets the number of leader kills in `leader_kill_cycles`
//! (default 3); scripts/cluster-cycles.sh runs a long one in a release build.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use machi_api::TxStatus;
use machi_client::{sign, Client, ClientError};
use machi_ledger::{Action, ShopClass, SignedTx, SigningKey, TxId};

use crate::harness::{id, new_key};
use crate::processes::{Cluster, DEADLINE, POLL};

/// The cluster tests run one at a time: each runs three replicas and a load, and the
/// election timing they check needs the machine's two cores.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Clients writing at once, each one transaction at a time.
const WORKERS: usize = 4;
/// Acknowledgements between two faults.
const ACKS_BETWEEN: usize = 40;
/// Longest one client keeps sending the same transaction before the test fails.
const TX_DEADLINE: Duration = Duration::from_secs(60);
/// How far behind the leader a follower may be when the leader is killed.
const FOLLOWER_LAG_BLOCKS_MAX: u64 = 50;
/// Look-ups of acknowledged transactions in flight at once, per replica.
const LOOKUPS_AT_ONCE: usize = 16;

/// A transaction that any town can take at once: the town registers a shop.
fn shop_tx(chain_id: &str, town: &SigningKey) -> SignedTx {
    sign(
        chain_id,
        town,
        Action::RegisterShop { shop: id(&new_key()), name: "店".into(), class: ShopClass::Local },
    )
}

/// A transaction a client was told is applied.
#[derive(Clone, Debug)]
struct Ack {
    id: TxId,
    height: u64,
    /// The replica that answered.
    url: String,
    /// When the client first sent it (later sends are the same signed bytes).
    first_sent: Instant,
    acked_at: Instant,
}

#[derive(Default)]
struct Books {
    acks: Vec<Ack>,
    /// Answers that said "not now" (no leader, not confirmed, connection lost…), by code:
    /// each was followed by sending the same transaction again.
    errors: BTreeMap<String, u64>,
    /// Transactions signed; every one must end applied.
    sent: u64,
}

impl Books {
    fn max_height(&self) -> u64 {
        self.acks.iter().map(|a| a.height).max().unwrap_or(0)
    }
}

/// Clients writing through every replica until stopped. Each signs a transaction and sends
/// it until a replica says it is applied, moving to the next replica after an error and
/// always sending the same signed bytes, so a transaction commits at most once.
struct Load {
    stop: Arc<AtomicBool>,
    books: Arc<Mutex<Books>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cluster: &Cluster) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let books = Arc::new(Mutex::new(Books::default()));
        let urls = cluster.urls();
        let workers = (0..WORKERS)
            .map(|n| {
                let (chain_id, town) = (cluster.chain_id.clone(), cluster.town.clone());
                let client = |u: &String| {
                    Client::with_timeout(u, Duration::from_secs(30))
                        .reading_as(town.clone(), "machi-node tests")
                };
                let clients: Vec<Client> = urls.iter().map(client).collect();
                tokio::spawn(write_until_stopped(n, clients, chain_id, town, stop.clone(), books.clone()))
            })
            .collect();
        Load { stop, books, workers }
    }

    fn acked(&self) -> usize {
        self.books.lock().unwrap().acks.len()
    }

    fn max_height(&self) -> u64 {
        self.books.lock().unwrap().max_height()
    }

    fn acks(&self) -> Vec<Ack> {
        self.books.lock().unwrap().acks.clone()
    }

    /// Waits until `count` transactions have been acknowledged in all.
    async fn acked_at_least(&self, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.acked() < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} acknowledged within {DEADLINE:?}",
                self.acked()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The first acknowledgement of a transaction first sent after `since`: such a
    /// transaction was committed by a leader that led after `since`.
    async fn first_fresh_ack(&self, since: Instant) -> Ack {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let fresh = self
                .books
                .lock()
                .unwrap()
                .acks
                .iter()
                .filter(|a| a.first_sent > since)
                .min_by_key(|a| a.acked_at)
                .cloned();
            if let Some(ack) = fresh {
                return ack;
            }
            assert!(Instant::now() < deadline, "nothing committed within {DEADLINE:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the clients once each has its last transaction answered.
    async fn finish(self) -> Books {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.await.expect("a client failed");
        }
        let books = std::mem::take(&mut *self.books.lock().unwrap());
        assert_eq!(books.acks.len() as u64, books.sent, "every transaction sent ends applied");
        books
    }
}

async fn write_until_stopped(
    n: usize,
    clients: Vec<Client>,
    chain_id: String,
    town: SigningKey,
    stop: Arc<AtomicBool>,
    books: Arc<Mutex<Books>>,
) {
    let mut at = n % clients.len();
    while !stop.load(Ordering::SeqCst) {
        let tx = shop_tx(&chain_id, &town);
        let tx_id = tx.id(&chain_id);
        books.lock().unwrap().sent += 1;
        let first_sent = Instant::now();
        loop {
            let client = &clients[at];
            let error = match client.submit(&tx).await {
                Ok(result) if result.status == TxStatus::Applied => {
                    assert_eq!(result.tx_id, tx_id);
                    let ack = Ack {
                        id: tx_id,
                        height: result.height.expect("an applied transaction has a height"),
                        url: client.base().to_string(),
                        first_sent,
                        acked_at: Instant::now(),
                    };
                    books.lock().unwrap().acks.push(ack);
                    break;
                }
                Ok(result) if result.is_transient_refusal() => {
                    result.reason.map_or("refused".to_string(), |code| code.name().to_string())
                }
                Ok(result) => panic!("{tx_id}: {result:?}"),
                Err(e @ (ClientError::Decode(_) | ClientError::Api { status: 400..=499, .. })) => {
                    panic!("{tx_id} sent to {}: {e}", client.base())
                }
                Err(e) => e.code().to_string(),
            };
            *books.lock().unwrap().errors.entry(error).or_default() += 1;
            assert!(first_sent.elapsed() < TX_DEADLINE, "{tx_id} not applied within {TX_DEADLINE:?}");
            at = (at + 1) % clients.len();
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Sends `tx` (the same signed bytes every time) to the replicas in turn until one says it
/// is applied; returns its height.
async fn resend_until_applied(cluster: &Cluster, tx: &SignedTx) -> u64 {
    let tx_id = tx.id(&cluster.chain_id);
    let ids = cluster.ids();
    let deadline = Instant::now() + TX_DEADLINE;
    for turn in 0.. {
        let replica = ids[turn % ids.len()];
        match cluster.client(replica).submit(tx).await {
            Ok(result) if result.status == TxStatus::Applied => return result.height.unwrap(),
            Ok(result) => assert!(result.is_transient_refusal(), "{tx_id}: {result:?}"),
            Err(e) => assert!(
                !matches!(e, ClientError::Decode(_) | ClientError::Api { status: 400..=499, .. }),
                "{tx_id}: {e}"
            ),
        }
        assert!(Instant::now() < deadline, "{tx_id} not applied within {TX_DEADLINE:?}");
        tokio::time::sleep(POLL).await;
    }
    unreachable!()
}

/// Every `(id, height)` is on every replica, applied at that height.
async fn on_every_replica(cluster: &Cluster, txs: &[(TxId, u64)]) {
    let unique: HashSet<TxId> = txs.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), txs.len(), "a transaction was acknowledged twice");
    for replica in cluster.ids() {
        let client = cluster.client(replica).clone();
        let found: Vec<_> = futures_util::stream::iter(txs.iter().copied())
            .map(|(tx_id, height)| {
                let client = client.clone();
                async move { (tx_id, height, client.tx(&tx_id).await) }
            })
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .collect()
            .await;
        for (tx_id, height, tx) in found {
            let tx = tx.unwrap_or_else(|e| {
                panic!("replica {replica}: acknowledged {tx_id} (block {height}) lost: {e}")
            });
            assert_eq!((tx.result.status, tx.result.height), (TxStatus::Applied, Some(height)), "{tx_id}");
        }
    }
}

fn ack_pairs(acks: &[Ack]) -> Vec<(TxId, u64)> {
    acks.iter().map(|a| (a.id, a.height)).collect()
}

/// The end of every test: the load stopped with every transaction answered, the heads
/// agreeing, every acknowledged transaction on every replica, and the chain holding
/// exactly the transactions sent (genesis's `base`, the load's, and `extra`); then every
/// replica stopped, exported and verified, the exports byte-identical.
async fn finish(cluster: &mut Cluster, load: Load, base: u64, extra: &[(TxId, u64)]) -> Books {
    let books = load.finish().await;
    let top = extra.iter().map(|(_, h)| *h).max().unwrap_or(0).max(books.max_height());
    let head = cluster.heads_agree(top).await;
    let mut all = ack_pairs(&books.acks);
    all.extend_from_slice(extra);
    assert_eq!(head.txs_total, base + all.len() as u64, "the chain holds every transaction sent, once");
    on_every_replica(cluster, &all).await;
    let report = cluster.stop_export_verify().await;
    assert_eq!(
        (report["height"].as_u64(), report["txs"].as_u64()),
        (Some(head.height), Some(head.txs_total))
    );
    books
}

fn summary(label: &str, books: &Books, failovers: &[Duration]) {
    let mut sorted = failovers.to_vec();
    sorted.sort();
    let ms = |d: Option<&Duration>| d.map_or(0, |d| d.as_millis());
    eprintln!(
        "{label}: {} leader kills, {} transactions applied ({} answers said not now: {:?}); failover ms min {} \
         median {} max {}; all: {:?}",
        failovers.len(),
        books.acks.len(),
        books.errors.values().sum::<u64>(),
        books.errors,
        ms(sorted.first()),
        ms(sorted.get(sorted.len() / 2)),
        ms(sorted.last()),
        failovers.iter().map(Duration::as_millis).collect::<Vec<_>>()
    );
}

/// Kills the leader `cycles` times under load, restarting it each time and waiting until
/// it has caught up; returns the time from each kill to the next commit (the first
/// acknowledgement of a transaction first sent after the kill).
async fn kill_leader_cycles(cluster: &mut Cluster, load: &Load, cycles: u32) -> Vec<Duration> {
    let mut failovers = Vec::new();
    for cycle in 0..cycles {
        // Killed at a varying moment, once this cycle has had some acknowledgements and
        // every follower is up to date (a follower still catching up when the leader goes
        // is a second fault: it may campaign first and lose, costing an election timeout).
        load.acked_at_least(load.acked() + ACKS_BETWEEN + rand::random::<usize>() % ACKS_BETWEEN).await;
        cluster.in_step(FOLLOWER_LAG_BLOCKS_MAX).await;
        let leader = cluster.leader(None, &[]).await;
        let term_before = cluster.cluster_view(leader).await.map_or(0, |v| v.term);
        let killed_at = cluster.kill9(leader);
        // The two replicas left agree on a leader, and a write commits.
        let elected = async {
            let new_leader = cluster.leader(Some(leader), &[]).await;
            (new_leader, killed_at.elapsed())
        };
        let (next, (new_leader, elected_after)) = tokio::join!(load.first_fresh_ack(killed_at), elected);
        let failover = next.acked_at - killed_at;
        let term_after = cluster.cluster_view(new_leader).await.map_or(0, |v| v.term);
        eprintln!(
            "cycle {cycle}: killed leader {leader} in term {term_before}; replica {new_leader} leads in term \
             {term_after}, seen after {elected_after:?}; next commit after {failover:?} (via {})",
            next.url
        );
        failovers.push(failover);
        cluster.start(leader).await;
        cluster.caught_up(leader, load.max_height()).await;
    }
    // Writes go on with every replica back.
    load.acked_at_least(load.acked() + ACKS_BETWEEN).await;
    failovers
}

/// kill -9 of the leader under load: a new leader commits within 2 s; no acknowledged
/// transaction is lost, and every transaction sent (again after errors, the same bytes)
/// commits once; the killed replica restarts and catches up; the exports are identical
/// and verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_leader_under_load() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::create("kill-town", 3, false).await;
    cluster.start_all().await;
    let base = cluster.heads_agree(0).await.txs_total;
    let load = Load::start(&cluster);
    let failovers = kill_leader_cycles(&mut cluster, &load, 1).await;
    let books = finish(&mut cluster, load, base, &[]).await;
    // The time to the next commit is printed; the failover goal (2 s) is measured by the
    // long run (scripts/cluster-cycles.sh, docs/RELIABILITY.md), not asserted here.
    summary("kill -9 of the leader", &books, &failovers);
}

/// Bounded leader kill/restart cycles under load (`MACHI_CLUSTER_CYCLES`, default 3): no
/// acknowledged transaction lost, identical exports at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_cycles() {
    let cycles: u32 = std::env::var("MACHI_CLUSTER_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::create("cycle-town", 3, false).await;
    cluster.start_all().await;
    let base = cluster.heads_agree(0).await.txs_total;
    let load = Load::start(&cluster);
    let failovers = kill_leader_cycles(&mut cluster, &load, cycles).await;
    let books = finish(&mut cluster, load, base, &[]).await;
    summary("leader kill cycles", &books, &failovers);
}

/// Followers killed with SIGKILL at varying moments under load (`MACHI_CLUSTER_CYCLES`
/// × 3, default 9), each restarted at once: every restart serves and catches up (a kill
/// lands anywhere in applying a block: the block log, the Raft log, the state machine's
/// meta), and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_killed_at_any_moment_restart_and_catch_up() {
    let kills = 3 * std::env::var("MACHI_CLUSTER_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(3u32);
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::create("follower-town", 3, false).await;
    cluster.start_all().await;
    let base = cluster.heads_agree(0).await.txs_total;
    let load = Load::start(&cluster);
    load.acked_at_least(ACKS_BETWEEN).await;
    for kill in 0..kills {
        let leader = cluster.leader(None, &[]).await;
        let followers: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();
        let follower = followers[kill as usize % followers.len()];
        // Killed a varying time into applying the load's blocks.
        let acked = load.acked();
        load.acked_at_least(acked + 1 + rand::random::<usize>() % 8).await;
        cluster.kill9(follower);
        cluster.start(follower).await;
        cluster.caught_up(follower, load.max_height()).await;
    }
    let acked = load.acked();
    load.acked_at_least(acked + ACKS_BETWEEN).await;
    let books = finish(&mut cluster, load, base, &[]).await;
    eprintln!("{kills} followers killed and restarted; {} transactions applied", books.acks.len());
}

/// The leader cut off from both others (its connections to them and theirs to it): it
/// acknowledges nothing sent to it; the two others elect a leader and commit; after
/// healing the old leader follows and catches up, and what its clients were refused
/// commits exactly once when sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_acknowledges_nothing_and_the_majority_goes_on() {
    const PROBES: usize = 6;
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::create("partition-town", 3, true).await;
    cluster.start_all().await;
    let base = cluster.heads_agree(0).await.txs_total;
    let load = Load::start(&cluster);
    load.acked_at_least(ACKS_BETWEEN).await;
    // The leader every replica follows (a cut in a cluster's first elections could
    // isolate a replica the others already left).
    let old = cluster.settled().await;
    let ids = cluster.ids();
    let majority: Vec<u64> = ids.iter().copied().filter(|i| *i != old).collect();
    let net = cluster.net.as_ref().expect("proxies");
    net.isolate(old, &ids);
    let cut_at = Instant::now();

    // Writes sent straight to the isolated leader, while the others elect and go on.
    let probes: Vec<SignedTx> = (0..PROBES).map(|_| shop_tx(&cluster.chain_id, &cluster.town)).collect();
    let sent_to_old = {
        let client = cluster.client(old).clone();
        let probes = probes.clone();
        tokio::spawn(async move {
            let answers = probes.iter().map(|tx| client.submit(tx));
            futures_util::future::join_all(answers).await
        })
    };
    let new = cluster.leader(Some(old), &majority).await;
    let next = load.first_fresh_ack(cut_at).await;
    assert_ne!(next.url, cluster.url(old), "the isolated leader acknowledged {next:?}");
    eprintln!(
        "replica {old} cut off; replica {new} leads the others; their first commit came {:?} after the cut",
        next.acked_at - cut_at
    );
    let acked = load.acked();
    load.acked_at_least(acked + ACKS_BETWEEN).await;
    let mut refusals = BTreeMap::<String, u32>::new();
    for (tx, answer) in probes.iter().zip(sent_to_old.await.unwrap()) {
        let tx_id = tx.id(&cluster.chain_id);
        let code = match answer {
            Ok(result) => {
                assert!(result.is_transient_refusal(), "the isolated leader answered {result:?}");
                result.reason.expect("a refusal has a code").name().to_string()
            }
            Err(e) => {
                assert!(
                    matches!(e, ClientError::Api { status: 503, .. } | ClientError::NoAnswer(..)),
                    "{tx_id}: {e}"
                );
                e.code().to_string()
            }
        };
        *refusals.entry(code).or_default() += 1;
    }
    eprintln!("the isolated leader answered the writes sent to it: {refusals:?}");
    let asked = Instant::now();
    let old_view = cluster.cluster_view(old).await;
    eprintln!("the isolated replica's view before healing (answered in {:?}): {old_view:?}", asked.elapsed());
    // Both directions were cut: the old leader's heartbeats, and the others' votes or
    // the new leader's entries.
    let cut_from: u64 = majority.iter().map(|other| net.cut_on(old, *other)).sum();
    let cut_to: u64 = majority.iter().map(|other| net.cut_on(*other, old)).sum();
    assert!(cut_from > 0 && cut_to > 0, "connections cut from {old}: {cut_from}, to it: {cut_to}");
    let heal_at = Instant::now();
    net.heal();
    eprintln!(
        "healed; connections of unknown owner held or cut: {}",
        cluster.net.as_ref().unwrap().cut_unowned()
    );

    // The old leader follows the new one and catches up.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let view = cluster.cluster_view(old).await;
        let follows = view.as_ref().is_some_and(|v| {
            v.leader.is_some_and(|l| l != old)
                && v.members.iter().any(|m| m.id == old && m.role == "follower")
        });
        if follows {
            break;
        }
        assert!(Instant::now() < deadline, "replica {old} did not step down within {DEADLINE:?}: {view:?}");
        tokio::time::sleep(POLL).await;
    }
    cluster.caught_up(old, load.max_height()).await;
    let acked = load.acked();
    load.acked_at_least(acked + ACKS_BETWEEN).await;

    // Nothing first sent after the cut was acknowledged by the old leader while cut off.
    let false_acks: Vec<Ack> = load
        .acks()
        .into_iter()
        .filter(|a| a.url == cluster.url(old) && a.first_sent > cut_at && a.acked_at < heal_at)
        .collect();
    assert!(false_acks.is_empty(), "the isolated leader acknowledged {false_acks:?}");

    // What the old leader refused is absent, or on the chain once; sent again, it commits once.
    let mut probes_applied = Vec::new();
    for tx in &probes {
        let tx_id = tx.id(&cluster.chain_id);
        let before = cluster.client(new).lookup(&tx_id).await.expect("look-up");
        let height = resend_until_applied(&cluster, tx).await;
        if let Some(before) = before {
            assert_eq!(before.height, Some(height), "{tx_id} committed twice");
        }
        probes_applied.push((tx_id, height));
    }
    let books = finish(&mut cluster, load, base, &probes_applied).await;
    summary("partition", &books, &[]);
}

/// A replica wiped (its data folder deleted; its producer key put back and the chain
/// started again from the town's genesis) and one restored from an old backup of its
/// data folder both catch up while the others write, and end with the same chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_replica_and_one_restored_from_an_old_backup_catch_up() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::create("restore-town", 3, false).await;
    cluster.start_all().await;
    let base = cluster.heads_agree(0).await.txs_total;
    let load = Load::start(&cluster);
    load.acked_at_least(ACKS_BETWEEN).await;
    let leader = cluster.leader(None, &[]).await;
    let term = |view: Option<machi_api::ClusterView>| view.map_or(0, |v| v.term);
    let term_before = term(cluster.cluster_view(leader).await);
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();
    let (restored, wiped) = (followers[0], followers[1]);

    // A backup of one follower, taken while it is stopped; it runs on and the chain grows.
    let backup = cluster.work.path().join("backup");
    let backup_height = cluster.caught_up(restored, load.max_height()).await.height;
    cluster.backup(restored, &backup).await;
    cluster.start(restored).await;
    let acked = load.acked();
    load.acked_at_least(acked + 2 * ACKS_BETWEEN).await;

    // The other follower is wiped and starts again from genesis.
    cluster.stop(wiped).await;
    cluster.wipe(wiped);
    cluster.start(wiped).await;
    let head = cluster.caught_up(wiped, load.max_height()).await;
    eprintln!("wiped replica {wiped} caught up to {}", head.height);
    let acked = load.acked();
    load.acked_at_least(acked + ACKS_BETWEEN).await;

    // The first follower goes back to its old backup.
    cluster.stop(restored).await;
    cluster.restore(restored, &backup);
    cluster.start(restored).await;
    let head = cluster.caught_up(restored, load.max_height()).await;
    assert!(head.height > backup_height, "the backup is older than the chain");
    eprintln!("replica {restored} restored at block {backup_height}, caught up to {}", head.height);
    let acked = load.acked();
    load.acked_at_least(acked + ACKS_BETWEEN).await;
    let term_after = term(cluster.cluster_view(leader).await);
    eprintln!("Raft term {term_before} before the backup, {term_after} at the end");
    let books = finish(&mut cluster, load, base, &[]).await;
    summary("wipe and restore", &books, &[]);
}
