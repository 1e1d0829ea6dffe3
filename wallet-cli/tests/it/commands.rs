//! Every scriptable command, its JSON output and its exit codes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use machi_api::{Lang, TxCode};
use machi_ledger::{AccountId, Action, ShopClass};
use serde_json::Value;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) json: Value,
    pub(crate) stderr: String,
}

/// Runs the wallet with `input` on its standard input (the PINs and resident numbers it
/// asks for, one a line, as a script pipes them).
pub(crate) fn wallet(node: &str, keystore: &Path, args: &[&str], input: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_machi-wallet"))
        .args(["--node", node, "--keystore"])
        .arg(keystore)
        .args(["--json", "--lang", "en"])
        .args(args)
        .env_remove("MACHI_PIN")
        .env_remove("MACHI_NEW_PIN")
        .env_remove("MACHI_RESIDENT_NUMBER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("machi-wallet runs");
    // A command that fails before it reads its input closes the pipe early.
    let _ = child.stdin.take().expect("stdin").write_all(input.as_bytes());
    let output = child.wait_with_output().expect("machi-wallet ends");
    Run {
        code: output.status.code().unwrap_or(-1),
        json: serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

#[track_caller]
pub(crate) fn ok(run: Run) -> Value {
    assert_eq!(run.code, 0, "{} {}", run.json, run.stderr);
    run.json
}

pub(crate) fn card(json: &Value) -> String {
    json["card"].as_str().expect("a card number").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn residents_operators_and_the_town_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), "wallet-town").unwrap();
    let node = machi_node::Node::open_with_clock(dir.path(), Arc::new(machi_node::SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.serve(listener, async {
        let _ = stopped.await;
    }));
    let ks = dir.path().join("keystore");
    let url = url.as_str();
    let w = |args: &[&str], input: &str| {
        let (url, ks, input) = (url.to_string(), ks.clone(), input.to_string());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                wallet(&url, &ks, &args.iter().map(String::as_str).collect::<Vec<_>>(), &input)
            })
            .await
            .unwrap()
        }
    };

    let town_key = dir.path().join("keys/town.key");
    let town_signing = machi_node::read_key(&town_key).unwrap();
    // The test reads what it checks as the town, which reads every account.
    let as_town = machi_client::Client::new(url).reading_as(town_signing.clone(), "wallet test: the check");
    let town = card(&ok(w(&["import", "--key-file", town_key.to_str().unwrap()], "1111\n").await));
    let operator = card(&ok(w(&["create", "--label", "operator"], "2222\n").await));
    ok(w(
        &["town", "register-operator", "--card", &town, "--operator-card", &operator, "--name", "1番窓口"],
        "1111\n",
    )
    .await);

    // A delegated key for the merchant API, then revoked by a freeze only the town lifts.
    let registrar = machi_node::generate_key();
    let registrar_id = machi_ledger::AccountId(registrar.verifying_key().to_bytes()).to_string();
    let delegate = ["town", "register-delegate", "--card", &town, "--delegation", "shop-registrar"];
    let delegated =
        ok(w(&[&delegate[..], &["--account", &registrar_id, "--name", "merchant API"]].concat(), "1111\n")
            .await);
    assert_eq!(delegated["delegate"], registrar_id.as_str());
    let account = as_town.account(&registrar_id.parse().unwrap()).await.unwrap();
    assert_eq!((account.role.as_str(), account.frozen), ("shop_registrar", false));
    ok(w(&["town", "freeze", "--card", &town, "--account", &registrar_id], "1111\n").await);
    let account = as_town.account(&registrar_id.parse().unwrap()).await.unwrap();
    assert!(account.frozen);
    let not_hex = w(&["town", "freeze", "--card", &town, "--account", "xyz"], "1111\n").await;
    assert_eq!(not_hex.code, 2, "{}", not_hex.stderr);
    ok(w(&["town", "unfreeze", "--card", &town, "--account", &registrar_id], "1111\n").await);

    let now = machi_client::now_ms();
    let date = |ms: u64| machi_ledger::time::format_jst_date(ms);
    let (today, tomorrow, later, latest) =
        (date(now), date(now + DAY_MS), date(now + 30 * DAY_MS), date(now + 60 * DAY_MS));
    ok(w(
        &[
            "town",
            "create-issue",
            "--card",
            &town,
            "--id",
            "1",
            "--name",
            "第1回",
            "--sets",
            "5",
            "--cap",
            "2",
            "--sale-start",
            &today,
            "--sale-end",
            &tomorrow,
            "--spend-until",
            &later,
            "--cash-out-deadline",
            &latest,
            "--fee",
            "0.5%",
        ],
        "1111\n",
    )
    .await);

    // Numbers no rate or amount can be are refused with a message (exit 2), never a panic.
    let huge = "79228162514264337593543950335";
    for (flag, value, words) in [
        ("--fee", huge, "not a rate"),
        ("--fee", "1e3%", "not a rate"),
        ("--fee", "-1%", "not a rate"),
        ("--fee", "150%", "between 0% and 100%"),
        ("--fee", "0.001%", "finer than 0.01%"),
        ("--price", huge, "too large"),
        ("--price", "7922816251426433759354395033500", "too large"),
        ("--common", "18446744073709551616", "too large"),
    ] {
        let args = [
            "town",
            "create-issue",
            "--card",
            &town,
            "--id",
            "9",
            "--name",
            "x",
            "--sets",
            "1",
            "--cap",
            "1",
            "--sale-start",
            &today,
            "--sale-end",
            &tomorrow,
            "--spend-until",
            &later,
            "--cash-out-deadline",
            &latest,
            &format!("{flag}={value}"),
        ];
        let refused = w(&args, "1111\n").await;
        assert_eq!(refused.code, 2, "{flag} {value}: {} {}", refused.json, refused.stderr);
        let message = refused.json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{flag} {value}: {message:?}");
    }
    for (flag, value) in [("--sets", "99999999999"), ("--cap", "-1"), ("--id", "4294967296")] {
        let args = ["town", "create-issue", "--card", &town, flag, value];
        assert_eq!(w(&args, "1111\n").await.code, 2, "{flag} {value}");
    }

    let id_key = dir.path().join("id.key");
    std::fs::write(&id_key, "00112233445566778899aabbccddeeff").unwrap();
    let register = |number: &'static str, pin: &'static str| {
        let id_key = id_key.to_str().unwrap().to_string();
        let operator = operator.clone();
        let w = &w;
        async move {
            w(
                &["operator", "register-resident", "--card", &operator, "--id-key", &id_key],
                &format!("2222\n{number}\n{pin}\n"),
            )
            .await
        }
    };
    let resident = card(&ok(register("1001", "2468").await));
    let again = register("1001", "9999").await;
    assert_eq!(again.code, 3, "one resident number, one account: {}", again.json);
    let sold = ok(w(
        &[
            "operator",
            "sell",
            "--card",
            &operator,
            "--resident-card",
            &resident,
            "--issue",
            "1",
            "--sets",
            "2",
        ],
        "2222\n",
    )
    .await);
    assert_eq!((sold["cash_received"].as_u64(), sold["sets_left"].as_u64()), (Some(20_000), Some(3)));
    let over_cap = w(
        &[
            "operator",
            "sell",
            "--card",
            &operator,
            "--resident-card",
            &resident,
            "--issue",
            "1",
            "--sets",
            "1",
        ],
        "2222\n",
    )
    .await;
    assert_eq!(over_cap.code, 3, "{}", over_cap.json);
    let message = over_cap.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("over_cap"));
    assert!(message.contains(machi_api::explain(TxCode::OverCap, Lang::En)), "explained in words: {message}");

    // A shop, registered with the town's key (shops normally come through the merchant API).
    let shop = machi_node::generate_key();
    let shop_id = AccountId(shop.verifying_key().to_bytes());
    let client = machi_client::Client::new(url);
    let action = Action::RegisterShop { shop: shop_id, name: "山田商店".into(), class: ShopClass::Local };
    client.submit(&machi_client::sign("wallet-town", &town_signing, action)).await.unwrap();

    let balance = ok(w(&["balance", "--card", &resident], "2468\n").await);
    assert_eq!(balance["total"], 25_000);
    let paid = ok(w(
        &[
            "pay",
            "--card",
            &resident,
            "--shop",
            &shop_id.to_hex(),
            "--amount",
            "¥1,200",
            "--invoice",
            "INV-9",
        ],
        "2468\n",
    )
    .await);
    assert_eq!((paid["balance"].as_u64(), paid["shop_name"].as_str()), (Some(23_800), Some("山田商店")));
    let too_much =
        w(&["pay", "--card", &resident, "--shop", &shop_id.to_hex(), "--amount", "30000"], "2468\n").await;
    assert_eq!(too_much.code, 3, "{}", too_much.json);
    let decimal =
        w(&["pay", "--card", &resident, "--shop", &shop_id.to_hex(), "--amount", "12.5"], "2468\n").await;
    assert_eq!(decimal.code, 2, "a fraction of a yen is a user error");
    for amount in [huge, "7922816251426433759354395033500", "１８４４６７４４０７３７０９５５１６１６"]
    {
        let args = ["pay", "--card", &resident, "--shop", &shop_id.to_hex(), "--amount", amount];
        let refused = w(&args, "2468\n").await;
        assert_eq!(refused.code, 2, "{amount}: {}", refused.json);
    }
    let history = ok(w(&["history", "--card", &resident], "2468\n").await);
    assert_eq!(history["history"][0]["kind"], "pay");
    let receipt_path = dir.path().join("receipt.txt");
    let paid_id = paid["tx_id"].as_str().unwrap();
    ok(w(&["receipt", paid_id, "--card", &resident, "--out", receipt_path.to_str().unwrap()], "2468\n")
        .await);
    let receipt = std::fs::read_to_string(&receipt_path).unwrap();
    assert!(
        receipt.contains("¥1,200") && receipt.contains("山田商店") && receipt.contains("INV-9"),
        "{receipt}"
    );

    // Wrong PINs: plain errors, then the card locks.
    for _ in 0..4 {
        assert_eq!(w(&["balance", "--card", &resident], "0000\n").await.code, 2);
    }
    let locked = w(&["balance", "--card", &resident], "0000\n").await;
    assert_eq!(locked.code, 2);
    assert!(locked.json["error"]["message"].as_str().unwrap().contains("locked"), "{}", locked.json);
    assert_eq!(w(&["balance", "--card", &resident], "2468\n").await.code, 2, "locked even for the right PIN");

    // A lost card is replaced: the new card holds the balance, the old key is revoked.
    let replaced =
        ok(w(&["operator", "replace-card", "--card", &operator, "--lost-card", &resident], "2222\n1357\n")
            .await);
    let new_card = card(&replaced);
    assert_eq!(ok(w(&["balance", "--card", &new_card], "1357\n").await)["total"], 23_800);

    assert_eq!(w(&["balance", "--card", "1234-5678-0"], "1357\n").await.code, 2, "bad check digit");
    let status = ok(w(&["town", "sale-status", "--issue", "1"], "").await);
    assert_eq!((status["sets_sold"].as_u64(), status["sets_left"].as_u64()), (Some(2), Some(3)));
    let early = w(&["town", "expire", "--card", &town, "--issue", "1"], "1111\n").await;
    assert_eq!(early.code, 3, "not before spend-until");
    let unreachable = wallet("http://127.0.0.1:9", &ks, &["town", "sale-status", "--issue", "1"], "");
    assert_eq!(unreachable.code, 4);

    // An issue from a TOML file (the names of the flags).
    let toml = dir.path().join("issue-2.toml");
    let file = format!(
        "id = 2\nname = \"第2回 ばんだい商品券\"\nsets = 40\ncap = 3\nsale_start = \"{today}\"\n\
         sale_end = \"{tomorrow}\"\nspend_until = \"{later}\"\ncash_out_deadline = \"{latest}\"\nfee = \"1%\"\n"
    );
    std::fs::write(&toml, file).unwrap();
    let create = ["town", "create-issue", "--card", &town, "--file", toml.to_str().unwrap()];
    assert_eq!(ok(w(&create, "1111\n").await)["issue"], 2);
    let issue = machi_client::Client::new(url).issue(2).await.unwrap();
    assert_eq!(
        (issue.params.total_sets, issue.params.max_sets_per_resident, issue.params.cash_out_fee.0),
        (40, 3, 100)
    );
    std::fs::write(&toml, "id = 3\nname = \"x\"\nsets = 1\ncap = 1\nsale_start = \"soon\"\n").unwrap();
    assert_eq!(w(&create, "1111\n").await.code, 2, "a bad file is the user's error");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// `--node` takes a chain's replicas separated by commas: a node that is down is passed
/// over, for reads and for a signed transaction alike; a list with a gap is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_nodes_passes_over_one_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), "wallet-town").unwrap();
    let node = machi_node::Node::open_with_clock(dir.path(), Arc::new(machi_node::SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.serve(listener, async {
        let _ = stopped.await;
    }));
    let down = {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", closed.local_addr().unwrap())
    };
    let nodes = format!("{down},{live}");
    let ks = dir.path().join("keystore");
    let w = |nodes: &str, args: &[&str], input: &str| {
        let (nodes, ks, input) = (nodes.to_string(), ks.clone(), input.to_string());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            wallet(&nodes, &ks, &args.iter().map(String::as_str).collect::<Vec<_>>(), &input)
        })
    };

    let town_key = dir.path().join("keys/town.key");
    let town =
        card(&ok(w(&nodes, &["import", "--key-file", town_key.to_str().unwrap()], "1111\n").await.unwrap()));
    let operator = card(&ok(w(&nodes, &["create", "--label", "operator"], "2222\n").await.unwrap()));
    let register =
        ["town", "register-operator", "--card", &town, "--operator-card", &operator, "--name", "窓口"];
    let registered = ok(w(&nodes, &register, "1111\n").await.unwrap());
    let tx_id = registered["tx_id"].as_str().unwrap().parse().unwrap();
    let town_signing = machi_node::read_key(&town_key).unwrap();
    let as_town = machi_client::Client::new(&live).reading_as(town_signing, "wallet test: the check");
    let committed = as_town.lookup(&tx_id).await.unwrap();
    assert_eq!(committed.map(|r| r.status), Some(machi_api::TxStatus::Applied), "{registered}");
    let tx_id = registered["tx_id"].as_str().unwrap();
    // A transaction is shown to the cards it concerns: the town's signed it.
    let checked = ok(w(&nodes, &["check", tx_id, "--card", &town], "1111\n").await.unwrap());
    assert_eq!(checked["status"], "applied", "{checked}");
    // Without a card nothing on the chain is shown, and the wallet says what to give.
    let unseen = w(&nodes, &["check", tx_id], "").await.unwrap();
    assert_eq!((unseen.code, unseen.json["status"].as_str()), (5, Some("not_found")), "{}", unseen.json);
    assert!(unseen.json["error"]["message"].as_str().unwrap().contains("--card"), "{}", unseen.json);

    let gap = w(&format!("{down},,{live}"), &["town", "sale-status", "--issue", "1"], "").await.unwrap();
    assert_eq!(gap.code, 2, "{}", gap.stderr);
    assert!(gap.stderr.contains("empty"), "{}", gap.stderr);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
