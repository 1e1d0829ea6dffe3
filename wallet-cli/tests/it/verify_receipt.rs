//! `verify-receipt` through the real binary: proven against a live node, not proven
//! against another block's hash, for a rejected transaction or a changed proof (its own
//! exit code), and proven from an exported proof file with no node at all.

use std::process::Command;
use std::sync::Arc;

use machi_api::TxProof;
use machi_client::{sign, Client};
use machi_ledger::{AccountId, Action, IssueParams, RateBp, Yen};
use serde_json::Value;

use crate::commands::{card, ok, wallet};

/// `verify-receipt`'s exit code for "not proven".
const EXIT_NOT_PROVEN: i32 = 6;

fn receipt_code(proof: &TxProof) -> String {
    format!(
        "MACHI-RECEIPT:V1:{}:{}:{}:{}",
        proof.header.chain_id,
        proof.tx_id.to_hex().to_uppercase(),
        proof.header.height,
        proof.block_hash.to_hex().to_uppercase()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_is_proven_against_the_trusted_block_hash_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), "wallet-town").unwrap();
    let node = machi_node::Node::open_with_clock(dir.path(), Arc::new(machi_node::SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.serve(listener, async {
        let _ = stopped.await;
    }));
    let down = {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", closed.local_addr().unwrap())
    };
    let ks = dir.path().join("keystore");
    let w = |node: &str, args: &[&str], input: &str| {
        let (node, ks, input) = (node.to_string(), ks.clone(), input.to_string());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            wallet(&node, &ks, &args.iter().map(String::as_str).collect::<Vec<_>>(), &input)
        })
    };

    // A transaction applied, and the same registration again, rejected.
    let town_key = dir.path().join("keys/town.key");
    let town =
        card(&ok(w(&url, &["import", "--key-file", town_key.to_str().unwrap()], "1111\n").await.unwrap()));
    let operator = card(&ok(w(&url, &["create", "--label", "operator"], "2222\n").await.unwrap()));
    let register =
        ["town", "register-operator", "--card", &town, "--operator-card", &operator, "--name", "窓口"];
    let applied = ok(w(&url, &register, "1111\n").await.unwrap())["tx_id"].as_str().unwrap().to_string();
    let again = w(&url, &register, "1111\n").await.unwrap();
    assert_eq!(again.code, 3, "{}", again.json);
    let rejected = again.json["tx_id"].as_str().unwrap().to_string();

    // Against the live node: the block hash at the receipt's height is read from it.
    let proven = ok(w(&url, &["verify-receipt", "--tx", &applied], "").await.unwrap());
    assert_eq!(proven["verdict"], "proven", "{proven}");
    assert_eq!(proven["trusted_from"], url.as_str());
    for check in ["header_matches", "tx_included", "outcome_included", "applied"] {
        assert_eq!(proven["checks"][check], true, "{check}: {proven}");
    }
    // The test reads a whole block as the town (full blocks are not public).
    let client =
        Client::new(&url).reading_as(machi_node::read_key(&town_key).unwrap(), "wallet test: blocks");
    let proof = client.proof(&applied.parse().unwrap()).await.unwrap();
    let block_hash = proof.block_hash.to_hex();
    let parent = client.block(proof.header.height - 1).await.unwrap().hash.to_hex();
    let code = receipt_code(&proof);

    // The receipt's code, checked against the hash the town publishes.
    let proven = ok(w(&url, &["verify-receipt", &code, "--block-hash", &block_hash], "").await.unwrap());
    assert_eq!((&proven["verdict"], &proven["trusted_from"]), (&"proven".into(), &"given".into()));

    // Another block's hash: not proven, with its own exit code.
    let wrong = w(&url, &["verify-receipt", "--tx", &applied, "--block-hash", &parent], "").await.unwrap();
    assert_eq!(wrong.code, EXIT_NOT_PROVEN, "{} {}", wrong.json, wrong.stderr);
    assert_eq!(wrong.json["verdict"], "not_proven");
    assert_eq!(wrong.json["error"]["kind"], "not_proven");
    assert_eq!(wrong.json["checks"]["header_matches"], false);
    // A receipt whose code names one block, checked against another's hash.
    let wrong = w(&url, &["verify-receipt", &code, "--block-hash", &parent], "").await.unwrap();
    assert_eq!((wrong.code, &wrong.json["receipt_matches"]), (EXIT_NOT_PROVEN, &Value::Bool(false)));

    // A rejected transaction is on record, but a receipt of it is not proven.
    let not_applied = w(&url, &["verify-receipt", "--tx", &rejected], "").await.unwrap();
    assert_eq!(not_applied.code, EXIT_NOT_PROVEN, "{}", not_applied.json);
    let checks = &not_applied.json["checks"];
    assert_eq!((&checks["outcome_included"], &checks["applied"]), (&Value::Bool(true), &Value::Bool(false)));
    assert_eq!(not_applied.json["outcome"]["reason"], "account_exists");

    // A transaction the node does not know.
    let unknown = w(&url, &["verify-receipt", "--tx", &"7".repeat(64)], "").await.unwrap();
    assert_eq!(unknown.code, EXIT_NOT_PROVEN, "{}", unknown.json);

    // No node at all: the proof exported to a file and the town's published hash.
    let file = dir.path().join("proof.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&proof).unwrap()).unwrap();
    let offline = ["verify-receipt", &code, "--proof", file.to_str().unwrap(), "--block-hash", &block_hash];
    let proven = ok(w(&down, &offline, "").await.unwrap());
    assert_eq!(proven["verdict"], "proven", "{proven}");
    // The same file with another index, or one bit of the header's root changed.
    let mut changed = proof.clone();
    changed.index += 1;
    std::fs::write(&file, serde_json::to_vec(&changed).unwrap()).unwrap();
    let tampered = w(&down, &offline, "").await.unwrap();
    assert_eq!(tampered.code, EXIT_NOT_PROVEN, "{}", tampered.json);
    assert_eq!(tampered.json["checks"]["tx_included"], false);
    let mut changed = proof.clone();
    changed.header.tx_root.0[0] ^= 1;
    std::fs::write(&file, serde_json::to_vec(&changed).unwrap()).unwrap();
    let tampered = w(&down, &offline, "").await.unwrap();
    assert_eq!(tampered.code, EXIT_NOT_PROVEN, "{}", tampered.json);
    assert_eq!(tampered.json["checks"]["header_matches"], false);
    // The proof claiming "applied" for the rejected one.
    let mut claimed = client.proof(&rejected.parse().unwrap()).await.unwrap();
    claimed.outcome.status = 0;
    claimed.outcome.reason_code = 0;
    std::fs::write(&file, serde_json::to_vec(&claimed).unwrap()).unwrap();
    let its_block = claimed.block_hash.to_hex();
    let forged = w(
        &down,
        &["verify-receipt", "--tx", &rejected, "--proof", file.to_str().unwrap(), "--block-hash", &its_block],
        "",
    )
    .await
    .unwrap();
    assert_eq!(forged.code, EXIT_NOT_PROVEN, "{}", forged.json);
    let checks = &forged.json["checks"];
    assert_eq!(
        (&checks["header_matches"], &checks["outcome_included"]),
        (&Value::Bool(true), &Value::Bool(false)),
        "{}",
        forged.json
    );

    // The trusted hash read from other replicas than the one serving the proof (a list:
    // the first is down, the next answers), or only from one that is down.
    let others = format!("{down},{url}");
    let proven = ok(w(&url, &["verify-receipt", &code, "--trust-node", &others], "").await.unwrap());
    assert_eq!(proven["trusted_from"], url.as_str(), "{proven}");
    let unreachable = w(&url, &["verify-receipt", &code, "--trust-node", &down], "").await.unwrap();
    assert_eq!(unreachable.code, 4, "{}", unreachable.json);

    // A purchase of sets at the counter: its printed receipt is proven too.
    let (purchase, buyer) = purchase(&client, &town_key).await;
    let buyer =
        machi_wallet::keystore::Keystore::open(&ks).unwrap().create(&buyer, "3333", "resident").unwrap();
    let receipt = dir.path().join("purchase.txt");
    let print =
        ["receipt", &purchase.to_hex(), "--card", &buyer.display(), "--out", receipt.to_str().unwrap()];
    ok(w(&url, &print, "3333\n").await.unwrap());
    let printed = std::fs::read_to_string(&receipt).unwrap();
    assert!(printed.contains("ご購入明細") && printed.contains("MACHI-RECEIPT:V1:wallet-town:"), "{printed}");
    let proven = ok(w(&url, &["verify-receipt", receipt.to_str().unwrap()], "").await.unwrap());
    assert_eq!((&proven["verdict"], &proven["tx_id"]), (&"proven".into(), &purchase.to_hex().into()));

    // For people: a plain Japanese verdict.
    let output = Command::new(env!("CARGO_BIN_EXE_machi-wallet"))
        .args(["--node", &url, "--keystore"])
        .arg(&ks)
        .args(["verify-receipt", &code, "--block-hash", &block_hash])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("確かめられました") && text.contains("✔ 取引が、そのブロックに記録されています"),
        "{text}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_machi-wallet"))
        .args(["--node", &url, "--keystore"])
        .arg(&ks)
        .args(["verify-receipt", &code, "--block-hash", &parent])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(EXIT_NOT_PROVEN), "{stderr}");
    assert!(stderr.contains("領収書を確かめられませんでした"), "{stderr}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// An operator sells a resident one set of a new issue: the purchase's id and the
/// resident's key.
async fn purchase(
    client: &Client,
    town_key: &std::path::Path,
) -> (machi_ledger::TxId, machi_ledger::SigningKey) {
    let town = machi_node::read_key(town_key).unwrap();
    let (operator, resident) = (machi_node::generate_key(), machi_node::generate_key());
    let chain_id = client.head().await.unwrap().chain_id;
    let now = machi_client::now_ms();
    let day = 24 * 60 * 60 * 1000;
    let issue = IssueParams {
        id: 1,
        name: "第1回".into(),
        price: Yen(10_000),
        common_per_set: Yen(6_000),
        local_per_set: Yen(6_000),
        total_sets: 10,
        max_sets_per_resident: 2,
        workers_may_buy: false,
        sale_start_ms: now - day,
        sale_end_ms: now + day,
        spend_until_ms: now + 30 * day,
        cash_out_deadline_ms: now + 60 * day,
        cash_out_fee: RateBp(0),
    };
    let steps = [
        (&town, Action::RegisterOperator { operator: AccountId::of(&operator), name: "窓口".into() }),
        (&town, Action::CreateIssue { issue }),
        (
            &operator,
            Action::RegisterResident {
                resident: AccountId::of(&resident),
                resident_hash: machi_ledger::sha256(b"resident"),
                worker: false,
            },
        ),
        (
            &operator,
            Action::SellSets {
                issue: 1,
                resident: AccountId::of(&resident),
                sets: 1,
                cash_received: Yen(10_000),
            },
        ),
    ];
    let mut last = None;
    for (key, action) in steps {
        let result = client.submit(&sign(&chain_id, key, action)).await.unwrap();
        assert_eq!(result.status, machi_api::TxStatus::Applied, "{result:?}");
        last = Some(result.tx_id);
    }
    (last.unwrap(), resident)
}
