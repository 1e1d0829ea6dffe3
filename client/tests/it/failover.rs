//! A client of several nodes: a node that is down, one that has no leader, and one
//! lost after it committed a transaction; the client goes on to the next node and a
//! transaction sent again commits once.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::http::{StatusCode, Uri};
use axum::routing::post;
use axum::Json;

use futures_util::StreamExt as _;
use machi_api::{TxResultView, TxStatus};
use machi_client::{sign, Client, ClientError};
use machi_ledger::{AccountId, Action, Hash32, Outcome, ShopClass, SignedTx};
use serde_json::json;

use crate::harness::{closed_url, refusing, serve, DroppingProxy, LiveNode};

fn register_shop(node: &LiveNode, name: &str) -> (SignedTx, AccountId) {
    let shop = AccountId::of(&machi_node::generate_key());
    let action = Action::RegisterShop { shop, name: name.into(), class: ShopClass::Local };
    (sign(&node.chain_id, &node.town, action), shop)
}

#[tokio::test]
async fn a_node_that_is_down_is_passed_over() {
    let node = LiveNode::start().await;
    let down = closed_url();
    // The town reads every account and follows every event.
    let client = Client::new(&format!("{down},{}", node.url)).reading_as(node.town.clone(), "client test");
    assert_eq!(client.nodes(), [down.clone(), node.url.clone()]);

    let head = client.head().await.expect("read from the second node");
    assert_eq!(client.base(), node.url, "the node that answered is remembered");
    let mut events = client.events(None).await.expect("subscribed at the second node");
    let (tx, shop) = register_shop(&node, "下駄屋");
    let result = client.submit(&tx).await.expect("submitted");
    assert_eq!((result.status, result.tx_id), (TxStatus::Applied, tx.id(&node.chain_id)));
    assert_eq!(result.height, Some(head.height + 1));
    assert_eq!(client.account(&shop).await.unwrap().id, shop);
    let event = events.next().await.unwrap().expect("the event");
    assert_eq!(event.tx_id, result.tx_id);

    // When the node stops, its event stream tries every node again, none answers, and
    // the stream ends saying so.
    let mut node = node;
    node.stop().await;
    assert!(matches!(events.next().await, Some(Err(ClientError::Unreachable(..)))));
    assert!(events.next().await.is_none());

    // With every node down, the client says it could not reach one.
    let alone = Client::new(&format!("{down},{}", closed_url()));
    assert!(matches!(alone.head().await, Err(ClientError::Unreachable(..))));
    assert!(matches!(alone.events(None).await.err(), Some(ClientError::Unreachable(..))));
}

#[tokio::test]
async fn a_node_without_a_leader_sends_the_client_to_the_next() {
    let node = LiveNode::start().await;
    let (leaderless, asked) = refusing("no_leader").await;
    let client = Client::new(&format!("{leaderless},{}", node.url));

    let (tx, _) = register_shop(&node, "豆腐屋");
    let result = client.submit(&tx).await.expect("submitted");
    assert_eq!(result.status, TxStatus::Applied);
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // The next calls start at the node that answered.
    let head = client.head().await.unwrap();
    assert_eq!(head.height, result.height.unwrap());
    let (tx, _) = register_shop(&node, "畳屋");
    assert_eq!(client.submit(&tx).await.unwrap().status, TxStatus::Applied);
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the leaderless node is not asked again");

    // A refusal that any replica would give is not sent on: `busy` is the leader's.
    let (busy, busy_asked) = refusing("busy").await;
    let client = Client::new(&format!("{busy},{}", node.url));
    let error = client.head().await.unwrap_err();
    assert_eq!((error.code(), busy_asked.load(Ordering::SeqCst)), ("busy", 1));

    // With no node able to serve, the answer is the refusal.
    let (halted, _) = refusing("halted").await;
    let client = Client::new(&format!("{leaderless},{halted}"));
    let (tx, _) = register_shop(&node, "桶屋");
    assert_eq!(client.submit(&tx).await.unwrap_err().code(), "halted");
}

#[tokio::test]
async fn a_transaction_whose_answer_was_lost_commits_once_on_the_next_node() {
    let node = LiveNode::start().await;
    let proxy = DroppingProxy::start(&node.url).await;
    let client =
        Client::new(&format!("{},{}", proxy.url, node.url)).reading_as(node.town.clone(), "client test");
    let before = client.head().await.expect("read through the proxy").height;
    assert_eq!(client.base(), proxy.url);

    // The first node commits it and is lost before it answers; the second answers with
    // the outcome it got, from the chain.
    let (tx, _) = register_shop(&node, "鍛冶屋");
    let result = client.submit(&tx).await.expect("answered by the second node");
    assert_eq!(proxy.submissions(), 1, "the first node had it");
    assert_eq!((result.status, result.tx_id), (TxStatus::Applied, tx.id(&node.chain_id)));
    assert_eq!(result.height, Some(before + 1));
    assert_eq!(client.base(), node.url);
    let after = client.head().await.unwrap().height;
    assert_eq!(after, before + 1, "committed once, not twice");
    assert_eq!(client.lookup(&result.tx_id).await.unwrap(), Some(result));

    // When the next node cannot be reached either, the outcome is unknown, not "never
    // sent": the first node may have committed it.
    let proxy = DroppingProxy::start(&node.url).await;
    let client = Client::new(&format!("{},{}", proxy.url, closed_url()));
    let (tx, _) = register_shop(&node, "染物屋");
    assert!(matches!(client.submit(&tx).await, Err(ClientError::NoAnswer(..))));
    let town = Client::new(&node.url).reading_as(node.town.clone(), "client test");
    let committed = town.lookup(&tx.id(&node.chain_id)).await.unwrap();
    assert_eq!(committed.map(|r| r.status), Some(TxStatus::Applied));
}

/// A replica that commits every transaction at height 7 and records every read it is
/// asked, as a replica that has applied less than another may be.
async fn replica_at_seven() -> (String, Arc<Mutex<Vec<String>>>) {
    let reads: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = reads.clone();
    let commit = |Json(tx): Json<SignedTx>| async move {
        let id = tx.id("test-town");
        Json(TxResultView::committed(id, Outcome::Applied, 7, Hash32([0; 32])))
    };
    let read = move |uri: Uri| {
        let recorded = recorded.clone();
        async move {
            recorded.lock().unwrap().push(uri.to_string());
            let body = json!({"error": {"code": "not_found", "message": "no transaction with that id"}});
            (StatusCode::NOT_FOUND, Json(body))
        }
    };
    let url = serve(axum::Router::new().route("/v1/transactions", post(commit)).fallback(read)).await;
    (url, reads)
}

#[tokio::test]
async fn after_a_write_reads_wait_for_the_replica_to_have_applied_it() {
    let node = LiveNode::start().await;
    let (replica, reads) = replica_at_seven().await;
    let client = Client::new(&format!("{},{replica}", closed_url()));
    let (tx, _) = register_shop(&node, "米屋");
    assert_eq!(client.submit(&tx).await.unwrap().height, Some(7));
    assert_eq!(client.lookup(&tx.id("test-town")).await.unwrap(), None);
    // Any replica asked next waits until it has applied the block the write is in.
    assert_eq!(*reads.lock().unwrap(), [format!("/v1/transactions/{}?min_height=7", tx.id("test-town"))]);

    // A client of one node reads as it always did.
    let alone = Client::new(&replica);
    alone.submit(&tx).await.unwrap();
    alone.lookup(&tx.id("test-town")).await.unwrap();
    assert_eq!(reads.lock().unwrap()[1], format!("/v1/transactions/{}", tx.id("test-town")));
}
