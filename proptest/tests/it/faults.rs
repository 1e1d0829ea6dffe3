//! Storage faults injected at the block log's file: a failed write or a failed sync is
//! never acknowledged, leaves no half-applied state in memory or on disk, and the node
//! carries on once the disk works again.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use machi_api::{TxCode, TxStatus};
use machi_client::{sign, Client};
use machi_ledger::{AccountId, Action, ShopClass};
use machi_node::{FaultyFile, LogFile, Node, SystemClock};

fn id(key: &machi_ledger::SigningKey) -> AccountId {
    AccountId::of(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_are_never_acknowledged_and_leave_nothing_behind() {
    let file = FaultyFile::default();
    let (town, producer) = (machi_node::generate_key(), machi_node::generate_key());
    machi_node::init_log(Box::new(file.clone()), "fault-town", &town, &producer).unwrap();
    let index = tempfile::tempdir().unwrap();
    let reopen = {
        let file = file.clone();
        Box::new(move || Ok(Box::new(file.clone()) as Box<dyn LogFile>)) as machi_node::ReopenLog
    };
    let node = Node::open_with(reopen, index.path(), producer.clone(), Arc::new(SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(&format!("http://{}", listener.local_addr().unwrap()));
    // Accounts are read as the town, which may read any: to anyone else a registered
    // shop and a missing one are both "not found", and the check below would prove nothing.
    let town_reads = client.reading_as(town.clone(), "machi-proptest: checking what a failed write left");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.serve(listener, async {
        let _ = stopped.await;
    }));

    let register = |name: &str| {
        let shop = machi_node::generate_key();
        (
            shop.clone(),
            sign(
                "fault-town",
                &town,
                Action::RegisterShop { shop: id(&shop), name: name.into(), class: ShopClass::Local },
            ),
        )
    };
    let (_, first) = register("一");
    assert_eq!(client.submit(&first).await.unwrap().status, TxStatus::Applied);

    for switch in [&file.fail_sync, &file.fail_append] {
        let head = client.head().await.unwrap();
        let log_len = file.inner.bytes.lock().unwrap().len();
        switch.store(true, Ordering::SeqCst);
        let (shop, tx) = register("失敗");
        let refused = client.submit(&tx).await.unwrap();
        assert_eq!(refused.status, TxStatus::Refused, "a failed write is not acknowledged");
        assert_eq!(refused.reason.map(TxCode::name), Some("storage_unavailable"));
        assert_eq!(refused.tx_id, tx.id("fault-town"));
        assert_eq!(client.head().await.unwrap(), head, "no block was added");
        assert_eq!(file.inner.bytes.lock().unwrap().len(), log_len, "nothing half-written stays in the log");
        let missing = town_reads.account(&id(&shop)).await.expect_err("the shop was not registered");
        assert_eq!(missing.code(), "not_found");
        // The disk recovers: the same signed transaction now commits, once.
        switch.store(false, Ordering::SeqCst);
        let result = client.submit(&tx).await.unwrap();
        assert_eq!(result.status, TxStatus::Applied);
        assert_eq!(client.head().await.unwrap().height, head.height + 1);
        let registered = town_reads.account(&id(&shop)).await.expect("the shop is registered now, once");
        assert_eq!(registered.role, "shop_local");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // What is on "disk" is a valid chain with exactly the acknowledged blocks.
    let reopened = machi_node::BlockLog::open(Box::new(file.inner.clone())).unwrap();
    assert_eq!(reopened.cut_bytes, 0);
    assert_eq!(reopened.records.len(), 4, "genesis and three acknowledged registrations");
}
