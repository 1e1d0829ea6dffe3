//! A node in a temp folder serving on 127.0.0.1:0, with a clock the test moves.

use std::path::Path;
use std::sync::Arc;

use machi_api::{TxResultView, TxStatus};
use machi_client::{sign_at, Client};
use machi_ledger::{AccountId, Action, SignedTx, SigningKey};
use machi_node::{ManualClock, Node};
use tokio::sync::oneshot;

pub(crate) use machi_ledger::testkit::DAY_MS;

pub(crate) struct TestNode {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) client: Client,
    pub(crate) url: String,
    pub(crate) chain_id: String,
    pub(crate) town: SigningKey,
    pub(crate) clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub(crate) fn id(key: &SigningKey) -> AccountId {
    AccountId::of(key)
}

pub(crate) fn new_key() -> SigningKey {
    machi_node::generate_key()
}

impl TestNode {
    pub(crate) async fn start() -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        machi_node::init(dir.path(), "test-town").expect("init");
        TestNode::open(dir, Arc::new(ManualClock::new(machi_node::now_ms()))).await
    }

    pub(crate) async fn open(dir: tempfile::TempDir, clock: Arc<ManualClock>) -> TestNode {
        TestNode::open_with(dir, clock, machi_node::ServeLimits::default()).await
    }

    /// A fresh chain served within `limits`.
    pub(crate) async fn start_with(limits: machi_node::ServeLimits) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        machi_node::init(dir.path(), "test-town").expect("init");
        TestNode::open_with(dir, Arc::new(ManualClock::new(machi_node::now_ms())), limits).await
    }

    pub(crate) async fn open_with(
        dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        limits: machi_node::ServeLimits,
    ) -> TestNode {
        let town = machi_node::read_key(&dir.path().join("keys/town.key")).expect("town key");
        let node = Node::open_with_clock(dir.path(), clock.clone()).expect("node opens");
        let chain_id = node.shared.chain_id.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            node.serve_with(listener, limits, async {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
        });
        TestNode {
            // The tests read as the town (the everything scope), as an auditor would.
            client: Client::new(&url).reading_as(town.clone(), "machi-node tests"),
            url,
            dir,
            chain_id,
            town,
            clock,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the node cleanly and opens the same folder again.
    pub(crate) async fn restart(mut self) -> TestNode {
        self.shutdown().await;
        let clock = self.clock.clone();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        TestNode::open(dir, clock).await
    }

    pub(crate) async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("node task");
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A GET of `path` as the town (the everything scope), through a read session of its
    /// own.
    pub(crate) async fn get_as_town(&self, path: &str) -> reqwest::Response {
        let token = crate::privacy::token(&self.url, &self.chain_id, &self.town, "machi-node tests").await;
        let http = reqwest::Client::new();
        http.get(format!("{}{path}", self.url)).bearer_auth(token).send().await.expect("node answers")
    }

    pub(crate) fn sign(&self, key: &SigningKey, action: Action) -> SignedTx {
        sign_at(&self.chain_id, key, action, self.now())
    }

    pub(crate) async fn submit(&self, key: &SigningKey, action: Action) -> TxResultView {
        self.client.submit(&self.sign(key, action)).await.expect("node answers")
    }

    pub(crate) async fn ok(&self, key: &SigningKey, action: Action) -> TxResultView {
        let what = format!("{action:?}");
        let result = self.submit(key, action).await;
        assert_eq!(result.status, TxStatus::Applied, "{what}: {result:?}");
        result
    }

    /// Submits a batch and insists every one applied.
    pub(crate) async fn ok_batch(&self, txs: Vec<SignedTx>) {
        for chunk in txs.chunks(machi_api::SUBMIT_TXS_MAX) {
            let results = self.client.submit_batch(chunk).await.expect("batch answered");
            for r in results {
                assert_eq!(r.status, TxStatus::Applied, "{r:?}");
            }
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
