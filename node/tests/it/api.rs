//! The HTTP API against hostile and repeated input: every refusal is a JSON error with a
//! stable code and the right status, and nothing is written.

use futures_util::StreamExt as _;
use machi_api::{TxCode, TxStatus};
use machi_ledger::{Action, ShopClass, SignedTx, TxBody, Yen};
use serde_json::Value;

use crate::harness::{id, new_key, TestNode};

async fn raw(node: &TestNode, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", node.url);
    let request = match method {
        "POST" => http.post(url).header("content-type", "application/json").body(body),
        _ => http.get(url),
    };
    let response = request.send().await.expect("node answers");
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

#[track_caller]
fn check(got: (u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(got.1["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn malformed_requests_get_json_errors_and_write_nothing() {
    let node = TestNode::start().await;
    let before = node.client.head().await.unwrap();
    check(raw(&node, "POST", "/v1/transactions", b"{\"signer\":".to_vec()).await, 400, "malformed_json");
    check(raw(&node, "POST", "/v1/transactions", b"{\"amount\": 5}".to_vec()).await, 400, "invalid_request");
    check(raw(&node, "POST", "/v1/transactions", b"[]".to_vec()).await, 400, "empty_batch");
    check(raw(&node, "POST", "/v1/transactions", vec![b' '; 10 * 1024 * 1024]).await, 413, "body_too_large");
    let body = serde_json::json!({"signer": "00", "signature": "zz", "body_hex": "00"});
    check(
        raw(&node, "POST", "/v1/transactions", body.to_string().into_bytes()).await,
        400,
        "invalid_request",
    );
    check(raw(&node, "GET", "/v1/nothing-here", vec![]).await, 404, "not_found");
    check(raw(&node, "GET", "/v1/accounts/xyz", vec![]).await, 400, "bad_id");
    check(raw(&node, "GET", &format!("/v1/accounts/{}", "ab".repeat(32)), vec![]).await, 404, "not_found");
    check(raw(&node, "GET", "/v1/blocks/99", vec![]).await, 401, "read_auth_required");
    let above = node.get_as_town("/v1/blocks/99").await;
    check((above.status().as_u16(), above.json().await.unwrap()), 404, "not_found");
    check(raw(&node, "GET", "/v1/issues/-1", vec![]).await, 400, "bad_id");
    let after = node.client.head().await.unwrap();
    assert_eq!(before, after, "nothing was written");
}

#[tokio::test]
async fn bad_signatures_unknown_signers_wrong_chain_and_ttl_are_refused() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    let before = node.client.head().await.unwrap();
    let register = |key: &machi_ledger::SigningKey| Action::RegisterOperator {
        operator: id(key),
        name: "窓口".into(),
    };
    let post = |tx: SignedTx| serde_json::to_vec(&tx).unwrap();

    let mut forged = node.sign(&town, register(&new_key()));
    forged.signature[10] ^= 1;
    check(raw(&node, "POST", "/v1/transactions", post(forged)).await, 401, "bad_signature");

    let stranger = new_key();
    check(
        raw(&node, "POST", "/v1/transactions", post(node.sign(&stranger, register(&new_key())))).await,
        401,
        "unknown_signer",
    );

    let other_chain = machi_client::sign_at("other-town", &town, register(&new_key()), node.now());
    check(raw(&node, "POST", "/v1/transactions", post(other_chain)).await, 400, "wrong_chain");

    let stale =
        machi_client::sign_at(&node.chain_id, &town, register(&new_key()), node.now() - 11 * 60 * 1000);
    check(raw(&node, "POST", "/v1/transactions", post(stale)).await, 400, "ttl_expired");

    let mut garbage = node.sign(&town, register(&new_key()));
    garbage.body = vec![0xff; 40];
    check(raw(&node, "POST", "/v1/transactions", post(garbage)).await, 400, "malformed_body");

    let body = TxBody {
        chain_id: node.chain_id.clone(),
        created_ms: node.now(),
        ttl_ms: 1_000,
        nonce: 1,
        action: register(&new_key()),
    };
    let mut non_canonical = SignedTx::sign(&node.chain_id, &town, &body);
    non_canonical.body.push(0);
    check(raw(&node, "POST", "/v1/transactions", post(non_canonical)).await, 400, "non_canonical_body");

    // A resident acting as a shop.
    let resident = new_key();
    let op = new_key();
    node.ok(&town, register(&op)).await;
    let height = node.client.head().await.unwrap();
    let resident_hash = machi_ledger::Hash32([4; 32]);
    node.ok(&op, Action::RegisterResident { resident: id(&resident), resident_hash, worker: false }).await;
    let as_shop = node.sign(&resident, Action::RequestCashOut { issue: 1, amount: Yen(1) });
    check(raw(&node, "POST", "/v1/transactions", post(as_shop)).await, 403, "wrong_role");
    assert_eq!(
        node.client.head().await.unwrap().height,
        height.height + 1,
        "only the registration was written"
    );
    assert!(before.height < height.height);
}

#[tokio::test]
async fn the_same_transaction_twice_is_committed_once() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    let tx = node.sign(
        &town,
        Action::RegisterShop { shop: id(&new_key()), name: "八百屋".into(), class: ShopClass::Local },
    );
    let first = node.client.submit(&tx).await.unwrap();
    let second = node.client.submit(&tx).await.unwrap();
    assert_eq!(first.status, TxStatus::Applied);
    assert_eq!(first, second, "the second answer is the first's outcome");
    let head = node.client.head().await.unwrap();
    assert_eq!(head.txs_total, 2, "genesis and one registration");

    // Concurrent duplicates in one batch and across requests: still one commit.
    let tx2 = node.sign(
        &town,
        Action::RegisterShop { shop: id(&new_key()), name: "魚屋".into(), class: ShopClass::Local },
    );
    let pair = [tx2.clone(), tx2.clone()];
    let (a, b) = tokio::join!(node.client.submit(&tx2), node.client.submit_batch(&pair));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(&b[0], &a);
    assert_eq!(&b[1], &a);
    assert_eq!(node.client.head().await.unwrap().txs_total, 3);

    // The same id with another signature is a conflict.
    let mut conflicting = tx.clone();
    conflicting.signature[40] ^= 1;
    check(
        raw(&node, "POST", "/v1/transactions", serde_json::to_vec(&conflicting).unwrap()).await,
        409,
        "conflicting_duplicate",
    );

    // A batch answers each transaction for itself.
    let mut bad = node.sign(
        &town,
        Action::RegisterShop { shop: id(&new_key()), name: "米屋".into(), class: ShopClass::Large },
    );
    bad.signature[0] ^= 1;
    let good = node.sign(
        &town,
        Action::RegisterShop { shop: id(&new_key()), name: "酒屋".into(), class: ShopClass::Large },
    );
    let results = node.client.submit_batch(&[tx.clone(), bad, good]).await.unwrap();
    assert_eq!(results[0], first);
    assert_eq!(
        (results[1].status, results[1].reason.map(TxCode::name)),
        (TxStatus::Refused, Some("bad_signature"))
    );
    assert_eq!(results[2].status, TxStatus::Applied);
}

#[tokio::test]
async fn events_stream_committed_transactions_for_an_account() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    let shop = new_key();
    let mut events = node.client.events(Some(&id(&shop))).await.expect("subscribed");
    // Another account's transaction is not in this account's stream.
    node.ok(&town, Action::RegisterOperator { operator: id(&new_key()), name: "窓口".into() }).await;
    let tx = node
        .ok(&town, Action::RegisterShop { shop: id(&shop), name: "茶屋".into(), class: ShopClass::Local })
        .await;
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("a tx event");
    assert_eq!(
        (event.tx_id, event.height, event.kind.as_str()),
        (tx.tx_id, tx.height.unwrap(), "register_shop")
    );
    assert_eq!(event.status, TxStatus::Applied);
    assert!(event.accounts.contains(&id(&shop)), "{event:?}");
    assert!(
        matches!(&event.body.action, Action::RegisterShop { name, .. } if name == "茶屋"),
        "{:?}",
        event.body
    );

    // A subscriber does not hold up shutdown: its stream ends, and with no node left to
    // connect to, it says so and stops.
    let mut node = node;
    tokio::time::timeout(std::time::Duration::from_secs(20), node.shutdown())
        .await
        .expect("the node stops while a subscriber listens");
    let rest =
        tokio::time::timeout(std::time::Duration::from_secs(10), events.next()).await.expect("stream ends");
    assert!(matches!(rest, Some(Err(machi_client::ClientError::Unreachable(..)))), "{rest:?}");
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn restart_resumes_where_it_was_and_metrics_count() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    for i in 0..5 {
        node.ok(&town, Action::RegisterOperator { operator: id(&new_key()), name: format!("窓口{i}") }).await;
    }
    let metrics = reqwest::get(format!("{}/metrics", node.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("machi_txs_applied_total 5"), "{metrics}");
    let head = node.client.head().await.unwrap();
    let node = node.restart().await;
    assert_eq!(node.client.head().await.unwrap(), head);
    // The index is rebuilt when sled's folder is lost.
    let mut node = node;
    node.shutdown().await;
    std::fs::remove_dir_all(machi_node::index_path(node.path())).unwrap();
    let clock = node.clock.clone();
    let dir = std::mem::replace(&mut node.dir, tempfile::tempdir().unwrap());
    let node = TestNode::open(dir, clock).await;
    assert_eq!(node.client.head().await.unwrap(), head);
    let town_view = node.client.account(&id(&town)).await.unwrap();
    assert_eq!(town_view.history.len(), 6, "genesis and five registrations, re-indexed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_can_be_waited_for() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    let head = node.client.head().await.unwrap().height;
    // Nothing new: the long poll answers with the same head when its time is up.
    assert_eq!(node.client.head_after(head, 50).await.unwrap().height, head);
    // A block committed while a follower waits wakes it at once.
    let waiting = {
        let client = node.client.clone();
        tokio::spawn(async move { client.head_after(head, 20_000).await })
    };
    node.ok(&town, Action::RegisterOperator { operator: id(&new_key()), name: "窓口".into() }).await;
    let woken =
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await.expect("woken by the block");
    assert_eq!(woken.unwrap().unwrap().height, head + 1);
    // Already above: no wait at all.
    assert_eq!(node.client.head_after(head, 20_000).await.unwrap().height, head + 1);
    let bad = reqwest::get(format!("{}/v1/chain/head?after=x&wait_ms=1", node.url)).await.unwrap();
    assert_eq!(bad.status(), 400);
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in metrics"))
}

/// A flood from keys the chain does not know is refused before any signature is checked;
/// an account registered earlier in the same request may still sign after it.
#[tokio::test]
async fn unknown_signers_are_refused_before_any_signature_check() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    let metrics =
        || async { reqwest::get(format!("{}/metrics", node.url)).await.unwrap().text().await.unwrap() };
    let before = metrics().await;
    let flood: Vec<SignedTx> = (0..200)
        .map(|i| {
            let mut tx = node.sign(
                &new_key(),
                Action::RegisterShop {
                    shop: id(&new_key()),
                    name: format!("店{i}"),
                    class: ShopClass::Local,
                },
            );
            tx.signature[3] ^= (i % 2) as u8; // half also carry a bad signature
            tx
        })
        .collect();
    let results = node.client.submit_batch(&flood).await.unwrap();
    assert!(results.iter().all(|r| r.reason.map(TxCode::name) == Some("unknown_signer")), "{:?}", results[0]);
    let after = metrics().await;
    for name in ["machi_signatures_batched_total", "machi_signatures_single_total"] {
        assert_eq!(metric(&after, name), metric(&before, name), "{name}: no signature was checked");
    }
    assert_eq!(
        metric(&after, "machi_unknown_signers_total"),
        metric(&before, "machi_unknown_signers_total") + 200
    );

    let operator = new_key();
    let together = [
        node.sign(&town, Action::RegisterOperator { operator: id(&operator), name: "窓口".into() }),
        node.sign(
            &operator,
            Action::RegisterResident {
                resident: id(&new_key()),
                resident_hash: machi_ledger::Hash32([4; 32]),
                worker: false,
            },
        ),
    ];
    let results = node.client.submit_batch(&together).await.unwrap();
    assert!(results.iter().all(|r| r.status == TxStatus::Applied), "{results:?}");
}
