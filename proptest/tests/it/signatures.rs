//! Crafted signatures against a live node over HTTP: a transaction whose `R` is of mixed
//! order gets one verdict at admission (alone or in a batch), after a restart that
//! re-verifies every block, in the audit and in `verify` of the export. Before the chain
//! had one acceptance rule, the same transaction was committed about half the time and
//! then refused on restart about half the time.

use std::sync::Arc;

use machi_api::{TxCode, TxStatus};
use machi_client::{sign, Client};
use machi_ledger::{AccountId, Action, ShopClass, SignedTx, SigningKey};
use machi_node::{Node, SystemClock};

#[path = "../../../ledger/tests/it/crafted.rs"]
#[allow(dead_code)]
mod crafted;

const CHAIN: &str = "crafted-town";

fn register_shop(town: &SigningKey, name: &str) -> SignedTx {
    let shop = machi_node::generate_key();
    let shop = AccountId::of(&shop);
    sign(CHAIN, town, Action::RegisterShop { shop, name: name.into(), class: ShopClass::Local })
}

/// The same transaction, its signature replaced by a mixed-order one by the same key.
fn with_mixed_order_r(town: &SigningKey, tx: SignedTx, seed: u64) -> SignedTx {
    let id = tx.id(CHAIN);
    SignedTx { signature: crafted::mixed_order_signature(town, &id.0, seed), ..tx }
}

async fn serve(
    dir: &std::path::Path,
) -> (Client, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let node = Node::open_with_clock(dir, Arc::new(SystemClock)).expect("node opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(&format!("http://{}", listener.local_addr().unwrap()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        node.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("serves");
    });
    (client, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_order_signatures_get_one_verdict_in_every_path() {
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), CHAIN).unwrap();
    let town = machi_node::read_key(&dir.path().join("keys/town.key")).unwrap();
    let (client, stop, task) = serve(dir.path()).await;

    // Alone: T of order 2 and of order 4, each in a block of its own.
    for seed in [3, 1] {
        let tx = with_mixed_order_r(&town, register_shop(&town, "混合"), seed);
        let result = client.submit(&tx).await.unwrap();
        assert_eq!(result.status, TxStatus::Applied, "seed {seed}: {result:?}");
    }
    // In a batch with honest ones.
    let mut batch: Vec<SignedTx> = (0..20).map(|i| register_shop(&town, &format!("店{i}"))).collect();
    batch[7] = with_mixed_order_r(&town, batch[7].clone(), 10);
    for result in client.submit_batch(&batch).await.unwrap() {
        assert_eq!(result.status, TxStatus::Applied, "{result:?}");
    }
    // A small-order R is refused, alone and in a batch, and recorded nowhere.
    let head = client.head().await.unwrap();
    let mut bad = register_shop(&town, "小位数");
    bad.signature[..32].copy_from_slice(&curve25519_dalek::constants::EIGHT_TORSION[4].compress().0);
    let refused = client.submit(&bad).await.unwrap();
    assert_eq!(
        (refused.status, refused.reason.map(TxCode::name)),
        (TxStatus::Refused, Some("bad_signature"))
    );
    assert_eq!(client.head().await.unwrap(), head);
    let _ = stop.send(());
    task.await.unwrap();

    // Every restart re-verifies every block: without the index, the node replays the whole
    // log with full signature checks (as after a kill -9 with no checkpoint).
    for _ in 0..8 {
        std::fs::remove_dir_all(machi_node::index_path(dir.path())).unwrap();
        Node::open_with_clock(dir.path(), Arc::new(SystemClock)).expect("the chain reopens").stop();
    }
    let audited = machi_node::audit_data_dir(dir.path()).expect("audit passes");
    let export = dir.path().join("chain.jsonl");
    machi_node::export(dir.path(), &export).unwrap();
    for _ in 0..4 {
        let verified = machi_node::verify_export(&export, None).expect("verify passes");
        assert_eq!(verified, audited);
    }
}
