//! Who reads what, through the real binary against a live node that refuses anonymous
//! reads: a resident's balance and history as their own card; another resident's card
//! told plainly that it is not found; the town and an auditor reading an account only
//! with a reason (`--why`), the chain exported as `machi-node export` writes it, and
//! the node's access log read back with who read what and why.

use machi_ledger::AccountId;
use machi_wallet::keystore::Keystore;
use serde_json::Value;

use crate::cash::{Town, TOWN_PIN};
use crate::commands::ok;

const RESIDENT_PIN: &str = "2468";
const NEIGHBOUR_PIN: &str = "1357";
const AUDITOR_PIN: &str = "4444";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_residents_spending_is_read_by_their_card_and_by_auditors_who_say_why() {
    let town = Town::start().await;
    let (operator, _) = town.counters[0].clone();
    town.applied(&operator, town.sell(0, 2)).await;
    let store = Keystore::open(&town.keystore()).unwrap();
    let resident = store.create(&town.residents[0], RESIDENT_PIN, "resident").unwrap().display();
    let neighbour = store.create(&town.residents[1], NEIGHBOUR_PIN, "resident").unwrap().display();
    let account = AccountId::of(&town.residents[0]);
    let pin = |pin: &str| format!("{pin}\n");

    // Nobody without a key reads the account: it is answered as one that does not exist.
    let anonymous = machi_client::Client::new(&town.url).account(&account).await.unwrap_err();
    assert_eq!(anonymous.code(), "not_found", "{anonymous}");

    // The resident's own card reads the balance and the history.
    let balance = ok(town.wallet(&["balance", "--card", &resident], &pin(RESIDENT_PIN)).await);
    assert_eq!(
        (balance["total"].as_u64(), balance["account"].as_str()),
        (Some(24_000), Some(&*account.to_hex()))
    );
    let history = ok(town.wallet(&["history", "--card", &resident], &pin(RESIDENT_PIN)).await);
    let purchase = history["history"][0]["tx_id"].as_str().unwrap().to_string();
    assert_eq!(history["history"][0]["kind"], "sell_sets", "{history}");
    let receipt = town.dir.path().join("receipt.txt");
    let print = ["receipt", &purchase, "--card", &resident, "--out", receipt.to_str().unwrap()];
    ok(town.wallet(&print, &pin(RESIDENT_PIN)).await);
    assert!(std::fs::read_to_string(&receipt).unwrap().contains("MACHI-RECEIPT:V1:"));

    // The neighbour's card cannot read the resident's purchase, and is told plainly.
    let print = ["receipt", &purchase, "--card", &neighbour, "--out", receipt.to_str().unwrap()];
    let refused = town.wallet(&print, &pin(NEIGHBOUR_PIN)).await;
    assert_eq!(
        (refused.code, refused.json["error"]["kind"].as_str()),
        (3, Some("not_found")),
        "{}",
        refused.json
    );
    assert!(refused.json["error"]["message"].as_str().unwrap().starts_with("not found"), "{}", refused.json);
    let checked = town.wallet(&["check", &purchase, "--card", &neighbour], &pin(NEIGHBOUR_PIN)).await;
    assert_eq!((checked.code, checked.json["status"].as_str()), (5, Some("not_found")), "{}", checked.json);
    let checked = ok(town.wallet(&["check", &purchase, "--card", &resident], &pin(RESIDENT_PIN)).await);
    assert_eq!(checked["status"], "applied");

    // The town reads any account, but only saying why; without a reason nothing is read
    // and no PIN is asked.
    let town_reads = |why: Option<&'static str>| {
        let mut args = vec![
            "audit".to_string(),
            "account".into(),
            account.to_hex(),
            "--card".into(),
            town.town_card.clone(),
        ];
        if let Some(why) = why {
            args.extend(["--why".to_string(), why.to_string()]);
        }
        args
    };
    for why in [None, Some("ab"), Some("    ")] {
        let args = town_reads(why);
        let refused = town.wallet(&args.iter().map(String::as_str).collect::<Vec<_>>(), "").await;
        assert_eq!(refused.code, 2, "{why:?}: {}", refused.json);
        assert!(refused.json["error"]["message"].as_str().unwrap().contains("--why"), "{}", refused.json);
    }
    let args = town_reads(Some("disclosure request 2027-014"));
    let read = ok(town.wallet(&args.iter().map(String::as_str).collect::<Vec<_>>(), &pin(TOWN_PIN)).await);
    assert_eq!(
        (read["total"].as_u64(), read["history"][0]["tx_id"].as_str()),
        (Some(24_000), Some(&*purchase))
    );

    // An auditor's card: registered by the town, it signs nothing and reads everything.
    let auditor_key = machi_node::generate_key();
    let auditor = store.create(&auditor_key, AUDITOR_PIN, "auditor").unwrap().display();
    let auditor_id = AccountId::of(&auditor_key).to_hex();
    let register = [
        "town",
        "register-delegate",
        "--card",
        &town.town_card,
        "--delegation",
        "auditor",
        "--account",
        &auditor_id,
        "--name",
        "監査委員",
    ];
    ok(town.wallet(&register, &pin(TOWN_PIN)).await);
    let role = town.client.account(&AccountId::of(&auditor_key)).await.unwrap().role;
    assert_eq!(role, machi_ledger::Role::Auditor.name());
    let freeze = ["town", "freeze", "--card", &auditor, "--account", &account.to_hex()];
    assert_eq!(town.wallet(&freeze, &pin(AUDITOR_PIN)).await.code, 3, "an auditor signs nothing");
    let why = "annual audit 2027";
    let audit = ["audit", "account", &account.to_hex(), "--card", &auditor, "--why", why];
    assert_eq!(ok(town.wallet(&audit, &pin(AUDITOR_PIN)).await)["total"], 24_000);

    // The whole chain, downloaded block by block, is the node's own export byte for byte.
    let file = town.dir.path().join("chain.jsonl");
    let export = ["audit", "export", "--card", &auditor, "--why", why, "--out", file.to_str().unwrap()];
    let exported = ok(town.wallet(&export, &pin(AUDITOR_PIN)).await);
    let head = town.client.head().await.unwrap();
    assert_eq!(exported["blocks"].as_u64(), Some(head.height + 1));
    let report =
        machi_node::verify_export(&file, Some((head.height, head.hash))).expect("the export verifies");
    assert_eq!(report.blocks, head.height + 1);
    let by_node = town.dir.path().join("by-node.jsonl");
    machi_node::export(town.dir.path(), &by_node).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&by_node).unwrap());

    // The access log holds each of those reads with who read and why.
    let log = ["audit", "access-log", "--card", &town.town_card, "--why", "monthly check", "--limit", "1000"];
    let entries = ok(town.wallet(&log, &pin(TOWN_PIN)).await)["entries"].as_array().unwrap().clone();
    let read_by = |name: &str, purpose: &str, path: &str| {
        entries.iter().any(|e: &Value| {
            e["name"] == name
                && e["purpose"] == purpose
                && e["path"].as_str().is_some_and(|p| p.starts_with(path))
        })
    };
    let path = format!("/v1/accounts/{account}");
    assert!(read_by("監査委員", why, &path), "{entries:#?}");
    assert!(entries
        .iter()
        .any(|e| e["role"] == "auditor" && e["path"] == "/v1/blocks/0" && e["status"] == 200));
    assert!(entries.iter().any(|e| e["role"] == "town" && e["purpose"] == "disclosure request 2027-014"));
    // The resident's own reads are theirs, not the log's.
    assert!(entries.iter().all(|e| e["account"] != account.to_hex().as_str()), "{entries:#?}");
    // An auditor reads the log too; a resident's card may not.
    let log = ["audit", "access-log", "--card", &auditor, "--why", "monthly check"];
    ok(town.wallet(&log, &pin(AUDITOR_PIN)).await);
    let log = ["audit", "access-log", "--card", &resident, "--why", "curious neighbour"];
    let refused = town.wallet(&log, &pin(RESIDENT_PIN)).await;
    assert_eq!(
        (refused.code, refused.json["error"]["kind"].as_str()),
        (3, Some("not_allowed")),
        "{}",
        refused.json
    );
}
