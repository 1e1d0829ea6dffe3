//! Outcomes that get lost, PINs that get mistyped, secrets that must not show, numbers
//! people type wrong: each through the real binary against a real node (behind a
//! faulty proxy where an answer must go missing).

use std::path::Path;

use serde_json::Value;

use crate::faults::{Fault, Proxy};
use crate::kiosk::{blocking, Town, OPERATOR_PIN, PIN};
use crate::run::{card, ok, wallet, Run};

/// Runs the wallet off the async runtime that serves the node.
async fn run(node: &str, keystore: &Path, args: &[&str], input: &str) -> Run {
    let (node, keystore, input) = (node.to_string(), keystore.to_path_buf(), input.to_string());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    blocking(move || wallet(&node, &keystore, &args.iter().map(String::as_str).collect::<Vec<_>>(), &input))
        .await
}

fn wallet_files(keystore: &Path) -> usize {
    std::fs::read_dir(keystore)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
        .count()
}

fn pending_files(keystore: &Path) -> usize {
    std::fs::read_dir(keystore.join("pending")).map_or(0, |d| d.count())
}

fn text(json: &Value, field: &str) -> String {
    json[field].as_str().unwrap_or_else(|| panic!("{field} in {json}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_answer_is_lost_is_settled_by_its_id_never_paid_twice() {
    let town = Town::start().await;
    let (_, pos) = town.shop("山田商店", "local").await;
    let (card, account) = town.cards[0].clone();
    let pin = format!("{PIN}\n");
    let mut paid = 0;
    // Committed, then the answer dropped or held past the 1-second wait: the same
    // transaction is looked up, and the script hears "applied".
    for fault in [Fault::DropAnswer, Fault::HoldAnswer] {
        let proxy = Proxy::start(&town.node_url, fault, 1).await;
        let (_, code) = town.invoice(&pos, 1_000).await;
        let args = [
            "--merchant",
            &town.merchant_url,
            "--request-timeout-s",
            "1",
            "pay",
            "--card",
            &card,
            "--code",
            &code,
        ];
        let json = ok(run(&proxy.url, &town.keystore, &args, &pin).await);
        paid += 1_000;
        assert_eq!(json["status"], "applied", "{fault:?}");
        assert_eq!(town.total(&account).await, 25_000 - paid, "{fault:?}: paid exactly once");
    }
    // Committed, then the node is out of reach: "unknown, check later with <id>".
    let proxy = Proxy::start(&town.node_url, Fault::DropAnswerThenVanish, 1).await;
    let (invoice, code) = town.invoice(&pos, 1_000).await;
    let args = [
        "--merchant",
        &town.merchant_url,
        "--request-timeout-s",
        "1",
        "pay",
        "--card",
        &card,
        "--code",
        &code,
    ];
    let unknown = run(&proxy.url, &town.keystore, &args, &pin).await;
    assert_eq!(unknown.code, 5, "{} {}", unknown.json, unknown.stderr);
    assert_eq!(unknown.json["status"], "unknown");
    assert!(text(&unknown.json["error"], "message").contains("check"), "{}", unknown.json);
    let id = text(&unknown.json, "tx_id");
    assert_eq!(proxy.transactions_forwarded(), 1);
    paid += 1_000;
    assert_eq!(town.total(&account).await, 25_000 - paid, "it had committed");
    assert_eq!(pending_files(&town.keystore), 1, "the signed transaction is kept for the check");
    let checked = ok(run(&town.node_url, &town.keystore, &["check", &id], "").await);
    assert_eq!((checked["status"].as_str(), checked["tx_id"].as_str()), (Some("applied"), Some(id.as_str())));
    assert_eq!(pending_files(&town.keystore), 0, "settled: the kept copy is gone");
    town.paid_event(&pos, &invoice).await;
    let history = town.node.account(&account).await.unwrap().history;
    assert_eq!(history.iter().filter(|h| h.kind == "pay").count(), 3, "three invoices, three payments");
    // An id nobody here sent: not found, and the wallet cannot tell more.
    let stranger = run(&town.node_url, &town.keystore, &["check", &"ab".repeat(32)], "").await;
    assert_eq!((stranger.code, stranger.json["status"].as_str()), (5, Some("not_found")));
    let bad = run(&town.node_url, &town.keystore, &["check", "12"], "").await;
    assert_eq!(bad.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_new_pin_changes_nothing_on_chain() {
    let town = Town::start().await;
    let (lost, account) = town.cards[0].clone();
    let operator = town.operator_card.clone();
    let files = wallet_files(&town.keystore);
    // replace-card: a new PIN of the wrong form is refused before anything is sent.
    let args = ["operator", "replace-card", "--card", &operator, "--lost-card", &lost];
    let refused = run(&town.node_url, &town.keystore, &args, &format!("{OPERATOR_PIN}\n12\n")).await;
    assert_eq!(refused.code, 2, "{}", refused.json);
    assert!(text(&refused.json["error"], "message").contains("4 to 8 digits"));
    let view = town.node.account(&account).await.unwrap();
    assert_eq!(view.total.0, 25_000, "the balance stays with the card");
    assert!(!view.history.iter().any(|h| h.kind == "replace_key"), "nothing was sent");
    assert_eq!(
        ok(run(&town.node_url, &town.keystore, &["balance", "--card", &lost], "2468\n").await)["total"],
        25_000
    );
    assert_eq!(wallet_files(&town.keystore), files, "no card was made");

    // register-resident at a terminal: the new PIN typed twice, differently.
    let id_key = town.dir.path().join("id.key");
    std::fs::write(&id_key, "00112233445566778899aabbccddeeff").unwrap();
    let args = ["operator", "register-resident", "--card", &operator, "--id-key", id_key.to_str().unwrap()];
    let mut terminal = town.at_terminal(&args);
    let code = blocking(move || {
        terminal.sees("暗証番号: ");
        terminal.types(OPERATOR_PIN);
        terminal.sees("住民番号: ");
        terminal.types("5001");
        terminal.sees("新しいカードの暗証番号");
        terminal.types("2468");
        terminal.sees("もう一度: ");
        terminal.types("2469");
        terminal.sees("2回の暗証番号が一致しません。何も行っていません。");
        terminal.exit_code()
    })
    .await;
    assert_eq!(code, Some(2));
    assert_eq!(wallet_files(&town.keystore), files, "no card was made");
    // The number was not used up: registering it works.
    let input = format!("{OPERATOR_PIN}\n5001\n2468\n");
    let registered = ok(run(&town.node_url, &town.keystore, &args, &input).await);
    assert_eq!(wallet_files(&town.keystore), files + 1);
    let balance =
        run(&town.node_url, &town.keystore, &["balance", "--card", &card(&registered)], "2468\n").await;
    assert_eq!(ok(balance)["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_at_the_counter_is_finished_by_the_same_command() {
    let town = Town::start().await;
    let (lost, account) = town.cards[1].clone();
    let operator = town.operator_card.clone();
    let args = ["operator", "replace-card", "--card", &operator, "--lost-card", &lost];

    // The replacement commits, then the node is out of reach.
    let proxy = Proxy::start(&town.node_url, Fault::DropAnswerThenVanish, 1).await;
    let input = format!("{OPERATOR_PIN}\n1357\n");
    let first = run(&proxy.url, &town.keystore, &args, &input).await;
    assert_eq!((first.code, first.json["status"].as_str()), (5, Some("unknown")), "{}", first.stderr);
    let (id, new_card) = (text(&first.json, "tx_id"), text(&first.json, "card"));
    assert_eq!(town.total(&account).await, 0, "it had committed: the balance moved");
    // The new card exists and opens with the PIN chosen before anything was sent.
    let balance = run(&town.node_url, &town.keystore, &["balance", "--card", &new_card], "1357\n").await;
    assert_eq!(ok(balance)["total"], 25_000);

    // The same command again: the same transaction for the same card, not a new key.
    let again = ok(run(&town.node_url, &town.keystore, &args, &format!("{OPERATOR_PIN}\n")).await);
    assert_eq!((text(&again, "tx_id"), text(&again, "card")), (id, new_card));
    let history = town.node.account(&account).await.unwrap().history;
    assert_eq!(history.iter().filter(|h| h.kind == "replace_key").count(), 1);
    assert_eq!(pending_files(&town.keystore), 0);

    // register-resident likewise; and a refusal removes the card made for it.
    let id_key = town.dir.path().join("id.key");
    std::fs::write(&id_key, "00112233445566778899aabbccddeeff".repeat(2)).unwrap();
    let args = ["operator", "register-resident", "--card", &operator, "--id-key", id_key.to_str().unwrap()];
    let proxy = Proxy::start(&town.node_url, Fault::DropAnswerThenVanish, 1).await;
    let first = run(&proxy.url, &town.keystore, &args, &format!("{OPERATOR_PIN}\n7001\n2468\n")).await;
    assert_eq!(first.code, 5, "{}", first.json);
    let again = ok(run(&town.node_url, &town.keystore, &args, &format!("{OPERATOR_PIN}\n7001\n")).await);
    assert_eq!(
        (text(&again, "tx_id"), text(&again, "card")),
        (text(&first.json, "tx_id"), text(&first.json, "card"))
    );
    let files = wallet_files(&town.keystore);
    let twice = run(&town.node_url, &town.keystore, &args, &format!("{OPERATOR_PIN}\n7001\n1111\n")).await;
    assert_eq!(twice.code, 3, "one resident number, one account: {}", twice.json);
    assert_eq!(wallet_files(&town.keystore), files, "the card made for a refused registration is removed");
    assert_eq!(pending_files(&town.keystore), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_are_never_arguments_and_never_shown() {
    let town = Town::start().await;
    let (card, _) = town.cards[0].clone();
    let with_pin = run(&town.node_url, &town.keystore, &["balance", "--card", &card, "--pin", PIN], "").await;
    assert_eq!(with_pin.code, 2);
    assert!(with_pin.stderr.contains("--pin"), "{}", with_pin.stderr);
    for flag in ["--new-pin", "--resident-pin", "--resident-number"] {
        let args = ["operator", "replace-card", "--card", &card, "--lost-card", &card, flag, "1234"];
        assert_eq!(run(&town.node_url, &town.keystore, &args, "").await.code, 2, "{flag}");
    }
    let none = run(&town.node_url, &town.keystore, &["balance", "--card", &card], "").await;
    assert_eq!(none.code, 2, "no PIN on a closed standard input");
    assert!(text(&none.json["error"], "message").contains("MACHI_PIN"), "{}", none.json);

    // At a terminal: a new card's PIN twice, then the PIN, none of them echoed.
    let secret = "97531864";
    let mut terminal = town.at_terminal(&["create"]);
    let made = blocking(move || {
        terminal.sees("新しいカードの暗証番号");
        terminal.types(secret);
        let echoed = terminal.sees_after("もう一度: ");
        terminal.types(secret);
        let made = terminal.sees_after("アカウント");
        (format!("{echoed}{made}"), made)
    })
    .await;
    assert!(!made.0.contains(secret), "the PIN was shown: {}", made.0);
    assert!(made.1.contains("カード番号: "), "{}", made.1);
    // The PIN of a card in use: nothing but the balance follows the prompt.
    let mut terminal = town.at_terminal(&["balance", "--card", &card]);
    let shown = blocking(move || {
        let prompt = terminal.sees_after("暗証番号: ");
        terminal.types(PIN);
        let after = terminal.sees_after("の残高: ¥25,000");
        format!("{prompt}{after}")
    })
    .await;
    assert!(!shown.contains(&format!("{PIN}\r")), "the PIN was shown: {shown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_numbers_and_id_keys_are_checked() {
    let town = Town::start().await;
    let operator = town.operator_card.clone();
    let key_file = town.dir.path().join("id.key");
    let register = |key: &str, number: &str| {
        std::fs::write(&key_file, key).unwrap();
        let args =
            ["operator", "register-resident", "--card", &operator, "--id-key", key_file.to_str().unwrap()];
        let input = format!("{OPERATOR_PIN}\n{number}\n2468\n");
        let (node, keystore) = (town.node_url.clone(), town.keystore.clone());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        blocking(move || {
            wallet(&node, &keystore, &args.iter().map(String::as_str).collect::<Vec<_>>(), &input)
        })
    };
    let key = "00112233445566778899aabbccddeeff";
    #[track_caller]
    fn refused(run: Run, words: &str) {
        assert_eq!(run.code, 2, "{}", run.json);
        let message = run.json["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(words), "{message:?} should say {words:?}");
    }
    refused(register("", "12345").await, "16 to 64 bytes");
    refused(register("0011", "12345").await, "16 to 64 bytes");
    refused(register(&"00".repeat(65), "12345").await, "16 to 64 bytes");
    refused(register("not hex at all, not hex at all!!", "12345").await, "hex");
    refused(register(key, "12a45").await, "'a' is not allowed");
    refused(register(key, "１２３４５６７８９０１２３４５６７８９０１").await, "at most 20 digits");
    refused(register(key, " - ").await, "empty");
    // Full-width digits are the same number as ASCII ones, never dropped.
    ok(register(key, "１2345").await);
    let same = register(key, "1-2345").await;
    assert_eq!(same.code, 3, "１2345 and 1-2345 are one resident: {}", same.json);
    ok(register(key, "2345").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_replacement_that_expired_unsent_is_signed_anew_for_the_same_card() {
    use machi_wallet::keystore::{CardNumber, Keystore};
    let town = Town::start().await;
    let (lost, old) = town.cards[2].clone();
    let store = Keystore::open(&town.keystore).unwrap();
    let now = machi_client::now_ms();
    let operator = store.unlock(&CardNumber::parse(&town.operator_card).unwrap(), OPERATOR_PIN, now).unwrap();
    // What a run that died before sending leaves behind, long enough ago that its
    // transaction can no longer commit: the new card, and the signed replacement.
    let key = machi_node::generate_key();
    let new_card = store.create(&key, "1357", "resident").unwrap();
    let new = machi_ledger::AccountId(key.verifying_key().to_bytes());
    let chain_id = town.node.head().await.unwrap().chain_id;
    let created = now - u64::from(machi_client::TTL_MS_DEFAULT) - 60_000;
    let stale = machi_client::sign_at(
        &chain_id,
        &operator.key,
        machi_ledger::Action::ReplaceKey { old, new },
        created,
    );
    let stale_id = stale.id(&chain_id);
    let kept = serde_json::json!({
        "tx_id": stale_id, "chain_id": chain_id, "tx": stale,
        "purpose": format!("replace-card:{old}"), "new_card": new_card.digits(),
    });
    std::fs::create_dir_all(town.keystore.join("pending")).unwrap();
    std::fs::write(town.keystore.join(format!("pending/{stale_id}.json")), kept.to_string()).unwrap();

    let args = ["operator", "replace-card", "--card", &town.operator_card, "--lost-card", &lost];
    let done = ok(run(&town.node_url, &town.keystore, &args, &format!("{OPERATOR_PIN}\n")).await);
    assert_eq!(text(&done, "card"), new_card.display(), "the card the resident already holds");
    assert_ne!(text(&done, "tx_id"), stale_id.to_hex(), "signed anew");
    assert_eq!(town.total(&new).await, 25_000);
    assert_eq!(pending_files(&town.keystore), 0);
}
