//! Three whole nodes in one process, each with its own block log (in memory, with a disk
//! that can be made to fail), Raft log (on disk), HTTP API and replica listener on
//! loopback: what a lying leader and a failing disk do to the cluster. The harness can do
//! what the product never can: hand Raft a forged block as the leader.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::Signer as _;
use machi_api::{HealthView, TxResultView, TxStatus};
use machi_ledger::{
    roots, AccountId, Action, Block, BlockHeader, Outcome, Replica, ShopClass, SignedTx, SigningKey, TxBody,
};
use tokio::net::TcpListener;

use super::BlockProposal;
use crate::storage::{FaultyFile, LogFile};
use crate::{Node, SystemClock};

const CHAIN: &str = "cluster-test";
/// Every wait in these tests ends by this deadline, or the test fails.
const DEADLINE: Duration = Duration::from_secs(40);

struct Member {
    key: SigningKey,
    file: FaultyFile,
    shared: Arc<crate::Shared>,
    replicas: Arc<super::replication::Replicas>,
    api: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Member {
    /// Starts a whole node on `genesis`; `joining`: the id of a replica the chain does not
    /// name yet.
    async fn start(
        genesis: &Block,
        key: SigningKey,
        api: TcpListener,
        raft: TcpListener,
        joining: Option<u64>,
        clock: Arc<dyn crate::Clock>,
    ) -> Member {
        let file = FaultyFile::default();
        crate::chain::Chain::create(Box::new(file.clone()), genesis).unwrap();
        let dir = tempfile::tempdir().unwrap();
        if let Some(id) = joining {
            std::fs::write(dir.path().join("replica-id"), format!("{id}\n")).unwrap();
        }
        let reopen = {
            let file = file.clone();
            Box::new(move || Ok(Box::new(file.clone()) as Box<dyn LogFile>)) as crate::ReopenLog
        };
        let node = Node::open_with(reopen, dir.path(), key.clone(), clock).unwrap();
        let (shared, replicas) = (node.shared.clone(), node.replicas.clone());
        let api_url = format!("http://{}", api.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(node.serve_replica(api, raft, Default::default(), async {
            let _ = stopped.await;
        }));
        Member {
            key,
            file,
            shared,
            replicas,
            api: api_url,
            stop: Some(stop),
            served: Some(served),
            _dir: dir,
        }
    }
}

struct Cluster {
    town: SigningKey,
    genesis: Block,
    /// The replica set as the town last named it.
    replicas: Vec<Replica>,
    members: Vec<Member>,
    http: reqwest::Client,
    nonce: std::sync::atomic::AtomicU64,
}

impl Cluster {
    async fn start(size: usize) -> Cluster {
        Cluster::start_with_clocks(
            (0..size).map(|_| Arc::new(SystemClock) as Arc<dyn crate::Clock>).collect(),
        )
        .await
    }

    async fn start_with_clocks(clocks: Vec<Arc<dyn crate::Clock>>) -> Cluster {
        let size = clocks.len();
        let town = crate::keys::generate();
        let keys: Vec<SigningKey> = (0..size).map(|_| crate::keys::generate()).collect();
        let mut listeners = Vec::new();
        let mut replicas = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let raft = TcpListener::bind("127.0.0.1:0").await.unwrap();
            replicas.push(Replica {
                id: i as u64 + 1,
                name: format!("replica {}", i + 1),
                api_addr: api.local_addr().unwrap().to_string(),
                raft_addr: raft.local_addr().unwrap().to_string(),
                producer: AccountId::of(key),
                voter: true,
            });
            listeners.push((api, raft));
        }
        let genesis =
            crate::setup::cluster_genesis(CHAIN, &town, &keys[0], replicas.clone(), crate::now_ms()).unwrap();
        let mut members = Vec::new();
        for ((key, (api, raft)), clock) in keys.into_iter().zip(listeners).zip(clocks) {
            members.push(Member::start(&genesis, key, api, raft, None, clock).await);
        }
        Cluster { town, genesis, replicas, members, http: reqwest::Client::new(), nonce: Default::default() }
    }

    /// The index of the member that leads and may produce, waiting for one.
    async fn leader(&self, not: Option<usize>) -> usize {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let leading = self
                .members
                .iter()
                .enumerate()
                .find(|(i, m)| Some(*i) != not && m.replicas.get().is_some_and(|r| r.can_produce()));
            if let Some((i, _)) = leading {
                return i;
            }
            assert!(tokio::time::Instant::now() < deadline, "no leader within {DEADLINE:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn sign(&self, key: &SigningKey, action: Action) -> SignedTx {
        let body = TxBody {
            chain_id: CHAIN.into(),
            created_ms: crate::now_ms(),
            ttl_ms: 600_000,
            nonce: self.nonce.fetch_add(1, Ordering::Relaxed),
            action,
        };
        SignedTx::sign(CHAIN, key, &body)
    }

    fn register_shop(&self, name: &str) -> SignedTx {
        let shop = AccountId::of(&crate::keys::generate());
        self.sign(&self.town, Action::RegisterShop { shop, name: name.into(), class: ShopClass::Local })
    }

    /// Posts `tx` to member `at`: the result, or the error code of a refusal.
    async fn submit(&self, at: usize, tx: &SignedTx) -> Result<TxResultView, String> {
        let url = format!("{}/v1/transactions", self.members[at].api);
        let response = self.http.post(url).json(tx).send().await.map_err(|e| e.to_string())?;
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        if let Ok(result) = serde_json::from_value::<TxResultView>(body["result"].clone()) {
            return Ok(result);
        }
        serde_json::from_value::<TxResultView>(body.clone()).map_err(|_| body.to_string())
    }

    /// Sends the same `tx` to member `at` until it is committed; its result.
    async fn commit(&self, at: usize, tx: &SignedTx) -> TxResultView {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match self.submit(at, tx).await {
                Ok(result) if result.status == TxStatus::Applied => return result,
                other => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "not committed within {DEADLINE:?}: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// A GET of `path` on member `at` as the town (the everything scope), through a read
    /// session opened there.
    async fn town_get(&self, at: usize, path: &str) -> reqwest::Response {
        let api = &self.members[at].api;
        let http = &self.http;
        let answer = http.post(format!("{api}/v1/auth/challenge")).send().await.unwrap();
        let challenge: machi_api::ReadChallenge = answer.json().await.unwrap();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&challenge.challenge, &mut bytes).unwrap();
        let purpose = "cluster tests";
        let signature = machi_ledger::read_auth::sign(CHAIN, &bytes, &self.town, purpose);
        let request = machi_api::ReadSessionRequest {
            account: AccountId::of(&self.town).to_hex(),
            challenge: challenge.challenge,
            signature: hex::encode(signature),
            purpose: purpose.into(),
        };
        let answer = http.post(format!("{api}/v1/auth/session")).json(&request).send().await.unwrap();
        let session: machi_api::ReadSession = answer.json().await.unwrap();
        http.get(format!("{api}{path}")).bearer_auth(session.token).send().await.unwrap()
    }

    async fn health(&self, at: usize) -> HealthView {
        let url = format!("{}/v1/health", self.members[at].api);
        self.http.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// Waits until member `at` has applied block `height`.
    async fn applied(&self, at: usize, height: u64) {
        assert!(
            self.members[at].shared.applied_at_least(height, DEADLINE).await,
            "member {at} did not apply block {height} within {DEADLINE:?}"
        );
    }

    async fn height(&self, at: usize) -> u64 {
        self.members[at].shared.chain.read().await.head.height
    }

    async fn stop(mut self) {
        for member in &mut self.members {
            if let Some(stop) = member.stop.take() {
                let _ = stop.send(());
            }
        }
        for member in &mut self.members {
            if let Some(served) = member.served.take() {
                let _ = served.await.unwrap();
            }
        }
    }
}

/// Waits until `check` holds for member `at`'s health.
async fn health_until(cluster: &Cluster, at: usize, check: impl Fn(&HealthView) -> bool) -> HealthView {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let health = cluster.health(at).await;
        if check(&health) {
            return health;
        }
        assert!(tokio::time::Instant::now() < deadline, "member {at}: {health:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A leader that proposes a block with a forged signature (the town's, made with another
/// key) gets it committed by Raft, which orders blocks and does not judge them; every
/// replica that learns it is committed replays it before applying, refuses it, and halts:
/// it names the block and the reason in `/v1/health`, counts it in `/metrics`, serves the
/// state before the block, and refuses writes. No replica applies it, and the cluster
/// takes no more writes. The lying leader is detected, not outvoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_block_halts_every_replica_that_replays_it() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader(None).await;
    let honest = cluster.register_shop("八百屋");
    assert_eq!(cluster.commit((leader + 1) % 3, &honest).await.height, Some(1));
    for at in 0..3 {
        cluster.applied(at, 1).await;
    }

    // The leader's producer key signs a block holding a "town" transaction signed by
    // another key: every header field is right, only the transaction's signature lies.
    let forger = crate::keys::generate();
    let mut forged_tx = cluster.register_shop("偽の店");
    forged_tx.signature = forger.sign(&forged_tx.body).to_bytes();
    let head = cluster.members[leader].shared.chain.read().await.head.clone();
    let outcomes = vec![Outcome::Applied];
    let (tx_root, outcome_root) = roots(&[forged_tx.id(CHAIN)], &outcomes);
    let header = BlockHeader {
        chain_id: CHAIN.into(),
        height: head.height + 1,
        prev_hash: head.hash(),
        timestamp_ms: head.timestamp_ms + 1,
        tx_count: 1,
        tx_root,
        outcome_root,
        producer: AccountId::of(&cluster.members[leader].key),
    };
    let signature = cluster.members[leader].key.sign(&header.hash().0).to_bytes();
    let forged = Block { header, signature, txs: vec![forged_tx.clone()], outcomes };
    let raft = cluster.members[leader].replicas.get().unwrap().raft.clone();
    let _ = raft.client_write(BlockProposal::new(&forged).unwrap()).await;

    // The leader applies the block once a follower holds it, and halts. A follower that
    // learns the block is committed halts too; a follower that cannot learn it (the only
    // one left running, with no majority) never applies it and takes no writes either.
    let followers: Vec<usize> = (0..3).filter(|at| *at != leader).collect();
    let mut halted = vec![leader];
    health_until(&cluster, leader, |h| h.status == "halted").await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !followers.iter().any(|at| halted.contains(at)) {
        for at in &followers {
            if cluster.health(*at).await.status == "halted" {
                halted.push(*at);
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no follower halted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for at in 0..3 {
        let health = cluster.health(at).await;
        assert_eq!(health.height, 1, "member {at} serves the state before the forged block: {health:?}");
        assert_eq!(cluster.height(at).await, 1);
        let refused = cluster.submit(at, &cluster.register_shop("後の店")).await;
        if health.status != "halted" {
            assert_ne!(health.role, "leader", "member {at} cannot lead without a majority");
            assert!(
                refused.as_ref().is_err_and(|e| e.contains("no_leader") || e.contains("halted")),
                "member {at} takes no writes: {refused:?}"
            );
            continue;
        }
        let halt = health.halted.expect("the halt is described");
        assert_eq!(halt.height, 2, "member {at} names the forged block");
        assert!(halt.reason.contains("signature"), "member {at} names the reason: {}", halt.reason);
        assert_eq!(health.role, "halted");
        let metrics = cluster.http.get(format!("{}/metrics", cluster.members[at].api)).send().await.unwrap();
        assert!(
            metrics.text().await.unwrap().contains("machi_replica_halted 1"),
            "member {at} says so in /metrics"
        );
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("halted")),
            "member {at} takes no writes: {refused:?}"
        );
    }
    let path = format!("/v1/transactions/{}", forged_tx.id(CHAIN));
    assert_eq!(cluster.town_get(0, &path).await.status(), 404, "the forged transaction is nowhere");
    cluster.stop().await;
}

/// A follower whose disk refuses writes falls behind while the other two commit; when the
/// disk works again it catches up. A leader whose disk refuses writes acknowledges
/// nothing; after retrying for a while it halts, the other two elect a leader and go on,
/// and a transaction sent again commits exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_stops_only_its_replica() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader(None).await;
    let (follower, other) = ((leader + 1) % 3, (leader + 2) % 3);

    cluster.members[follower].file.fail_sync.store(true, Ordering::SeqCst);
    for i in 0..3 {
        let result = cluster.commit(leader, &cluster.register_shop(&format!("店{i}"))).await;
        assert_eq!(result.height, Some(i + 1), "the leader and the other follower commit");
    }
    cluster.applied(other, 3).await;
    assert_eq!(cluster.height(follower).await, 0, "the follower with the failing disk applied nothing");
    // The town's dashboard, on any replica, shows who leads and how far each has applied.
    let page = cluster.http.get(format!("{}/", cluster.members[other].api)).send().await.unwrap();
    let page = page.text().await.unwrap();
    let row = |i: usize, role: &str, height: u64| {
        format!("<tr><th>replica {}</th><td>{role}</td><td>{height}</td>", i + 1)
    };
    assert!(page.contains(&row(leader, "<span class=\"ok\">代表 <small>leader</small></span>", 3)), "{page}");
    assert!(page.contains(&row(follower, "追従 <small>follower</small>", 0)), "{page}");
    cluster.members[follower].file.fail_sync.store(false, Ordering::SeqCst);
    cluster.applied(follower, 3).await;
    assert_eq!(cluster.health(follower).await.status, "ok", "and it recovered with its disk");

    cluster.members[leader].file.fail_sync.store(true, Ordering::SeqCst);
    let tx = cluster.register_shop("店3");
    let first = cluster.submit(leader, &tx).await;
    assert!(
        first.as_ref().is_err() || first.as_ref().is_ok_and(|r| r.status != TxStatus::Applied),
        "a leader whose disk fails acknowledges nothing: {first:?}"
    );
    let result = cluster.commit(other, &tx).await;
    assert_eq!(result.height, Some(4));
    let new_leader = cluster.leader(Some(leader)).await;
    assert_ne!(new_leader, leader);
    let halted = health_until(&cluster, leader, |h| h.status == "halted").await;
    assert!(halted.halted.unwrap().reason.contains("block log"));
    for at in [follower, other] {
        cluster.applied(at, 4).await;
    }
    let again = cluster.commit(new_leader, &cluster.register_shop("店4")).await;
    assert_eq!(again.height, Some(5), "the two go on; the block with the resent transaction is not repeated");
    let path = format!("/v1/transactions/{}", tx.id(CHAIN));
    let view: serde_json::Value = cluster.town_get(other, &path).await.json().await.unwrap();
    assert_eq!(view["height"], 4, "committed once, in block 4: {view}");
    cluster.stop().await;
}

/// The town adds an auditor to a running cluster: the auditor starts from the genesis
/// with the id the town gives it, the town's `set_replicas` names it as a learner, the
/// leader adds it, and it catches up, verifying every block, and follows what comes
/// next without voting. Then the town retires one voter; the other two go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_town_adds_an_auditor_and_retires_a_replica() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(None).await;
    for i in 0..3 {
        cluster.commit(leader, &cluster.register_shop(&format!("店{i}"))).await;
    }

    let key = crate::keys::generate();
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raft = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auditor = Replica {
        id: 4,
        name: "auditor".into(),
        api_addr: api.local_addr().unwrap().to_string(),
        raft_addr: raft.local_addr().unwrap().to_string(),
        producer: AccountId::of(&key),
        voter: false,
    };
    let member = Member::start(&cluster.genesis, key, api, raft, Some(4), Arc::new(SystemClock)).await;
    cluster.members.push(member);
    let mut replicas = cluster.replicas.clone();
    replicas.push(auditor);
    let named = cluster.sign(&cluster.town, Action::SetReplicas { replicas: replicas.clone() });
    let named_at = cluster.commit(leader, &named).await.height.unwrap();
    cluster.applied(3, named_at).await;
    let next = cluster.commit(leader, &cluster.register_shop("後の店")).await.height.unwrap();
    cluster.applied(3, next).await;
    let view: machi_api::ClusterView = cluster
        .http
        .get(format!("{}/v1/cluster", cluster.members[3].api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let me = view.members.iter().find(|m| m.id == 4).expect("the auditor is a member");
    assert_eq!((me.role.as_str(), me.voter, me.applied_height), ("learner", false, Some(next)), "{view:?}");
    assert_eq!(view.leader, Some(leader as u64 + 1));

    // Retire a voter that does not lead: the set without it, signed by the town.
    let retired = (leader + 1) % 3;
    let without: Vec<Replica> = replicas.into_iter().filter(|r| r.id != retired as u64 + 1).collect();
    let retire = cluster.sign(&cluster.town, Action::SetReplicas { replicas: without });
    cluster.commit(leader, &retire).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let raft = cluster.members[leader].replicas.get().unwrap().raft.clone();
    while raft.metrics().borrow().membership_config.membership().get_node(&(retired as u64 + 1)).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the retired replica is still a member");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stop the retired replica: a majority of the two voters left still commits.
    let member = &mut cluster.members[retired];
    let _ = member.stop.take().unwrap().send(());
    let _ = member.served.take().unwrap().await.unwrap();
    let last = cluster.commit(leader, &cluster.register_shop("最後の店")).await.height.unwrap();
    cluster.applied(3, last).await;
    for at in (0..3).filter(|at| *at != retired) {
        cluster.applied(at, last).await;
    }
    cluster.stop().await;
}

/// Block times never go back across a change of leader, even when the new leader's clock
/// is behind the old one's: a block's time is at least its parent's, and every replica
/// checks it in replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_times_never_go_back_across_a_leader_change() {
    let start = crate::now_ms();
    let clocks: Vec<Arc<crate::ManualClock>> =
        (0..3).map(|_| Arc::new(crate::ManualClock::new(start))).collect();
    let mut cluster =
        Cluster::start_with_clocks(clocks.iter().map(|c| c.clone() as Arc<dyn crate::Clock>).collect()).await;
    let leader = cluster.leader(None).await;
    clocks[leader].set(start + 20_000);
    let first = cluster.commit(leader, &cluster.register_shop("早い時計の店")).await.height.unwrap();
    let early = cluster.members[leader].shared.chain.read().await.head.timestamp_ms;
    assert!(early >= start + 20_000, "the leader's clock runs 20 s ahead of the others'");

    let member = &mut cluster.members[leader];
    let _ = member.stop.take().unwrap().send(());
    let _ = member.served.take().unwrap().await.unwrap();
    let next = cluster.leader(Some(leader)).await;
    let second = cluster.commit(next, &cluster.register_shop("遅い時計の店")).await.height.unwrap();
    assert_eq!(second, first + 1);
    let later = cluster.members[next].shared.chain.read().await.head.timestamp_ms;
    assert!(later >= early, "block {second} at {later} is not earlier than block {first} at {early}");
    let other = (0..3).find(|at| *at != leader && *at != next).unwrap();
    cluster.applied(other, second).await;
    cluster.stop().await;
}

/// A write sent to a follower is forwarded to the leader, and the follower answers only
/// once it has applied the block itself: the client's next read there sees its write,
/// even when the follower is slower than the leader (here: its disk refuses the block
/// until the leader has committed it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_follower_is_read_back_there() {
    let cluster = Arc::new(Cluster::start(3).await);
    let leader = cluster.leader(None).await;
    let follower = (leader + 1) % 3;
    let shop = crate::keys::generate();
    let action =
        Action::RegisterShop {
            shop: AccountId::of(&shop), name: "遅い店".into(), class: ShopClass::Local
        };
    let tx = cluster.sign(&cluster.town, action);
    cluster.members[follower].file.fail_sync.store(true, Ordering::SeqCst);
    let answer = {
        let (cluster, tx) = (cluster.clone(), tx.clone());
        tokio::spawn(async move { cluster.submit(follower, &tx).await })
    };
    cluster.applied(leader, 1).await;
    cluster.members[follower].file.fail_sync.store(false, Ordering::SeqCst);
    let result = answer.await.unwrap().expect("an answer");
    assert_eq!((result.status, result.height), (TxStatus::Applied, Some(1)));
    assert_eq!(cluster.height(follower).await, 1, "the follower applied the block before it answered");
    let path = format!("/v1/accounts/{}", AccountId::of(&shop));
    assert_eq!(cluster.town_get(follower, &path).await.status(), 200, "the shop reads back there");
    Arc::into_inner(cluster).expect("the only handle").stop().await;
}

/// A receipt of a payment the leader answered is proven by the others: a follower serves
/// the proof, and the third replica the block hash it is checked against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_from_a_follower_checks_out_against_another_replicas_block_hash() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader(None).await;
    let (follower, third) = ((leader + 1) % 3, (leader + 2) % 3);
    let result = cluster.commit(leader, &cluster.register_shop("茶屋")).await;
    let height = result.height.expect("committed");
    cluster.applied(follower, height).await;
    cluster.applied(third, height).await;
    let (http, members) = (&cluster.http, &cluster.members);
    let get = |at: usize, path: String| {
        let url = format!("{}{path}", members[at].api);
        async move { http.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let proof: machi_api::TxProof =
        serde_json::from_value(get(follower, format!("/v1/transactions/{}/proof", result.tx_id)).await)
            .unwrap();
    let block: serde_json::Value =
        cluster.town_get(third, &format!("/v1/blocks/{height}")).await.json().await.unwrap();
    let trusted: machi_ledger::Hash32 = block["hash"].as_str().unwrap().parse().unwrap();
    assert_eq!(Some(trusted), result.block_hash, "the leader answered with the same block");
    assert!(proof.check(&result.tx_id, &trusted).proven(), "{proof:?}");
    let parent: serde_json::Value =
        cluster.town_get(third, &format!("/v1/blocks/{}", height - 1)).await.json().await.unwrap();
    let other: machi_ledger::Hash32 = parent["hash"].as_str().unwrap().parse().unwrap();
    assert!(!proof.check(&result.tx_id, &other).proven());
    cluster.stop().await;
}

/// Replica traffic on whole nodes: `/raft/blocks` answers a replica the chain names,
/// signing with its key on chain; not a request without a signature, nor one signed by
/// the town's key in a replica's name; and, once the town retires a replica, not that
/// replica either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_traffic_is_answered_only_for_the_replicas_the_chain_names() {
    use super::network::{paths, Identity, Refusal};
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader(None).await;
    let height = cluster.commit(leader, &cluster.register_shop("本屋")).await.height.unwrap();
    let asker = (leader + 1) % 3;
    let (leader_id, asker_id) = (leader as u64 + 1, asker as u64 + 1);
    let path = format!("{}?from={height}&to={height}", paths::BLOCKS);
    let url = format!("http://{}{path}", cluster.replicas[leader].raft_addr);
    let get = |signer: Option<Identity>| {
        let mut request = cluster.http.get(&url);
        if let Some(signer) = signer {
            request = request.headers(signer.sign(leader_id, crate::now_ms(), "GET", &path, &[]).headers());
        }
        async move { request.send().await.unwrap() }
    };
    let code = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.unwrap();
        body["error"]["code"].as_str().unwrap().to_owned()
    };
    let replica = |key: &SigningKey| Identity::new(CHAIN.into(), asker_id, key.clone());

    assert_eq!(code(get(None).await).await, Refusal::Required.code());
    assert_eq!(code(get(Some(replica(&cluster.town))).await).await, Refusal::BadSignature.code());
    let served = get(Some(replica(&cluster.members[asker].key))).await;
    assert_eq!(served.status(), 200);
    let blocks: Vec<Vec<u8>> = postcard::from_bytes(&served.bytes().await.unwrap()).unwrap();
    let block = Block::decode(&blocks[0]).expect("a block");
    assert_eq!(block.header.height, height);

    // The town retires the asker: the leader refuses it once it has applied the new set.
    let without: Vec<Replica> = cluster.replicas.iter().filter(|r| r.id != asker_id).cloned().collect();
    let retire = cluster.sign(&cluster.town, Action::SetReplicas { replicas: without });
    let retired_at = cluster.commit(leader, &retire).await.height.unwrap();
    cluster.applied(leader, retired_at).await;
    assert_eq!(
        code(get(Some(replica(&cluster.members[asker].key))).await).await,
        Refusal::UnknownReplica.code()
    );
    cluster.stop().await;
}

/// A replica that has not applied the block naming another replica refuses that replica's
/// requests, and catches up from the replicas it knows: here a replica started from the
/// genesis, which the town names (at an address where it does not listen, so Raft never
/// reaches it) together with a fifth replica. The fifth's first request is refused as from
/// an unknown replica; the replica then pulls the blocks from the others, verifies them,
/// learns the new set, and answers the fifth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_a_change_of_the_set_catches_up_from_the_replicas_it_knows() {
    use super::network::{paths, Identity, Refusal};
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader(None).await;
    cluster.commit(leader, &cluster.register_shop("魚屋")).await;

    let (key, fifth) = (crate::keys::generate(), crate::keys::generate());
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raft = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raft_addr = raft.local_addr().unwrap().to_string();
    let behind =
        Member::start(&cluster.genesis, key.clone(), api, raft, Some(4), Arc::new(SystemClock)).await;
    let nowhere = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
    let named = |id: u64, key: &SigningKey| Replica {
        id,
        name: format!("replica {id}"),
        api_addr: nowhere.clone(),
        raft_addr: nowhere.clone(),
        producer: AccountId::of(key),
        voter: false,
    };
    let mut replicas = cluster.replicas.clone();
    replicas.extend([named(4, &key), named(5, &fifth)]);
    let set = cluster.sign(&cluster.town, Action::SetReplicas { replicas });
    let named_at = cluster.commit(leader, &set).await.height.unwrap();
    for at in 0..3 {
        cluster.applied(at, named_at).await;
    }
    assert_eq!(behind.shared.chain.read().await.head.height, 0, "Raft never reaches the fourth");

    let path = format!("{}?from=1&to=1", paths::BLOCKS);
    let as_fifth = Identity::new(CHAIN.into(), 5, fifth);
    let ask = || {
        let headers = as_fifth.sign(4, crate::now_ms(), "GET", &path, &[]).headers();
        let request = cluster.http.get(format!("http://{raft_addr}{path}")).headers(headers);
        async move { request.send().await.unwrap() }
    };
    let first = ask().await;
    assert_eq!(first.status(), 401);
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(body["error"]["code"], Refusal::UnknownReplica.code());
    assert!(behind.shared.applied_at_least(named_at, DEADLINE).await, "it caught up to the new set");
    let answered = ask().await;
    assert_eq!(answered.status(), 200, "the fifth replica is known now");
    let blocks: Vec<Vec<u8>> = postcard::from_bytes(&answered.bytes().await.unwrap()).unwrap();
    assert_eq!(Block::decode(&blocks[0]).expect("a block").header.height, 1);
    let mut cluster = cluster;
    cluster.members.push(behind);
    cluster.stop().await;
}
