//! A lottery sale through the real binary against a real node on loopback: the town sets
//! the lottery (a window out of order refused before signing), two parties commit (each
//! secret kept in a 0600 file, never printed) and reveal, residents apply (one by the
//! counter on their behalf, one over the cap refused), a party draws, each resident reads
//! their result (当選 / 補欠 in plain Japanese, the seed), a winner buys what they won and
//! a waiting resident's purchase in the winners' window is refused in plain words.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use machi_api::TxStatus;
use machi_client::{sign, Client};
use machi_ledger::{AccountId, Action, Hash32, IssueParams, RateBp, SigningKey, Yen};
use machi_node::ManualClock;
use machi_wallet::keystore::Keystore;

use crate::commands::{ok, wallet, Run};

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 24 * 60 * MINUTE_MS;
const JST_OFFSET_MS: u64 = 9 * 60 * MINUTE_MS;
const PIN: &str = "1357";

fn id(key: &SigningKey) -> AccountId {
    AccountId(key.verifying_key().to_bytes())
}

/// `YYYY-MM-DD HH:MM` in JST.
fn jst(ms: u64) -> String {
    let minute_of_day = (ms + JST_OFFSET_MS) % DAY_MS / MINUTE_MS;
    format!("{} {:02}:{:02}", machi_ledger::time::format_jst_date(ms), minute_of_day / 60, minute_of_day % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_commit_reveal_and_draw_residents_apply_read_and_winners_buy() {
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), "lottery-town").unwrap();
    let now = machi_client::now_ms();
    let clock = Arc::new(ManualClock::new(now));
    let node = machi_node::Node::open_with_clock(dir.path(), clock.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(node.serve(listener, std::future::pending()));
    let town = machi_node::read_key(&dir.path().join("keys/town.key")).unwrap();
    // The test reads what it checks as the town, which reads every resident's result.
    let client = Client::new(&url).reading_as(town.clone(), "wallet test: the lottery");
    let chain_id = client.head().await.unwrap().chain_id;
    let applied = |key: SigningKey, action: Action| {
        let (client, chain_id) = (client.clone(), chain_id.clone());
        async move {
            let result = client.submit(&sign(&chain_id, &key, action)).await.unwrap();
            assert_eq!(result.status, TxStatus::Applied, "{result:?}");
        }
    };
    let ks = dir.path().join("keystore");
    let store = Keystore::open(&ks).unwrap();
    let (bank, operator) = (machi_node::generate_key(), machi_node::generate_key());
    applied(town.clone(), Action::RegisterOperator { operator: id(&operator), name: "窓口".into() }).await;
    // Every window sits on a whole minute within the transactions' ten-minute life, so the
    // wallet's transactions (signed at the real time) stay valid as the clock moves on.
    let m0 = (now / MINUTE_MS + 2) * MINUTE_MS;
    let issue = IssueParams {
        id: 1,
        name: "抽選の回".into(),
        price: Yen(10_000),
        common_per_set: Yen(6_000),
        local_per_set: Yen(6_000),
        total_sets: 3,
        max_sets_per_resident: 2,
        workers_may_buy: false,
        sale_start_ms: m0 + 2 * MINUTE_MS,
        sale_end_ms: now + DAY_MS,
        spend_until_ms: now + 30 * DAY_MS,
        cash_out_deadline_ms: now + 60 * DAY_MS,
        cash_out_fee: RateBp(0),
    };
    applied(town.clone(), Action::CreateIssue { issue }).await;
    let residents: Vec<SigningKey> = (0..3).map(|_| machi_node::generate_key()).collect();
    for (i, r) in residents.iter().enumerate() {
        let resident_hash = machi_ledger::sha256(format!("resident-{i}").as_bytes());
        applied(operator.clone(), Action::RegisterResident { resident: id(r), resident_hash, worker: false })
            .await;
    }
    let card = |key: &SigningKey, label: &str| store.create(key, PIN, label).unwrap().display();
    let (town_card, bank_card, op_card) =
        (card(&town, "town"), card(&bank, "bank"), card(&operator, "operator"));
    let cards: Vec<String> = residents.iter().map(|r| card(r, "resident")).collect();
    let pin = format!("{PIN}\n");
    let run = |args: Vec<String>, input: String| {
        let (url, ks) = (url.clone(), ks.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                wallet(&url, &ks, &args.iter().map(String::as_str).collect::<Vec<_>>(), &input)
            })
            .await
            .unwrap()
        }
    };
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let bank_id = id(&bank).to_string();
    let delegate = [
        "town",
        "register-delegate",
        "--card",
        &town_card,
        "--delegation",
        "lottery-party",
        "--account",
        &bank_id,
        "--name",
        "銀行",
    ];
    ok(run(args(&delegate), pin.clone()).await);
    let parties = format!("{},{}", id(&town), id(&bank));
    let set = |apply_end: u64| {
        args(&[
            "town",
            "set-lottery",
            "--card",
            &town_card,
            "--issue",
            "1",
            "--parties",
            &parties,
            "--commit-deadline",
            &jst(m0),
            "--apply-start",
            &jst(m0),
            "--apply-end",
            &jst(apply_end),
            "--reveal-end",
            &jst(m0 + 2 * MINUTE_MS),
            "--purchase-end",
            &jst(m0 + 4 * MINUTE_MS),
            "--waiting-end",
            &jst(m0 + 6 * MINUTE_MS),
        ])
    };
    let out_of_order = run(set(m0), pin.clone()).await;
    assert_eq!(out_of_order.code, 2, "{}", out_of_order.json);
    assert_eq!(out_of_order.json["error"]["kind"], "user_error");
    assert!(client.lottery(1).await.is_err(), "nothing was signed");
    ok(run(set(m0 + MINUTE_MS), pin.clone()).await);
    assert_eq!(client.lottery(1).await.unwrap().params.apply_end_ms, m0 + MINUTE_MS);

    for party_card in [&town_card, &bank_card] {
        let out =
            ok(run(args(&["lottery", "commit", "--card", party_card, "--issue", "1"]), pin.clone()).await);
        let file = std::path::PathBuf::from(out["secret_file"].as_str().unwrap());
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let secret: Hash32 = std::fs::read_to_string(&file).unwrap().trim().parse().unwrap();
        assert_eq!(out["commitment"].as_str().unwrap(), machi_ledger::sha256(&secret.0).to_hex());
        assert!(!out.to_string().contains(&secret.to_hex()), "the secret is never printed");
    }
    let view = client.lottery(1).await.unwrap();
    assert!(view.parties.iter().all(|p| p.commitment.is_some() && p.secret.is_none()));

    clock.set(m0);
    let apply =
        |card: &str, sets: &str| args(&["lottery", "apply", "--card", card, "--issue", "1", "--sets", sets]);
    let over_cap: Run = run(apply(&cards[0], "3"), pin.clone()).await;
    assert_eq!(over_cap.code, 3, "{}", over_cap.json);
    assert!(over_cap.json["error"]["message"].as_str().unwrap().contains("over_cap"), "{}", over_cap.json);
    ok(run(apply(&cards[0], "2"), pin.clone()).await);
    ok(run(apply(&cards[2], "1"), pin.clone()).await);
    // The counter applies for a resident (a family member's card) with the operator's key.
    let on_behalf = args(&[
        "operator",
        "lottery-apply",
        "--card",
        &op_card,
        "--resident-card",
        &cards[1],
        "--issue",
        "1",
        "--sets",
        "2",
    ]);
    ok(run(on_behalf, pin.clone()).await);
    assert_eq!(client.lottery(1).await.unwrap().sets_applied, 5);

    clock.set(m0 + MINUTE_MS);
    for party_card in [&town_card, &bank_card] {
        ok(run(args(&["lottery", "reveal", "--card", party_card, "--issue", "1"]), pin.clone()).await);
    }
    let drawn = ok(run(args(&["lottery", "draw", "--card", &bank_card, "--issue", "1"]), pin.clone()).await);
    let seed = drawn["draw"]["seed"].as_str().unwrap().to_string();
    assert_eq!(drawn["draw"]["sets_won"], 3);

    let mut won = Vec::new();
    for (i, c) in cards.iter().enumerate() {
        let entry = ok(run(args(&["lottery", "result", "--card", c, "--issue", "1"]), pin.clone()).await);
        assert_eq!(entry["seed"].as_str().unwrap(), seed);
        let text = std::process::Command::new(env!("CARGO_BIN_EXE_machi-wallet"))
            .args(["--node", &url, "--keystore"])
            .arg(&ks)
            .args(["lottery", "result", "--card", c, "--issue", "1"])
            .env("MACHI_PIN", PIN)
            .output()
            .unwrap();
        let text = String::from_utf8(text.stdout).unwrap();
        assert!(text.contains(&seed) && text.contains("machi-node verify"), "{text}");
        match entry["status"].as_str().unwrap() {
            "won" => {
                let n = entry["won_sets"].as_u64().unwrap();
                assert!(text.contains(&format!("当選 {n} セット")), "{text}");
                won.push((i, n));
            }
            "waiting" => {
                let m = entry["waiting_position"].as_u64().unwrap();
                assert!(text.contains(&format!("補欠 {m} 番目")), "{text}");
            }
            other => panic!("after the draw every applicant won or waits: {other}"),
        }
    }
    assert_eq!(won.iter().map(|(_, n)| n).sum::<u64>(), 3);

    clock.set(m0 + 2 * MINUTE_MS);
    let sell = |resident: usize, sets: u64| {
        args(&[
            "operator",
            "sell",
            "--card",
            &op_card,
            "--resident-card",
            &cards[resident],
            "--issue",
            "1",
            "--sets",
            &sets.to_string(),
        ])
    };
    let (winner, n) = won[0];
    let too_many = run(sell(winner, n + 1), pin.clone()).await;
    assert_eq!(too_many.code, 3, "{}", too_many.json);
    ok(run(sell(winner, n), pin.clone()).await);
    if let Some(waiting) = (0..3).find(|i| won.iter().all(|(w, _)| w != i)) {
        let refused = run(sell(waiting, 1), pin.clone()).await;
        assert_eq!(refused.code, 3, "{}", refused.json);
        assert!(
            refused.json["error"]["message"].as_str().unwrap().contains("not_allotted"),
            "{}",
            refused.json
        );
    }
    let entry = client.lottery_entry(1, &id(&residents[winner])).await.unwrap();
    assert_eq!(u64::from(entry.bought), n);
}

/// Applies at the kiosk in a real terminal, then after the draw reads 当選 there, buys
/// the won sets at the counter, and the kiosk no longer offers any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_applies_at_the_kiosk_reads_the_result_and_buys_the_won_sets() {
    let dir = tempfile::tempdir().unwrap();
    machi_node::init(dir.path(), "kiosk-lottery").unwrap();
    let now = machi_client::now_ms();
    let clock = Arc::new(ManualClock::new(now));
    let node = machi_node::Node::open_with_clock(dir.path(), clock.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(node.serve(listener, std::future::pending()));
    let town = machi_node::read_key(&dir.path().join("keys/town.key")).unwrap();
    // The test reads what it checks as the town, which reads every resident's result.
    let client = Client::new(&url).reading_as(town.clone(), "wallet test: the lottery");
    let chain_id = client.head().await.unwrap().chain_id;
    let applied = |key: SigningKey, action: Action| {
        let (client, chain_id) = (client.clone(), chain_id.clone());
        async move {
            let result = client.submit(&sign(&chain_id, &key, action)).await.unwrap();
            assert_eq!(result.status, TxStatus::Applied, "{result:?}");
        }
    };
    let (operator, resident) = (machi_node::generate_key(), machi_node::generate_key());
    applied(town.clone(), Action::RegisterOperator { operator: id(&operator), name: "窓口".into() }).await;
    let m0 = (now / MINUTE_MS + 2) * MINUTE_MS;
    let issue = IssueParams {
        id: 1,
        name: "抽選の回".into(),
        price: Yen(10_000),
        common_per_set: Yen(6_000),
        local_per_set: Yen(6_000),
        total_sets: 5,
        max_sets_per_resident: 3,
        workers_may_buy: false,
        sale_start_ms: m0 + 2 * MINUTE_MS,
        sale_end_ms: now + DAY_MS,
        spend_until_ms: now + 30 * DAY_MS,
        cash_out_deadline_ms: now + 60 * DAY_MS,
        cash_out_fee: RateBp(0),
    };
    applied(town.clone(), Action::CreateIssue { issue }).await;
    let resident_hash = machi_ledger::sha256(b"resident-kiosk");
    applied(
        operator.clone(),
        Action::RegisterResident { resident: id(&resident), resident_hash, worker: false },
    )
    .await;
    let lottery = machi_ledger::lottery::LotteryParams {
        parties: vec![id(&town)],
        commit_deadline_ms: m0,
        apply_start_ms: m0,
        apply_end_ms: m0 + MINUTE_MS,
        reveal_end_ms: m0 + 2 * MINUTE_MS,
        purchase_end_ms: m0 + 4 * MINUTE_MS,
        waiting_end_ms: m0 + 6 * MINUTE_MS,
    };
    applied(town.clone(), Action::SetLottery { issue: 1, lottery }).await;
    let (secret, commitment) = machi_client::lottery_secret();
    applied(town.clone(), Action::CommitLotterySecret { issue: 1, commitment }).await;
    let ks = dir.path().join("keystore");
    let store = Keystore::open(&ks).unwrap();
    let card = store.create(&resident, PIN, "resident").unwrap().display();
    let op_card = store.create(&operator, PIN, "operator").unwrap().display();
    clock.set(m0);

    let kiosk = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_machi-wallet"));
        command.args(["--node", &url, "--keystore"]).arg(&ks).arg("kiosk").env_remove("MACHI_PIN");
        let mut session = expectrl::Session::spawn(command).expect("starts in a pseudo-terminal");
        session.set_expect_timeout(Some(std::time::Duration::from_secs(20)));
        session
    };
    let mut at = kiosk();
    at.expect("カード番号").unwrap();
    at.send_line(&card).unwrap();
    at.expect("暗証番号").unwrap();
    at.send_line(PIN).unwrap();
    at.expect("6  抽選").unwrap();
    at.send_line("6").unwrap();
    at.expect("何セット申し込みますか？（1 から 3）").unwrap();
    at.send_line("4").unwrap();
    at.expect("1 から 3 の数を入れてください。").unwrap();
    at.send_line("2").unwrap();
    at.expect("2 セット 申し込みますか？").unwrap();
    at.send_line("1").unwrap();
    at.expect("2 セット 申し込みました。").unwrap();
    at.send_line("").unwrap();
    at.expect("5  終わる").unwrap();
    at.send_line("5").unwrap();
    at.expect("カード番号").unwrap();
    let entry = client.lottery_entry(1, &id(&resident)).await.unwrap();
    assert_eq!(entry.applied_sets, Some(2));

    clock.set(m0 + MINUTE_MS);
    applied(town.clone(), Action::RevealLotterySecret { issue: 1, secret }).await;
    applied(town.clone(), Action::DrawLottery { issue: 1 }).await;
    clock.set(m0 + 2 * MINUTE_MS);
    at.send_line(&card).unwrap();
    at.expect("暗証番号").unwrap();
    at.send_line(PIN).unwrap();
    at.expect("6  抽選").unwrap();
    at.send_line("6").unwrap();
    at.expect("当選 2 セット").unwrap();
    at.expect("窓口で 2 セット（¥20,000）を買えます。").unwrap();
    at.send_line("").unwrap();
    at.expect("5  終わる").unwrap();

    let sell: Vec<String> =
        ["operator", "sell", "--card", &op_card, "--resident-card", &card, "--issue", "1", "--sets", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let (u, k) = (url.clone(), ks.clone());
    let sold = tokio::task::spawn_blocking(move || {
        wallet(&u, &k, &sell.iter().map(String::as_str).collect::<Vec<_>>(), &format!("{PIN}\n"))
    })
    .await
    .unwrap();
    ok(sold);
    assert_eq!(client.lottery_entry(1, &id(&resident)).await.unwrap().bought, 2);
    at.send_line("6").unwrap();
    at.expect("当選 2 セット").unwrap();
    at.send_line("").unwrap();
    at.expect("5  終わる").unwrap();
    at.send_line("1").unwrap();
    at.expect("残高の合計").unwrap();
}
