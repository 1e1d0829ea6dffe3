//! `verify-chain` through the real binary, anonymous: verified against a live node (and
//! the same answers served again as a second replica); not verified, with its own exit
//! code, when a replica serves a forged attestation, headers that do not link, or a
//! supply report other than the one it signed. The lying replicas are loopback servers
//! that answer with the live node's answers, changed.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;

use ed25519_dalek::Signer as _;
use machi_api::{AttestationView, HeadersView, SupplyReport};
use machi_client::{sign, Client};
use machi_ledger::{AccountId, Action, ShopClass};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `verify-chain`'s exit code for "not verified".
const EXIT_NOT_VERIFIED: i32 = 7;

struct Run {
    code: i32,
    json: Value,
    text: String,
}

/// The wallet's `verify-chain` against `nodes` (each its own `--node`), with no keystore
/// of any use: nothing is unlocked, nothing signed.
fn verify_chain(nodes: &[&str], extra: &[&str], json: bool) -> Run {
    let keystore = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_machi-wallet"));
    for node in nodes {
        command.args(["--node", node]);
    }
    command.arg("--keystore").arg(keystore.path());
    if json {
        command.args(["--json", "--lang", "en"]);
    }
    let output = command
        .arg("verify-chain")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("machi-wallet runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    Run {
        code: output.status.code().unwrap_or(-1),
        json: serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
        text,
    }
}

/// A replica that answers `GET` with fixed JSON by path (the query is ignored).
async fn serve(answers: BTreeMap<&'static str, String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let path = target.split('?').next().unwrap_or("/");
                let (status, body) = match answers.get(path) {
                    Some(body) => ("200 OK", body.clone()),
                    None => ("404 Not Found", r#"{"error":{"code":"not_found","message":"no"}}"#.to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

/// The live node's public answers: attestation, supply report and every header.
async fn answers(url: &str) -> (AttestationView, SupplyReport, HeadersView) {
    let get = |path: String| async move { reqwest::get(path).await.unwrap().text().await.unwrap() };
    let attestation: AttestationView =
        serde_json::from_str(&get(format!("{url}/v1/attestation")).await).unwrap();
    let supply: SupplyReport = serde_json::from_str(&get(format!("{url}/v1/supply")).await).unwrap();
    let headers: HeadersView =
        serde_json::from_str(&get(format!("{url}/v1/headers?from=0&to={}", attestation.height)).await)
            .unwrap();
    (attestation, supply, headers)
}

fn as_served(
    attestation: &AttestationView,
    supply: &SupplyReport,
    headers: &HeadersView,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("/v1/attestation", serde_json::to_string(attestation).unwrap()),
        ("/v1/supply", serde_json::to_string(supply).unwrap()),
        ("/v1/headers", serde_json::to_string(headers).unwrap()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_verifies_the_chain_and_catches_a_lying_replica() {
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), "wallet-town").unwrap();
    let node = machi_node::Node::open_with_clock(dir.path(), Arc::new(machi_node::SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.serve(listener, async {
        let _ = stopped.await;
    }));
    let town = machi_node::read_key(&dir.path().join("keys/town.key")).unwrap();
    let producer = machi_node::read_key(&dir.path().join("keys/producer.key")).unwrap();
    let client = Client::new(&url);
    let now = machi_client::now_ms();
    let issue = machi_ledger::IssueParams {
        id: 1,
        name: "第1回 プレミアム商品券".into(),
        price: machi_ledger::Yen(10_000),
        common_per_set: machi_ledger::Yen(6_000),
        local_per_set: machi_ledger::Yen(6_000),
        total_sets: 100,
        max_sets_per_resident: 2,
        workers_may_buy: false,
        sale_start_ms: now,
        sale_end_ms: now + 86_400_000,
        spend_until_ms: now + 30 * 86_400_000,
        cash_out_deadline_ms: now + 60 * 86_400_000,
        cash_out_fee: machi_ledger::RateBp(100),
    };
    client.submit(&sign("wallet-town", &town, Action::CreateIssue { issue })).await.unwrap();
    for name in ["八百屋", "魚屋", "本屋"] {
        let shop = AccountId::of(&machi_node::generate_key());
        let tx = sign(
            "wallet-town",
            &town,
            Action::RegisterShop { shop, name: name.into(), class: ShopClass::Local },
        );
        client.submit(&tx).await.unwrap();
    }
    let (attestation, supply, headers) = answers(&url).await;
    assert_eq!(attestation.height, 4);

    // Verified: against the live node, in plain Japanese and as JSON; and with its own
    // answers served again by a second "replica", and the key the town publishes.
    let run = tokio::task::spawn_blocking({
        let url = url.clone();
        move || verify_chain(&[&url], &[], false)
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{}", run.text);
    assert!(run.text.contains("結果: 確かめられました"), "{}", run.text);
    let copy = serve(as_served(&attestation, &supply, &headers)).await;
    let key_arg = format!("1={}", AccountId::of(&producer));
    let run = tokio::task::spawn_blocking({
        let (url, copy, key_arg) = (url.clone(), copy.clone(), key_arg.clone());
        move || verify_chain(&[&url, &copy], &["--replica-key", &key_arg], true)
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{}", run.text);
    assert_eq!(run.json["verdict"], "verified");
    assert_eq!(run.json["headers_checked"], 5);
    assert_eq!(run.json["replicas"].as_array().unwrap().len(), 2);
    for check in ["reached", "keys", "headers", "linked", "supply", "agree"] {
        assert_eq!(run.json["checks"][check], true, "{check}: {}", run.json);
    }
    // From a trusted height and hash on.
    let trusted = headers.headers[2].hash.to_hex();
    let run = tokio::task::spawn_blocking({
        let url = url.clone();
        move || verify_chain(&[&url], &["--from", "2", "--block-hash", &trusted], true)
    })
    .await
    .unwrap();
    assert_eq!((run.code, run.json["headers_checked"].clone()), (0, Value::from(3)), "{}", run.text);

    // Each lie, served by a replica of its own, is caught: not verified, exit 7.
    let not_verified =
        |answers: BTreeMap<&'static str, String>, failing: &'static str, extra: Vec<String>| {
            let url = url.clone();
            async move {
                let liar = serve(answers).await;
                let run = tokio::task::spawn_blocking(move || {
                    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                    verify_chain(&[&url, &liar], &extra, true)
                })
                .await
                .unwrap();
                assert_eq!(run.code, EXIT_NOT_VERIFIED, "{failing}: {}", run.text);
                assert_eq!(run.json["verdict"], "not_verified", "{failing}: {}", run.json);
                assert_eq!(run.json["error"]["kind"], "not_verified");
                assert_eq!(run.json["checks"][failing], false, "{failing}: {}", run.json);
                run
            }
        };

    // An attestation signed by another key than the replica's on chain.
    let mut forged = attestation.clone();
    let statement = forged.statement().unwrap();
    forged.signature = hex::encode(statement.sign(&machi_node::generate_key()));
    let mut forged_supply = supply.clone();
    forged_supply.attestation = forged.clone();
    not_verified(as_served(&forged, &forged_supply, &headers), "keys", vec![]).await;
    // The right signature, but of a key the town did not publish for replica 1.
    not_verified(
        as_served(&attestation, &supply, &headers),
        "keys",
        vec!["--replica-key".into(), format!("1={}", AccountId::of(&town))],
    )
    .await;

    // Headers that do not link: block 2 made anew (its own hash, signed by the producer's
    // key), so block 3 no longer follows it.
    let mut rewritten = headers.clone();
    let h = &mut rewritten.headers[2];
    h.timestamp_ms += 1;
    h.hash = h.header(&rewritten.chain_id).hash();
    h.signature = hex::encode(producer.sign(&h.hash.0).to_bytes());
    let liar = serve(as_served(&attestation, &supply, &rewritten)).await;
    let run = tokio::task::spawn_blocking(move || verify_chain(&[&liar], &[], true)).await.unwrap();
    assert_eq!(run.code, EXIT_NOT_VERIFIED, "{}", run.text);
    assert_eq!(
        (run.json["checks"]["headers"].clone(), run.json["checks"]["linked"].clone()),
        (Value::from(true), Value::from(false)),
        "{}",
        run.json
    );
    // A header whose fields do not hash to its hash.
    let mut changed = headers.clone();
    changed.headers[1].tx_count += 1;
    not_verified(as_served(&attestation, &supply, &changed), "headers", vec![]).await;

    // A supply report other than the one the replica signed.
    let mut differs = supply.clone();
    differs.issues[0].sets_left -= 1;
    let run = not_verified(as_served(&attestation, &differs, &headers), "supply", vec![]).await;
    assert!(run.json["error"]["message"].as_str().unwrap().contains("supply report"), "{}", run.json);

    // A replica at the same height that attests another supply, signed by no replica key.
    let mut other = attestation.clone();
    other.supply_digest = differs.digest().unwrap();
    other.signature = hex::encode(other.statement().unwrap().sign(&producer));
    let mut other_supply = differs.clone();
    other_supply.attestation = other.clone();
    not_verified(as_served(&other, &other_supply, &headers), "agree", vec![]).await;

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A live cluster in this process: the town office and the bank vote, the auditor's
/// replica is a learner; every one serves its API and its Raft listener on loopback.
struct LiveCluster {
    urls: Vec<String>,
    keys: Vec<AccountId>,
    town: machi_ledger::SigningKey,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    served: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl LiveCluster {
    async fn start(chain_id: &str) -> LiveCluster {
        let dir = tempfile::tempdir().unwrap();
        let names = ["town office", "bank", "auditor"];
        let mut listeners = Vec::new();
        let mut keys = Vec::new();
        let mut toml = String::new();
        for (i, name) in names.iter().enumerate() {
            let data = dir.path().join(format!("r{}", i + 1));
            let (_, key) = machi_node::keygen(&data).unwrap();
            let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let raft = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            toml += &format!(
                "[[replica]]\nid = {}\nname = \"{name}\"\napi_addr = \"{}\"\nraft_addr = \"{}\"\n\
                 producer_key = \"{key}\"\nvoter = {}\n\n",
                i + 1,
                api.local_addr().unwrap(),
                raft.local_addr().unwrap(),
                i < 2
            );
            keys.push(key);
            listeners.push((data, api, raft));
        }
        let cluster_file = dir.path().join("cluster.toml");
        std::fs::write(&cluster_file, toml).unwrap();
        let cluster = machi_node::read_cluster_file(&cluster_file).unwrap();
        let town_path = machi_node::init_cluster(&listeners[0].0, chain_id, &cluster).unwrap();
        let genesis = machi_node::genesis_path(&listeners[0].0);
        for (data, _, _) in &listeners[1..] {
            machi_node::init_from_genesis(data, &genesis, None).unwrap();
        }
        let town = machi_node::read_key(&town_path).unwrap();
        let (mut urls, mut stops, mut served) = (Vec::new(), Vec::new(), Vec::new());
        for (data, api, raft) in listeners {
            urls.push(format!("http://{}", api.local_addr().unwrap()));
            let node = machi_node::Node::open_with_clock(&data, Arc::new(machi_node::SystemClock)).unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            served.push(tokio::spawn(node.serve_replica(api, raft, Default::default(), async {
                let _ = stopped.await;
            })));
            stops.push(stop);
        }
        LiveCluster { urls, keys, town, stops, served, _dir: dir }
    }

    async fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for served in self.served {
            served.await.unwrap().unwrap();
        }
    }
}

/// Against a live cluster of two voters and a learner, each replica named with its own
/// --node: every replica attests with its key on chain (the learner too), at one height
/// they agree, the headers link; verified. With the keys the town publishes, still
/// verified; with a wrong one, not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_verifies_a_live_cluster_learner_included() {
    let cluster = LiveCluster::start("cluster-town").await;
    let client = Client::new(&cluster.urls.join(","));
    for name in ["八百屋", "魚屋"] {
        let shop = AccountId::of(&machi_node::generate_key());
        let tx = sign(
            "cluster-town",
            &cluster.town,
            Action::RegisterShop { shop, name: name.into(), class: ShopClass::Local },
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        // The cluster elects its first leader while the first transaction is sent.
        while !client.submit(&tx).await.is_ok_and(|r| r.status == machi_api::TxStatus::Applied) {
            assert!(std::time::Instant::now() < deadline, "no block within a minute");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let published: Vec<String> =
        cluster.keys.iter().enumerate().map(|(i, key)| format!("{}={key}", i + 1)).collect();
    let urls = cluster.urls.clone();
    let run = tokio::task::spawn_blocking(move || {
        let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
        let mut extra = Vec::new();
        for key in &published {
            extra.extend(["--replica-key", key.as_str()]);
        }
        verify_chain(&nodes, &extra, true)
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{}", run.text);
    assert_eq!(run.json["verdict"], "verified");
    let replicas = run.json["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3);
    for (i, replica) in replicas.iter().enumerate() {
        assert_eq!(replica["replica"], i as u64 + 1);
        assert_eq!(replica["key"], cluster.keys[i].to_hex(), "replica {} attests with its own key", i + 1);
        assert_eq!(replica["height"], replicas[0]["height"], "compared at one height: {}", run.json);
        assert_eq!(replica["supply_digest"], replicas[0]["supply_digest"]);
    }
    assert_eq!(replicas[2]["name"], "auditor");

    // The bank's key as the town does not publish it: not verified.
    let wrong = format!("2={}", AccountId::of(&machi_node::generate_key()));
    let urls = cluster.urls.clone();
    let run = tokio::task::spawn_blocking(move || {
        let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
        verify_chain(&nodes, &["--replica-key", &wrong], true)
    })
    .await
    .unwrap();
    assert_eq!(run.code, EXIT_NOT_VERIFIED, "{}", run.text);
    assert_eq!(run.json["checks"]["keys"], false);
    cluster.stop().await;
}
