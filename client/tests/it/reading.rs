//! Reads with credentials against real nodes: a session is opened once per node and
//! reused by every clone; a node that forgot it (restarted) gets a new one without the
//! caller noticing; another replica gets its own; an account is read only by its own
//! key or the town's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use axum::Json;
use futures_util::StreamExt as _;
use machi_api::{ReadSessionRequest, TxStatus};
use machi_client::{sign, Client, ClientError};
use machi_ledger::{read_auth, AccountId, Action, Hash32, ShopClass, SigningKey};
use serde_json::json;

use crate::harness::{closed_url, serve, CountingProxy, LiveNode};

/// Registers a new shop (signed by the town) through `client`; its key and account.
async fn new_shop(client: &Client, node: &LiveNode, name: &str) -> (SigningKey, AccountId) {
    let key = machi_node::generate_key();
    let shop = AccountId::of(&key);
    let action = Action::RegisterShop { shop, name: name.into(), class: ShopClass::Local };
    let result = client.submit(&sign(&node.chain_id, &node.town, action)).await.expect("submitted");
    assert_eq!(result.status, TxStatus::Applied);
    (key, shop)
}

#[track_caller]
fn not_found<T: std::fmt::Debug>(outcome: Result<T, ClientError>) {
    match outcome {
        Err(ClientError::Api { status: 404, code, .. }) => assert_eq!(code, "not_found"),
        other => panic!("expected 404 not_found, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_is_opened_once_and_reused_by_every_clone() {
    let node = LiveNode::start().await;
    let proxy = CountingProxy::start(&node.url).await;
    let anonymous = Client::new(&proxy.url);
    let (key, shop) = new_shop(&anonymous, &node, "八百屋").await;

    // Without a key the shop's account is as missing as one that does not exist.
    not_found(anonymous.account(&shop).await);
    assert_eq!(anonymous.reader(), None);

    let own = anonymous.reading_as(key.clone(), "the shop's own books");
    assert_eq!(own.reader(), Some(shop));
    let view = own.account(&shop).await.expect("the shop reads its own account");
    assert_eq!((view.id, view.name.as_str()), (shop, "八百屋"));
    assert_eq!(proxy.sessions(), 1);
    let clone = own.clone();
    let history = clone.account(&shop).await.expect("a clone reads with the same session").history;
    assert_eq!(history.len(), 1, "its registration");
    let tx = own.tx(&history[0].tx_id).await.expect("a transaction that concerns the shop");
    assert_eq!(tx.result.tx_id, history[0].tx_id);
    assert_eq!(proxy.sessions(), 1, "one session for every read and every clone");
    // Public reads carry the session too; the node answers them all the same.
    assert_eq!(own.shop(&shop).await.expect("a shop's public profile").name, "八百屋");
    assert_eq!(proxy.sessions(), 1);

    // Another shop's key does not read it, and cannot tell it exists.
    let (other, _) = new_shop(&anonymous, &node, "魚屋").await;
    let stranger = anonymous.reading_as(other, "curious");
    not_found(stranger.account(&shop).await);
    not_found(stranger.tx(&history[0].tx_id).await);
    assert_eq!(proxy.sessions(), 2, "the stranger's own session");

    // After forgetting its sessions the client opens a new one, once.
    own.forget_sessions().await;
    own.account(&shop).await.expect("read again");
    own.account(&shop).await.expect("and again");
    assert_eq!(proxy.sessions(), 3);

    // The shop's event stream is the shop's: its own key follows it, nobody else's; the
    // stream of every transaction is the town's. (Straight to the node: the counting
    // proxy forwards whole answers only.)
    let direct = Client::new(&node.url);
    let own_events =
        direct.reading_as(key, "own events").events(Some(&shop)).await.expect("the shop follows its events");
    not_found(direct.events(Some(&shop)).await.map(|_| ()));
    not_found(stranger.events(Some(&shop)).await.map(|_| ()));
    let town = direct.reading_as(node.town.clone(), "client test: the town's books");
    let mut every = town.events(None).await.expect("the town follows every transaction");
    let refused = |outcome: Result<_, ClientError>| outcome.map(|_| ()).unwrap_err().code().to_string();
    assert_eq!(refused(direct.events(None).await), "read_auth_required");
    assert_eq!(refused(own.events(None).await), "not_allowed");
    let freeze = Action::Freeze { account: shop };
    let frozen = town.submit(&sign(&node.chain_id, &node.town, freeze)).await.expect("frozen");
    let event = every.next().await.expect("an event").expect("the freeze");
    assert_eq!(event.tx_id, frozen.tx_id);
    assert!(town.account(&shop).await.expect("the town reads every account").frozen);
    // A key frozen since reads nothing more.
    assert_eq!(own.account(&shop).await.unwrap_err().code(), "account_frozen");
    drop(own_events);
}

#[tokio::test]
async fn a_session_the_node_forgot_is_opened_anew_without_the_caller_noticing() {
    let node = LiveNode::start().await;
    let town = Client::new(&node.url).reading_as(node.town.clone(), "client test: restart");
    let (key, shop) = new_shop(&town, &node, "本屋").await;
    let own = town.reading_as(key, "own");
    assert_eq!(own.account(&shop).await.expect("read before").name, "本屋");
    let town_account = AccountId::of(&node.town);
    assert_eq!(town.account(&town_account).await.expect("the town's own").role, "town");

    // The node restarts: the chain is the same, the sessions it kept in memory are gone.
    let node = node.restart().await;
    // The stale tokens are refused with `read_session_invalid`, and each client opens
    // a new session and reads: the caller sees only the answer.
    assert_eq!(own.account(&shop).await.expect("read after the restart").name, "本屋");
    assert_eq!(town.account(&town_account).await.expect("the town too").role, "town");
    // And the token it has now is one the node knows.
    let anonymous = Client::new(&node.url);
    not_found(anonymous.account(&shop).await);
}

#[tokio::test]
async fn a_read_that_fails_over_to_another_replica_opens_a_session_there() {
    let (first, second) = LiveNode::start_two().await;
    let (p1, p2) = (CountingProxy::start(&first.url).await, CountingProxy::start(&second.url).await);
    let client = Client::new(&format!("{},{}", p1.url, p2.url));
    let town = client.reading_as(first.town.clone(), "client test: failover");
    let town_account = AccountId::of(&first.town);
    assert_eq!(town.account(&town_account).await.expect("from the first").role, "town");
    assert_eq!((p1.sessions(), p2.sessions()), (1, 0));

    // The first replica goes away: the read goes to the second, which has never seen
    // this client's token, so the client opens a session there first.
    let mut first = first;
    first.stop().await;
    let reads_before = p2.reads();
    assert_eq!(town.account(&town_account).await.expect("from the second").role, "town");
    assert_eq!((p1.sessions(), p2.sessions()), (1, 1));
    assert_eq!(town.base(), p2.url, "the replica that answered is remembered");
    assert!(p2.reads() > reads_before);
    town.account(&town_account).await.expect("again from the second");
    assert_eq!(p2.sessions(), 1, "its session there is reused");
}

#[tokio::test]
async fn a_purpose_too_long_is_refused_before_anything_is_signed() {
    let node = LiveNode::start().await;
    let proxy = CountingProxy::start(&node.url).await;
    let long = "理由".repeat(40); // 240 bytes of UTF-8
    let town = Client::new(&proxy.url).reading_as(node.town.clone(), long);
    let error = town.account(&AccountId::of(&node.town)).await.unwrap_err();
    assert_eq!(error.code(), "purpose_too_long");
    assert_eq!(proxy.sessions(), 0);
    // The town without a reason is refused by the node.
    let town = Client::new(&proxy.url).reading_as(node.town.clone(), "");
    let error = town.account(&AccountId::of(&node.town)).await.unwrap_err();
    assert_eq!(error.code(), "purpose_required");
}

/// A server that answers as a node does for read sessions, with sessions that last
/// `ttl_ms`: the chain's head (public, and with a token only a known one), a challenge,
/// and a session for a signature that verifies (machi_ledger::read_auth). Its URL and
/// how many sessions it opened.
async fn node_with_sessions_of(ttl_ms: u64) -> (String, Arc<AtomicUsize>) {
    let (url, opened, _) = node_at_height(ttl_ms, 0).await;
    (url, opened)
}

/// `node_with_sessions_of`, its head at `height`, also recording the path and query of
/// every session request.
async fn node_at_height(ttl_ms: u64, height: u64) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let opened = Arc::new(AtomicUsize::new(0));
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
    let challenge = Hash32([7; 32]);
    let head = {
        let tokens = tokens.clone();
        move |headers: HeaderMap| {
            let tokens = tokens.clone();
            async move {
                let bearer = headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
                if bearer.is_some_and(|b| !tokens.lock().unwrap().iter().any(|t| b == format!("Bearer {t}")))
                {
                    let body = json!({"error": {"code": "read_session_invalid", "message": "unknown"}});
                    return (StatusCode::UNAUTHORIZED, Json(body));
                }
                let head = json!({"chain_id": "test-town", "height": height, "hash": Hash32([0; 32]),
                                  "timestamp_ms": 0, "txs_total": 0});
                (StatusCode::OK, Json(head))
            }
        }
    };
    let session = {
        let (opened, tokens, asked) = (opened.clone(), tokens.clone(), asked.clone());
        move |uri: Uri, Json(request): Json<ReadSessionRequest>| {
            let (opened, tokens, asked) = (opened.clone(), tokens.clone(), asked.clone());
            async move {
                asked.lock().unwrap().push(uri.to_string());
                let account: AccountId = request.account.parse().unwrap();
                let signature: [u8; 64] = hex::decode(&request.signature).unwrap().try_into().unwrap();
                read_auth::verify("test-town", &challenge.0, &account, &request.purpose, &signature)
                    .expect("the client signs the read message");
                let n = opened.fetch_add(1, Ordering::SeqCst);
                let token = Hash32([n as u8; 32]).to_hex();
                tokens.lock().unwrap().push(token.clone());
                Json(json!({"token": token, "account": account, "role": "town", "scope": "everything",
                            "expires_ms": machi_client::now_ms() + ttl_ms}))
            }
        }
    };
    let router = axum::Router::new()
        .route("/v1/chain/head", get(head))
        .route(
            "/v1/auth/challenge",
            post(move || async move { Json(json!({"challenge": challenge, "expires_ms": u64::MAX})) }),
        )
        .route("/v1/auth/session", post(session));
    (serve(router).await, opened, asked)
}

#[tokio::test]
async fn a_session_is_renewed_before_it_expires_and_kept_while_it_has_time() {
    let key = machi_node::generate_key();
    // A session that ends within the renewal margin is not used again: each read opens one.
    let (url, opened) = node_with_sessions_of(machi_client::SESSION_RENEW_MS_BEFORE / 2).await;
    let client = Client::new(&url).reading_as(key.clone(), "client test: renewal");
    client.head().await.expect("a read");
    client.head().await.expect("another read");
    assert_eq!(opened.load(Ordering::SeqCst), 2, "renewed before it expires");
    // A session with more time left is kept.
    let (url, opened) = node_with_sessions_of(10 * machi_client::SESSION_RENEW_MS_BEFORE).await;
    let client = Client::new(&url).reading_as(key, "client test: renewal");
    for _ in 0..3 {
        client.head().await.expect("a read");
    }
    assert_eq!(opened.load(Ordering::SeqCst), 1, "kept while it has time");
}

#[tokio::test]
async fn a_session_waits_on_a_replica_for_the_block_this_client_saw() {
    let (url, _, asked) = node_at_height(10 * machi_client::SESSION_RENEW_MS_BEFORE, 5).await;
    let client = Client::new(&format!("{},{url}", closed_url()))
        .reading_as(machi_node::generate_key(), "client test: a replica behind");
    assert_eq!(client.head().await.expect("a read").height, 5);
    client.forget_sessions().await;
    client.head().await.expect("a read with a new session");
    // The first session was asked for before any block was seen; the second once block
    // 5 was, so a replica that has not applied it (the key's registration) waits for it.
    assert_eq!(*asked.lock().unwrap(), ["/v1/auth/session", "/v1/auth/session?min_height=5"]);
}
