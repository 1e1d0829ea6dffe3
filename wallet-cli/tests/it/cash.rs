//! The counter's cash close and the town's deposit through the real binary against a real
//! node on loopback: sales at two counters, a close with a shortfall, a second close
//! refused, the closed counter's sale rejected, a deposit, and the audit report (from the
//! block log and from the export) showing the numbers and every gap. Then the close at a
//! real terminal: the sales, the typed count, 過不足 in plain Japanese, a typed confirmation.

use std::sync::Arc;
use std::time::Duration;

use expectrl::Session;
use machi_api::{CashGap, TxCode, TxStatus};
use machi_client::{sign, Client};
use machi_ledger::{AccountId, Action, IssueParams, RateBp, SigningKey, Yen};
use machi_wallet::keystore::Keystore;

use crate::commands::{ok, wallet};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
pub(crate) const TOWN_PIN: &str = "1111";
const OPERATOR_PIN: &str = "2222";

fn id(key: &SigningKey) -> AccountId {
    AccountId(key.verifying_key().to_bytes())
}

pub(crate) struct Town {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) url: String,
    /// Reads as the town.
    pub(crate) client: Client,
    chain_id: String,
    pub(crate) town_card: String,
    /// Each counter's key and card.
    pub(crate) counters: Vec<(SigningKey, String)>,
    pub(crate) residents: Vec<SigningKey>,
}

impl Town {
    /// A node on loopback; three counters; issue 1 (¥10,000 a set) on sale since
    /// yesterday until tomorrow; six residents.
    pub(crate) async fn start() -> Town {
        let dir = tempfile::tempdir().unwrap();
        machi_node::init(dir.path(), "cash-town").unwrap();
        let node = machi_node::Node::open_with_clock(dir.path(), Arc::new(machi_node::SystemClock)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(node.serve(listener, std::future::pending()));
        let town = machi_node::read_key(&dir.path().join("keys/town.key")).unwrap();
        // The test reads what it checks as the town, which reads everything.
        let client = Client::new(&url).reading_as(town.clone(), "wallet test: the cash close");
        let chain_id = client.head().await.unwrap().chain_id;
        let store = Keystore::open(&dir.path().join("keystore")).unwrap();
        let town_card = store.create(&town, TOWN_PIN, "town").unwrap().display();
        let mut this =
            Town { dir, url, client, chain_id, town_card, counters: Vec::new(), residents: Vec::new() };
        for name in ["1番窓口", "2番窓口", "出張窓口"] {
            let key = machi_node::generate_key();
            this.applied(&town, Action::RegisterOperator { operator: id(&key), name: name.into() }).await;
            let card = store.create(&key, OPERATOR_PIN, "operator").unwrap().display();
            this.counters.push((key, card));
        }
        let now = machi_client::now_ms();
        let issue = IssueParams {
            id: 1,
            name: "第1回 プレミアム商品券".into(),
            price: Yen(10_000),
            common_per_set: Yen(6_000),
            local_per_set: Yen(6_000),
            total_sets: 100,
            max_sets_per_resident: 5,
            workers_may_buy: false,
            sale_start_ms: now - DAY_MS,
            sale_end_ms: now + DAY_MS,
            spend_until_ms: now + 30 * DAY_MS,
            cash_out_deadline_ms: now + 60 * DAY_MS,
            cash_out_fee: RateBp(0),
        };
        this.applied(&town, Action::CreateIssue { issue }).await;
        let operator = this.counters[0].0.clone();
        for i in 0..6 {
            let resident = machi_node::generate_key();
            let resident_hash = machi_ledger::sha256(format!("resident-{i}").as_bytes());
            let action = Action::RegisterResident { resident: id(&resident), resident_hash, worker: false };
            this.applied(&operator, action).await;
            this.residents.push(resident);
        }
        this
    }

    async fn result(&self, key: &SigningKey, action: Action) -> machi_api::TxResultView {
        self.client.submit(&sign(&self.chain_id, key, action)).await.unwrap()
    }

    /// Submits and insists it applied; the JST day of its block.
    pub(crate) async fn applied(&self, key: &SigningKey, action: Action) -> String {
        let result = self.result(key, action).await;
        assert_eq!(result.status, TxStatus::Applied, "{result:?}");
        let tx = self.client.tx(&result.tx_id).await.unwrap();
        machi_ledger::time::format_jst_date(tx.timestamp_ms)
    }

    pub(crate) fn sell(&self, resident: usize, sets: u32) -> Action {
        let resident = id(&self.residents[resident]);
        Action::SellSets { issue: 1, resident, sets, cash_received: Yen(10_000 * u64::from(sets)) }
    }

    pub(crate) fn keystore(&self) -> std::path::PathBuf {
        self.dir.path().join("keystore")
    }

    /// The wallet with `--json --lang en`, `input` on standard input.
    pub(crate) async fn wallet(&self, args: &[&str], input: &str) -> crate::commands::Run {
        let (url, ks, input) = (self.url.clone(), self.keystore(), input.to_string());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            wallet(&url, &ks, &args.iter().map(String::as_str).collect::<Vec<_>>(), &input)
        })
        .await
        .unwrap()
    }

    /// The wallet in a pseudo-terminal, as counter staff run it (Japanese).
    fn at_terminal(&self, args: &[&str]) -> Session {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_machi-wallet"));
        command
            .args(["--node", &self.url, "--keystore"])
            .arg(self.keystore())
            .args(args)
            .env_remove("MACHI_PIN")
            .env_remove("MACHI_NEW_PIN");
        let mut session = Session::spawn(command).expect("starts in a pseudo-terminal");
        session.set_expect_timeout(Some(Duration::from_secs(20)));
        session
    }
}

fn close_args<'a>(card: &'a str, day: &'a str) -> Vec<&'a str> {
    vec!["operator", "close-day", "--card", card, "--day", day]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_close_the_town_deposits_and_the_audit_shows_every_gap() {
    let town = Town::start().await;
    let (first, second) = (town.counters[0].clone(), town.counters[1].clone());
    // Counter 1 sells 3 sets (¥30,000), counter 2 one (¥10,000).
    let day = town.applied(&first.0, town.sell(0, 2)).await;
    town.applied(&first.0, town.sell(1, 1)).await;
    town.applied(&second.0, town.sell(2, 1)).await;

    // The operator counts ¥29,000: the close records ¥1,000 short.
    let closed = ok(town.wallet(&close_args(&first.1, &day), &format!("{OPERATOR_PIN}\n29,000\n1\n")).await);
    assert_eq!(closed["expected"], 30_000);
    assert_eq!(closed["counted"], 29_000);
    assert_eq!(closed["difference"], -1_000);
    assert_eq!(closed["sets"], 3);
    assert_eq!(closed["sales"][0]["issue"], 1);

    // Once is all: the first close stands, nothing is sent.
    let again = town.wallet(&close_args(&first.1, &day), &format!("{OPERATOR_PIN}\n30000\n1\n")).await;
    assert_eq!(again.code, 2, "{} {}", again.json, again.stderr);
    assert!(again.json["error"]["message"].as_str().unwrap().contains("already closed"), "{}", again.json);
    // The closed counter sells no more that day; the other one does.
    let refused = town.result(&first.0, town.sell(3, 1)).await;
    assert_eq!(refused.reason, Some(TxCode::CounterClosed), "{refused:?}");
    town.applied(&second.0, town.sell(3, 1)).await;

    // A close not confirmed sends nothing; a count that is not an amount is refused.
    let declined = town.wallet(&close_args(&second.1, &day), &format!("{OPERATOR_PIN}\n20000\n0\n")).await;
    assert_eq!(declined.code, 2, "{}", declined.stderr);
    let typo = town.wallet(&close_args(&second.1, &day), &format!("{OPERATOR_PIN}\n2万\n1\n")).await;
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    let cash = town.client.cash_day(&day).await.unwrap();
    let counter2 = cash.counters.iter().find(|c| c.operator == id(&second.0)).unwrap();
    assert!(counter2.close.is_none(), "nothing was sent");

    // The town deposits what counter 1 counted, from the slip.
    let deposit = [
        "town",
        "record-deposit",
        "--card",
        &town.town_card,
        "--day",
        &day,
        "--amount",
        "¥29,000",
        "--slip",
        "りそな 0001",
        "--deposited-on",
        &day,
    ];
    let deposited = ok(town.wallet(&deposit, &format!("{TOWN_PIN}\n")).await);
    assert_eq!(
        (deposited["deposited"].as_u64(), deposited["counted"].as_u64()),
        (Some(29_000), Some(29_000))
    );
    assert_eq!(deposited["deposit_difference"], 0);
    // The same slip twice is refused by the ledger.
    let twice = town.wallet(&deposit, &format!("{TOWN_PIN}\n")).await;
    assert_eq!(twice.code, 3, "{} {}", twice.json, twice.stderr);
    assert!(
        twice.json["error"]["message"].as_str().unwrap().contains("slip_already_recorded"),
        "{}",
        twice.json
    );

    // The node's day: received ¥50,000, counted ¥29,000, deposited ¥29,000, and the gaps.
    let cash = town.client.cash_day(&day).await.unwrap();
    assert_eq!((cash.sets, cash.cash_received), (5, Yen(50_000)));
    assert_eq!((cash.counted, cash.count_difference), (Yen(29_000), -1_000));
    assert_eq!((cash.deposited, cash.deposit_difference), (Yen(29_000), 0));
    assert_eq!(cash.counters_not_closed, 1);
    assert_eq!(cash.issues[0].not_closed, Yen(20_000));
    let expected_gaps = vec![
        CashGap::CountDiffers { operator: id(&first.0), name: "1番窓口".into(), difference: -1_000 },
        CashGap::NotClosed { operator: id(&second.0), name: "2番窓口".into(), expected: Yen(20_000) },
    ];
    assert_eq!(cash.gaps, expected_gaps);
    assert_eq!(town.client.cash_days().await.unwrap().days, vec![cash.clone()]);

    // The audit from the block log and the verify of the export say the same.
    let audit = machi_node::audit_data_dir(town.dir.path()).unwrap();
    assert_eq!(audit.cash_days, vec![cash.clone()]);
    let export = town.dir.path().join("chain.jsonl");
    machi_node::export(town.dir.path(), &export).unwrap();
    let verified = machi_node::verify_export(&export, None).unwrap();
    assert_eq!(verified.cash_days, audit.cash_days);
    let text = machi_node::report_text(&audit);
    assert!(
        text.contains(&format!(
            "{day}  received ¥50,000 (5 sets)  counted ¥29,000 (-¥1,000)  deposited ¥29,000 (¥0)  GAP"
        )),
        "{text}"
    );
    assert!(text.contains("GAP: 1番窓口 の現金 ¥1,000 不足 / counter 1番窓口 ¥1,000 short"), "{text}");
    assert!(text.contains("GAP: 未締め 2番窓口（見込み ¥20,000）"), "{text}");
    assert!(text.contains("deposit ¥29,000 on"), "{text}");
    let csv = machi_node::report_cash_csv(&audit);
    assert!(csv.starts_with("day,sets,cash_received,counters,counters_not_closed,counted,count_difference,deposited,deposit_difference,gaps\n"), "{csv}");
    assert!(csv.contains(&format!("{day},5,50000,2,1,29000,-1000,29000,0,\"")), "{csv}");
}

/// Counter staff at a real terminal: the PIN with echo off, the day's sales, the count
/// typed (a typing mistake asked again), the difference in plain Japanese, confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_day_at_the_terminal_in_plain_japanese() {
    let town = Town::start().await;
    let (counter, card) = town.counters[2].clone();
    let day = town.applied(&counter, town.sell(4, 1)).await;
    town.applied(&counter, town.sell(5, 2)).await;
    let mut session = town.at_terminal(&["operator", "close-day", "--card", &card, "--day", &day]);
    let screen = tokio::task::spawn_blocking(move || {
        let mut shown = String::new();
        let mut sees = |session: &mut Session, text: &str| match session.expect(text) {
            Ok(found) => shown.push_str(&String::from_utf8_lossy(found.before())),
            Err(e) => panic!("the terminal never showed {text:?}: {e}"),
        };
        sees(&mut session, "暗証番号: ");
        session.send_line(OPERATOR_PIN).unwrap();
        sees(&mut session, "数えた現金の合計（円）: ");
        session.send_line("三万").unwrap();
        sees(&mut session, "金額として読めません");
        sees(&mut session, "数えた現金の合計（円）: ");
        session.send_line("31,000").unwrap();
        sees(&mut session, "この内容で締めますか？ 1 はい / 0 やめる: ");
        session.send_line("1").unwrap();
        sees(&mut session, "締めを記録しました");
        let _ = session.expect(expectrl::Eof);
        let code = match session.get_process_mut().wait() {
            Ok(expectrl::WaitStatus::Exited(_, code)) => Some(code),
            _ => None,
        };
        (shown, code)
    })
    .await
    .unwrap();
    let (shown, code) = screen;
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains(OPERATOR_PIN), "the PIN is not echoed: {shown}");
    for line in [
        "窓口: 出張窓口",
        "第1回 プレミアム商品券（第1回）  3 セット  ¥30,000",
        "台帳の販売記録による現金（見込み）  3 セット  ¥30,000",
        "数えた現金  ¥31,000",
        "過不足  ¥1,000 過剰",
    ] {
        assert!(shown.contains(line), "{line:?} not in:\n{shown}");
    }
    let cash = town.client.cash_day(&day).await.unwrap();
    let close = cash.counters[0].close.as_ref().expect("recorded");
    assert_eq!((close.counted, close.difference), (Yen(31_000), 1_000));
    assert_eq!(
        cash.gaps[0],
        CashGap::CountDiffers { operator: id(&counter), name: "出張窓口".into(), difference: 1_000 }
    );
}
