//! A corpus of hostile requests against a running node: each gets its documented 4xx
//! JSON error, the node stays up, and the chain does not change; all of it while slow
//! clients that send half a request head and stall hold connections, which the node
//! closes after its header time-out.

use std::io::{Read, Write};
use std::sync::Arc;

use machi_client::{sign, sign_at, Client};
use machi_ledger::{AccountId, Action, Hash32, ShopClass, SignedTx, Yen};
use machi_node::{Node, SystemClock};
use serde_json::{json, Value};

fn id(key: &machi_ledger::SigningKey) -> AccountId {
    AccountId::of(key)
}

struct Case {
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(name: &'static str, body: impl Into<Vec<u8>>, status: u16, code: &'static str) -> Case {
    Case { name, body: body.into(), status, code }
}

fn json_of(tx: &SignedTx) -> Value {
    serde_json::to_value(tx).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_documented_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), "hostile-town").unwrap();
    let town = machi_node::read_key(&dir.path().join("keys/town.key")).unwrap();
    let node = Node::open_with_clock(dir.path(), Arc::new(SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let client = Client::new(&url);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = machi_node::ServeLimits {
        connections_max: 8,
        header_read_timeout: std::time::Duration::from_millis(500),
        request_timeout: std::time::Duration::from_secs(5),
    };
    let server = tokio::spawn(node.serve_with(listener, limits, async {
        let _ = stopped.await;
    }));
    // Twice as many slow clients as the node serves at once.
    let stalled: Vec<std::net::TcpStream> = (0..2 * limits.connections_max)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
            stream.write_all(b"POST /v1/transactions HTTP/1.1\r\nHost: machi\r\nContent-Le").unwrap();
            stream
        })
        .collect();

    // A registered operator and resident, so role abuse can be tried.
    let (op, resident) = (machi_node::generate_key(), machi_node::generate_key());
    let chain = "hostile-town";
    let setup = [
        sign(chain, &town, Action::RegisterOperator { operator: id(&op), name: "窓口".into() }),
        sign(
            chain,
            &op,
            Action::RegisterResident {
                resident: id(&resident),
                resident_hash: Hash32([1; 32]),
                worker: false,
            },
        ),
    ];
    client.submit_batch(&setup).await.unwrap();
    let replayed = client.submit(&setup[0]).await.unwrap();

    let shop = || Action::RegisterShop {
        shop: id(&machi_node::generate_key()),
        name: "店".into(),
        class: ShopClass::Local,
    };
    let valid = sign(chain, &town, shop());
    let valid_json = serde_json::to_string(&valid).unwrap();
    let mut forged = sign(chain, &town, shop());
    forged.signature[5] ^= 0x10;
    let (mut a, mut b) = (sign(chain, &town, shop()), sign(chain, &town, shop()));
    std::mem::swap(&mut a.signature, &mut b.signature);
    let mut unknown_field = json_of(&valid);
    unknown_field["amount"] = json!(-5);
    let mut decimal = json_of(&valid);
    decimal["body_hex"] = json!(1.5);
    let mut number_signer = json_of(&valid);
    number_signer["signer"] = json!(123456789);
    let mut huge = json_of(&valid);
    huge["signature"] = json!(1e300);
    let mut garbage_body = valid.clone();
    garbage_body.body = vec![0xff; 64];
    let mut non_canonical = valid.clone();
    non_canonical.body.push(0);
    let mut weak = valid.clone();
    weak.signer = AccountId({
        let mut k = [0u8; 32];
        k[0] = 1; // the identity point: a small-order key
        k
    });
    let over_batch: Vec<SignedTx> = (0..1_025).map(|_| valid.clone()).collect();
    let as_shop = sign(chain, &resident, Action::RequestCashOut { issue: 1, amount: Yen(1) });
    let as_town = sign(chain, &op, Action::ExpireIssue { issue: 1 });
    let stale = sign_at(chain, &town, shop(), machi_client::now_ms() - 3_600_000);
    let future = sign_at(chain, &town, shop(), machi_client::now_ms() + 3_600_000);
    let other_chain = sign("another-town", &town, shop());
    let stranger = sign(chain, &machi_node::generate_key(), shop());
    let mut forged_stranger = sign(chain, &machi_node::generate_key(), shop());
    forged_stranger.signature[9] ^= 0x01;
    let long_chain_id = {
        let body = machi_ledger::TxBody {
            chain_id: "x".repeat(70_000),
            created_ms: machi_client::now_ms(),
            ttl_ms: 60_000,
            nonce: 1,
            action: shop(),
        };
        SignedTx::sign(chain, &town, &body)
    };
    let to_vec = |v: &Value| serde_json::to_vec(v).unwrap();

    let cases = vec![
        case("empty body", "", 400, "malformed_json"),
        case("truncated JSON", &valid_json[..valid_json.len() / 2], 400, "malformed_json"),
        case("not UTF-8", vec![0xff, 0xfe, 0x7b], 400, "malformed_json"),
        case("JSON of the wrong shape", "{}", 400, "invalid_request"),
        case("a bare number", "42", 400, "invalid_request"),
        case("signer as a number", to_vec(&number_signer), 400, "invalid_request"),
        case("huge number", to_vec(&huge), 400, "invalid_request"),
        case("unknown field, negative amount", to_vec(&unknown_field), 400, "invalid_request"),
        case("decimal where hex belongs", to_vec(&decimal), 400, "invalid_request"),
        case("10 MB body", vec![b'['; 10 * 1024 * 1024], 413, "body_too_large"),
        case("batch over the limit", serde_json::to_vec(&over_batch).unwrap(), 413, "batch_too_large"),
        case("empty batch", "[]", 400, "empty_batch"),
        case("body that does not decode", serde_json::to_vec(&garbage_body).unwrap(), 400, "malformed_body"),
        case("non-canonical body", serde_json::to_vec(&non_canonical).unwrap(), 400, "non_canonical_body"),
        case("wrong chain id", serde_json::to_vec(&other_chain).unwrap(), 400, "wrong_chain"),
        case("time-to-live passed", serde_json::to_vec(&stale).unwrap(), 400, "ttl_expired"),
        case("created in the future", serde_json::to_vec(&future).unwrap(), 400, "not_yet_valid"),
        case("forged signature", serde_json::to_vec(&forged).unwrap(), 401, "bad_signature"),
        case("swapped signatures", serde_json::to_vec(&a).unwrap(), 401, "bad_signature"),
        // No account has a small-order key, so it is refused as unknown before any check.
        case("small-order signer key", serde_json::to_vec(&weak).unwrap(), 401, "unknown_signer"),
        case("unknown signer", serde_json::to_vec(&stranger).unwrap(), 401, "unknown_signer"),
        case(
            "unknown signer, forged signature",
            serde_json::to_vec(&forged_stranger).unwrap(),
            401,
            "unknown_signer",
        ),
        case("chain id of 70,000 bytes", serde_json::to_vec(&long_chain_id).unwrap(), 400, "body_too_large"),
        case("resident signing as a shop", serde_json::to_vec(&as_shop).unwrap(), 403, "wrong_role"),
        case("operator acting as the town", serde_json::to_vec(&as_town).unwrap(), 403, "wrong_role"),
    ];
    let http = reqwest::Client::new();
    let head = client.head().await.unwrap();
    for c in &cases {
        let response = http.post(format!("{url}/v1/transactions")).body(c.body.clone()).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, c.status, "{}: {body}", c.name);
        assert_eq!(body["error"]["code"], c.code, "{}: {body}", c.name);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", c.name);
        assert_eq!(client.health().await.unwrap().status, "ok", "{}: node still up", c.name);
    }
    assert_eq!(client.head().await.unwrap(), head, "the chain did not change");
    // A replay is answered with the first outcome and commits nothing new.
    assert_eq!(client.submit(&setup[0]).await.unwrap(), replayed);
    assert_eq!(client.head().await.unwrap(), head);

    // The slow clients were closed by the node (a read sees the end of the stream).
    tokio::task::spawn_blocking(move || {
        for (i, mut stream) in stalled.into_iter().enumerate() {
            let mut got = Vec::new();
            stream.read_to_end(&mut got).unwrap();
            assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 408"), "slow client {i}: {got:?}");
        }
    })
    .await
    .unwrap();

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
