//! A long account history is read without holding up the producer: while the blocks of
//! a history are being read from the log (held there by a gate in the log file), another
//! transaction still commits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use machi_api::{AccountView, TxStatus};
use machi_client::{sign, Client};
use machi_ledger::{Action, ShopClass};
use machi_node::{DiskFile, LogFile, ManualClock, Node};

use crate::harness::{id, new_key};

/// When armed, the next read of the log parks until the test releases it.
struct Gate {
    armed: AtomicBool,
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

struct GatedFile {
    inner: DiskFile,
    gate: Arc<Gate>,
}

impl LogFile for GatedFile {
    fn size(&self) -> std::io::Result<u64> {
        self.inner.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if self.gate.armed.swap(false, Ordering::SeqCst) {
            self.gate.entered.lock().unwrap().send(()).unwrap();
            self.gate.release.lock().unwrap().recv().unwrap();
        }
        self.inner.read_at(offset, buf)
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.append(bytes)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.inner.sync()
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.inner.truncate(len)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_producer_commits_while_a_history_is_being_read() {
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), "test-town").unwrap();
    let town = machi_node::read_key(&dir.path().join("keys/town.key")).unwrap();
    let producer = machi_node::read_key(&dir.path().join("keys/producer.key")).unwrap();
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let gate = Arc::new(Gate {
        armed: AtomicBool::new(false),
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    });
    let log = machi_node::log_path(dir.path());
    let opener = gate.clone();
    let reopen: machi_node::ReopenLog = Box::new(move || {
        Ok(Box::new(GatedFile { inner: DiskFile::open(&log)?, gate: opener.clone() }) as Box<dyn LogFile>)
    });
    let clock = Arc::new(ManualClock::new(machi_node::now_ms()));
    let node = Node::open_with(reopen, dir.path(), producer, clock).unwrap();
    let chain_id = node.shared.chain_id.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(node.serve(listener, async {
        let _ = stopped.await;
    }));
    let client = Client::new(&url);
    let register = |name: &str| {
        sign(
            &chain_id,
            &town,
            Action::RegisterShop { shop: id(&new_key()), name: name.into(), class: ShopClass::Local },
        )
    };
    let busy_shop = new_key();
    let first = sign(
        &chain_id,
        &town,
        Action::RegisterShop { shop: id(&busy_shop), name: "にぎわい".into(), class: ShopClass::Local },
    );
    assert_eq!(client.submit(&first).await.unwrap().status, TxStatus::Applied);

    // The shop reads its own history.
    let token = crate::privacy::token(&url, &chain_id, &busy_shop, "").await;
    gate.armed.store(true, Ordering::SeqCst);
    let history_url = format!("{url}/v1/accounts/{}?history=500", id(&busy_shop));
    let history = tokio::spawn(async move {
        reqwest::Client::new().get(history_url).bearer_auth(token).send().await?.json::<AccountView>().await
    });
    tokio::task::spawn_blocking(move || entered.recv().unwrap()).await.unwrap();

    // The history read is parked inside the log: a new transaction must still commit.
    // (The bound only turns a producer that is held up into a failure instead of a hang.)
    let committed = tokio::time::timeout(std::time::Duration::from_secs(30), client.submit(&register("次")))
        .await
        .expect("the producer commits while the history is being read")
        .unwrap();
    assert_eq!(committed.status, TxStatus::Applied);

    release.send(()).unwrap();
    let view = history.await.unwrap().expect("history answered");
    assert_eq!(view.history.len(), 1);
    assert_eq!(view.history[0].tx_id, first.id(&chain_id));
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
