//! The kiosk driven through a real pseudo-terminal against a real node and merchant API
//! on loopback: a senior's whole session in Japanese, a cancelled payment, five wrong
//! PINs, an unknown pay code, too little balance, and a large shop when only local
//! value is left.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use expectrl::Session;
use futures_util::StreamExt as _;
use machi_api::TxStatus;
use machi_client::{sign, Client};
use machi_ledger::testkit::{standard_issue, DAY_MS};
use machi_ledger::{AccountId, Action, Delegation, IssueParams, SigningKey, Yen};
use machi_wallet::keystore::Keystore;
use machi_wallet::receipt_code::ReceiptCode;
use machi_wallet::screen::big_digits;
use serde_json::{json, Value};

use crate::faults::{Fault, Proxy};
use crate::run::wallet_command;

pub(crate) const PIN: &str = "2468";
/// The PIN of the counter operator's card.
pub(crate) const OPERATOR_PIN: &str = "1111";

fn id(key: &SigningKey) -> AccountId {
    AccountId(key.verifying_key().to_bytes())
}

pub(crate) struct Town {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) node: Client,
    pub(crate) node_url: String,
    pub(crate) merchant_url: String,
    pub(crate) keystore: PathBuf,
    receipts: PathBuf,
    admin: String,
    http: reqwest::Client,
    /// Card number and account of each resident.
    pub(crate) cards: Vec<(String, AccountId)>,
    residents: Vec<SigningKey>,
    chain_id: String,
    /// The counter operator's card (PIN `OPERATOR_PIN`).
    pub(crate) operator_card: String,
}

impl Town {
    pub(crate) async fn start() -> Town {
        let dir = tempfile::tempdir().unwrap();
        let node_dir = dir.path().join("node");
        machi_node::init(&node_dir, "kiosk-town").unwrap();
        let node = machi_node::Node::open_with_clock(&node_dir, Arc::new(machi_node::SystemClock)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(node.serve(listener, std::future::pending()));
        let town = machi_node::read_key(&node_dir.join("keys/town.key")).unwrap();
        let merchant_dir = dir.path().join("merchant");
        let admin = machi_merchant::new_admin_token(&merchant_dir).unwrap();
        // The merchant API runs with the town's delegated keys, not the town's own.
        let (registrar, settler) = (machi_node::generate_key(), machi_node::generate_key());
        let delegates = [(&registrar, Delegation::ShopRegistrar), (&settler, Delegation::Settler)];
        let setup = Client::new(&node_url);
        let chain_id = setup.head().await.unwrap().chain_id;
        for (key, delegation) in delegates {
            let delegate = AccountId(key.verifying_key().to_bytes());
            let action = Action::RegisterDelegate { delegate, name: "merchant API".into(), delegation };
            let result = setup.submit(&sign(&chain_id, &town, action)).await.unwrap();
            assert_eq!(result.status, TxStatus::Applied, "{result:?}");
        }
        let config = machi_merchant::Config {
            data_dir: merchant_dir,
            node_url: node_url.clone(),
            town: AccountId(town.verifying_key().to_bytes()),
            registrar_key: registrar,
            settler_key: settler,
            issuer_key: None,
            town_bank: None,
            clock: Arc::new(machi_node::SystemClock),
        };
        let merchant = machi_merchant::Merchant::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let merchant_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(machi_merchant::serve(merchant, listener, std::future::pending()));

        // What the test checks on the node it reads as the town, which reads every account.
        let client = Client::new(&node_url).reading_as(town.clone(), "demo test: what the kiosk did");
        let chain_id = client.head().await.unwrap().chain_id;
        let operator = machi_node::generate_key();
        let submit = |key: &SigningKey, action: Action| {
            let tx = sign(&chain_id, key, action);
            let client = client.clone();
            async move {
                let result = client.submit(&tx).await.unwrap();
                assert_eq!(result.status, TxStatus::Applied, "{result:?}");
            }
        };
        submit(&town, Action::RegisterOperator { operator: id(&operator), name: "窓口".into() }).await;
        let now = machi_client::now_ms();
        // On sale since yesterday and until tomorrow.
        let issue = IssueParams { sale_end_ms: now + DAY_MS, ..standard_issue(1, 100, 5, now - DAY_MS) };
        submit(&town, Action::CreateIssue { issue }).await;
        let keystore = dir.path().join("keystore");
        let store = Keystore::open(&keystore).unwrap();
        let residents: Vec<SigningKey> = (0..4).map(|_| machi_node::generate_key()).collect();
        let mut cards = Vec::new();
        for (i, resident) in residents.iter().enumerate() {
            let resident_hash = machi_ledger::sha256(format!("resident-{i}").as_bytes());
            submit(
                &operator,
                Action::RegisterResident { resident: id(resident), resident_hash, worker: false },
            )
            .await;
            let sell =
                Action::SellSets { issue: 1, resident: id(resident), sets: 2, cash_received: Yen(20_000) };
            submit(&operator, sell).await;
            cards.push((store.create(resident, PIN, "resident").unwrap().display(), id(resident)));
        }
        let operator_card = store.create(&operator, OPERATOR_PIN, "operator").unwrap().display();
        Town {
            receipts: dir.path().join("receipts"),
            dir,
            operator_card,
            node: client,
            node_url,
            merchant_url,
            keystore,
            admin,
            http: reqwest::Client::new(),
            cards,
            residents,
            chain_id,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.merchant_url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    /// Registers a shop and returns (shop id, point-of-sale token).
    pub(crate) async fn shop(&self, name: &str, class: &str) -> (String, String) {
        let bank = json!({"bank_code": "0126", "branch_code": "101", "account_type": "ordinary",
                          "account_number": "0012345", "holder_kana": "テスト"});
        let body = json!({"name": name, "kana_name": "テスト", "class": class, "bank": bank});
        let shop = self.call(reqwest::Method::POST, "/v1/admin/shops", &self.admin, body).await;
        let shop_id = shop["id"].as_str().unwrap().to_string();
        let path = format!("/v1/admin/shops/{shop_id}/tokens");
        let token =
            self.call(reqwest::Method::POST, &path, &self.admin, json!({"scope": "point_of_sale"})).await;
        (shop_id, token["token"].as_str().unwrap().to_string())
    }

    /// An invoice: (id, pay code).
    pub(crate) async fn invoice(&self, token: &str, amount: u64) -> (String, String) {
        let invoice =
            self.call(reqwest::Method::POST, "/v1/invoices", token, json!({"amount": amount})).await;
        (invoice["id"].as_str().unwrap().to_string(), invoice["pay_code"].as_str().unwrap().to_string())
    }

    pub(crate) async fn invoice_status(&self, token: &str, id: &str) -> String {
        let response = self
            .http
            .get(format!("{}/v1/invoices/{id}", self.merchant_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()["status"].as_str().unwrap().to_string()
    }

    /// Waits for the merchant API's `invoice.paid` event for `id` (replayed from the
    /// start, so an event that came first is not missed).
    pub(crate) async fn paid_event(&self, token: &str, id: &str) {
        let merchant = Client::new(&self.merchant_url);
        let mut events = merchant.shop_events(token, Some(0)).await.expect("events stream");
        let wait = async {
            while let Some(event) = events.next().await {
                let event = event.expect("the event stream goes on");
                if event.name == "invoice.paid" && event.json::<Value>().unwrap()["invoice"]["id"] == id {
                    return;
                }
            }
            panic!("event stream ended");
        };
        tokio::time::timeout(Duration::from_secs(20), wait).await.expect("invoice.paid event");
    }

    pub(crate) async fn total(&self, account: &AccountId) -> u64 {
        self.node.account(account).await.unwrap().total.0
    }

    fn kiosk(&self, timeout_s: u64) -> Kiosk {
        self.kiosk_via(&self.node_url, timeout_s, machi_client::REQUEST_TIMEOUT_S_DEFAULT)
    }

    /// The kiosk talking to the node at `node_url` (e.g. a faulty proxy), waiting at most
    /// `request_timeout_s` for each answer.
    fn kiosk_via(&self, node_url: &str, timeout_s: u64, request_timeout_s: u64) -> Kiosk {
        let mut command = crate::run::wallet_command();
        command
            .args(["--node", node_url, "--merchant", &self.merchant_url, "--keystore"])
            .arg(&self.keystore)
            .args(["--request-timeout-s", &request_timeout_s.to_string()])
            .args(["kiosk", "--timeout-s", &timeout_s.to_string(), "--receipts"])
            .arg(&self.receipts)
            .env("COLUMNS", "80")
            .env("LINES", "24");
        Kiosk(terminal(command))
    }

    /// A machi-wallet command run in a pseudo-terminal, as a person at the counter runs it.
    pub(crate) fn at_terminal(&self, args: &[&str]) -> Kiosk {
        let mut command = crate::run::wallet_command();
        command
            .args(["--node", &self.node_url, "--merchant", &self.merchant_url, "--keystore"])
            .arg(&self.keystore)
            .args(args)
            .env_remove("MACHI_PIN")
            .env_remove("MACHI_NEW_PIN")
            .env_remove("MACHI_RESIDENT_NUMBER");
        Kiosk(terminal(command))
    }
}

fn terminal(command: Command) -> Session {
    let mut session = Session::spawn(command).expect("starts in a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(20)));
    session
}

/// A program in a pseudo-terminal: what it shows, what is typed.
pub(crate) struct Kiosk(Session);

impl Kiosk {
    #[track_caller]
    pub(crate) fn sees(&mut self, text: &str) {
        self.sees_after(text);
    }

    /// Waits for `text` and returns everything shown before it since the last wait.
    #[track_caller]
    pub(crate) fn sees_after(&mut self, text: &str) -> String {
        match self.0.expect(text) {
            Ok(found) => String::from_utf8_lossy(found.before()).to_string(),
            Err(e) => panic!("the terminal never showed {text:?}: {e}"),
        }
    }

    /// The program's exit code, once it ends.
    pub(crate) fn exit_code(mut self) -> Option<i32> {
        let _ = self.0.expect(expectrl::Eof);
        match self.0.get_process_mut().wait() {
            Ok(expectrl::WaitStatus::Exited(_, code)) => Some(code),
            _ => None,
        }
    }

    pub(crate) fn types(&mut self, line: &str) {
        self.0.send_line(line).expect("typing into the kiosk");
    }

    /// Card and PIN, up to the menu.
    fn signs_in(&mut self, card: &str) {
        self.sees("カード番号を入れて");
        self.types(card);
        self.sees("暗証番号（4〜8けた）");
        self.types(PIN);
        self.sees("5  終わる");
    }
}

/// Runs blocking PTY steps off the async runtime that serves node and merchant API.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("kiosk steps")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seniors_session_and_everything_that_can_go_wrong() {
    let town = Town::start().await;
    let (_, yamada_pos) = town.shop("山田商店", "local").await;
    let (_, super_pos) = town.shop("スーパーまち", "large").await;
    let (card, account) = town.cards[0].clone();

    // 1. A whole session: balance, pay by code with confirmation, completion, receipt.
    let (invoice, code) = town.invoice(&yamada_pos, 1_200).await;
    let mut kiosk = town.kiosk(90);
    let receipts = town.receipts.clone();
    let (code2, big) = (code.clone(), big_digits("¥1,200"));
    let (mut kiosk, screen) = blocking(move || {
        kiosk.signs_in(&card);
        kiosk.types("1");
        kiosk.sees("¥25,000");
        kiosk.sees("共通");
        kiosk.sees("地元専用");
        kiosk.sees("有効期限");
        kiosk.types("");
        kiosk.types("2");
        kiosk.sees("8けたの「支払いコード」");
        kiosk.types(&code2);
        kiosk.sees("山田商店");
        kiosk.sees(&big[0]);
        kiosk.sees("¥1,200 を支払いますか");
        kiosk.types("1");
        kiosk.sees("支払いが完了しました");
        kiosk.sees("残高: ¥23,800");
        kiosk.types("1");
        // The receipt's screen: its QR code, and beside it what it is for.
        kiosk.sees("\x1b[2J\x1b[H");
        let screen = kiosk.sees_after("Enter = メニューにもどる");
        (kiosk, screen)
    })
    .await;
    assert_eq!(town.total(&account).await, 25_000 - 1_200);
    town.paid_event(&yamada_pos, &invoice).await;
    assert_eq!(town.invoice_status(&yamada_pos, &invoice).await, "paid");
    let receipt = std::fs::read_dir(&receipts).unwrap().next().expect("a receipt file").unwrap().path();
    let text = std::fs::read_to_string(&receipt).unwrap();
    assert!(text.contains("山田商店") && text.contains("¥1,200") && text.contains(&invoice), "{text}");
    // The receipt carries the payment's id, block and block hash, as text and as a code.
    let code = ReceiptCode::find(&text).expect("the receipt's check code");
    let paid = town.node.tx(&code.tx_id).await.unwrap();
    assert_eq!(paid.result.status, TxStatus::Applied);
    assert!(matches!(paid.body.unwrap().action, Action::Pay { amount: Yen(1_200), .. }));
    assert_eq!((Some(code.height), Some(code.block_hash)), (paid.result.height, paid.result.block_hash));
    for shown in [code.tx_id.to_hex(), code.height.to_string(), code.block_hash.to_hex(), code.payload()] {
        assert!(text.contains(&shown), "{shown} is not on the receipt: {text}");
    }
    assert!(text.contains(&code.print_lines()[4]), "the printed QR code: {text}");
    // On the screen: every row of the code, whole, with the transaction id and plain words.
    let rows: Vec<&str> = screen.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let qr = code.screen_lines();
    assert!(rows.len() <= 24, "{screen}");
    for (row, line) in qr.iter().zip(&rows) {
        assert!(line.starts_with(row.as_str()), "row {row:?} is not drawn whole: {screen}");
    }
    for words in
        ["領収書を印刷しました。", "だれでも", &code.tx_id.to_hex()[..32], &code.tx_id.to_hex()[32..]]
    {
        assert!(screen.contains(words), "{words} is not on the screen: {screen}");
    }
    // Anyone checks the receipt file with the wallet: proven against the node's block,
    // not proven against another block's hash.
    let receipt_path = receipt.to_str().unwrap().to_string();
    let parent = town.node.block(code.height - 1).await.unwrap().hash.to_hex();
    let (url, ks) = (town.node_url.clone(), town.keystore.clone());
    let (proven, other) = blocking(move || {
        let check = |extra: &[&str]| {
            wallet_command()
                .args(["--node", &url, "--keystore"])
                .arg(&ks)
                .args(["verify-receipt", &receipt_path])
                .args(extra)
                .output()
                .unwrap()
        };
        (check(&[]), check(&["--block-hash", &parent]))
    })
    .await;
    let said = String::from_utf8_lossy(&proven.stdout);
    assert_eq!(proven.status.code(), Some(0), "{said}");
    assert!(said.contains("結果: 確かめられました"), "{said}");
    assert_eq!(other.status.code(), Some(6), "{}", String::from_utf8_lossy(&other.stderr));

    // 2. A cancelled payment sends nothing.
    let (invoice, code) = town.invoice(&yamada_pos, 800).await;
    let mut kiosk = blocking(move || {
        kiosk.types("");
        kiosk.sees("5  終わる");
        kiosk.types("2");
        kiosk.sees("8けたの「支払いコード」");
        kiosk.types(&code);
        kiosk.sees("¥800 を支払いますか");
        kiosk.types("2");
        kiosk.sees("支払いをやめました。お金は動いていません。");
        kiosk
    })
    .await;
    assert_eq!(town.total(&account).await, 25_000 - 1_200, "nothing was paid");
    assert_eq!(town.invoice_status(&yamada_pos, &invoice).await, "open");

    // 3. An unknown pay code is explained, and another try is offered.
    let (_, big_invoice_code) = town.invoice(&yamada_pos, 30_000).await;
    let mut kiosk = blocking(move || {
        kiosk.types("2");
        kiosk.sees("8けたの「支払いコード」");
        kiosk.types("1234");
        kiosk.sees("支払いコードは 8けたの数字です");
        kiosk.types("00000000");
        kiosk.sees("その支払いコードは見つかりません");
        // 4. More than the balance.
        kiosk.types(&big_invoice_code);
        kiosk.sees("残高が足りないため、支払えません");
        kiosk.types("");
        kiosk.types("5");
        kiosk.sees("ご利用ありがとうございました");
        kiosk
    })
    .await;
    assert_eq!(town.total(&account).await, 25_000 - 1_200);

    // 5. A large shop when only local value is left.
    let (_, super_code) = town.invoice(&super_pos, 500).await;
    let (card1, account1) = town.cards[1].clone();
    let large_shop = super_shop(&town, &super_pos).await;
    let spend_common = Action::Pay { shop: large_shop, amount: Yen(12_500), invoice: None };
    let result = town.node.submit(&sign(&town.chain_id, &town.residents[1], spend_common)).await.unwrap();
    assert_eq!(result.status, TxStatus::Applied);
    let mut kiosk = blocking(move || {
        kiosk.signs_in(&card1);
        kiosk.types("2");
        kiosk.types(&super_code);
        kiosk.sees("大型店のため、共通券だけが使えます");
        kiosk.sees("地元専用券の残高 ¥12,500");
        kiosk.types("");
        kiosk.types("0");
        kiosk
    })
    .await;
    assert_eq!(town.total(&account1).await, 12_500);

    // 6. Five wrong PINs lock the card.
    let (card2, _) = town.cards[2].clone();
    let kiosk = blocking(move || {
        kiosk.sees("カード番号を入れて");
        kiosk.types(&card2);
        for left in (1..=4).rev() {
            kiosk.sees("暗証番号（4〜8けた）");
            kiosk.types("9999");
            kiosk.sees(&format!("あと {left} 回まちがえると"));
        }
        kiosk.types("9999");
        kiosk.sees("このカードはロックされました");
        kiosk.types("");
        // The right PIN does not open a locked card.
        kiosk.types(&card2);
        kiosk.types(PIN);
        kiosk.sees("このカードはロックされました");
        kiosk.types("");
        kiosk
    })
    .await;

    // 7. Nobody at the kiosk: back to the start on its own.
    drop(kiosk);
    let mut kiosk = town.kiosk(1);
    let (card3, _) = town.cards[3].clone();
    blocking(move || {
        kiosk.sees("カード番号を入れて");
        kiosk.types(&card3);
        kiosk.sees("暗証番号（4〜8けた）");
        kiosk.sees("時間がたったので、はじめの画面にもどりました");
    })
    .await;
}

async fn super_shop(town: &Town, token: &str) -> AccountId {
    let response =
        town.http.get(format!("{}/v1/shop", town.merchant_url)).bearer_auth(token).send().await.unwrap();
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_by_code_from_a_script() {
    let town = Town::start().await;
    let (_, pos) = town.shop("山田商店", "local").await;
    let (invoice, code) = town.invoice(&pos, 2_000).await;
    let (card, account) = town.cards[0].clone();
    let wallet = |args: Vec<String>| {
        let mut command = crate::run::wallet_command();
        command.args(["--node", &town.node_url, "--merchant", &town.merchant_url, "--json", "--keystore"]);
        command.arg(&town.keystore).args(args).env("MACHI_PIN", PIN);
        async move { tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap() }
    };
    let args = |code: &str| ["pay", "--card", &card, "--code", code].map(String::from).to_vec();
    let unknown = wallet(args("00000000")).await;
    assert_eq!(unknown.status.code(), Some(2), "an unknown pay code is the user's error");
    let paid = wallet(args(&code)).await;
    assert_eq!(paid.status.code(), Some(0), "{}", String::from_utf8_lossy(&paid.stdout));
    let json: Value = serde_json::from_slice(&paid.stdout).unwrap();
    assert_eq!((json["amount"].as_u64(), json["shop_name"].as_str()), (Some(2_000), Some("山田商店")));
    assert_eq!(town.total(&account).await, 25_000 - 2_000);
    town.paid_event(&pos, &invoice).await;
    let again = wallet(args(&code)).await;
    assert_eq!(again.status.code(), Some(2), "a paid invoice's code no longer pays");
    assert_eq!(town.total(&account).await, 25_000 - 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_answer_is_lost_shows_checking_then_the_real_outcome() {
    let town = Town::start().await;
    let (_, pos) = town.shop("山田商店", "local").await;
    // The node commits the payment, then the answer is dropped (0) or held past the
    // kiosk's 1-second wait (1).
    for (i, fault) in [Fault::DropAnswer, Fault::HoldAnswer].into_iter().enumerate() {
        let proxy = Proxy::start(&town.node_url, fault, 1).await;
        let (invoice, code) = town.invoice(&pos, 1_000).await;
        let (card, account) = town.cards[i].clone();
        let mut kiosk = town.kiosk_via(&proxy.url, 90, 1);
        let shown = blocking(move || {
            kiosk.signs_in(&card);
            kiosk.types("2");
            kiosk.sees("8けたの「支払いコード」");
            kiosk.types(&code);
            kiosk.sees("¥1,000 を支払いますか");
            kiosk.types("1");
            let before_checking = kiosk.sees_after("確認中");
            let before_done = kiosk.sees_after("支払いが完了しました");
            kiosk.sees("残高: ¥24,000");
            format!("{before_checking}{before_done}")
        })
        .await;
        for never in ["できませんでした", "お金は動いていません", "Not done"] {
            assert!(!shown.contains(never), "{fault:?}: the kiosk said {never:?}:\n{shown}");
        }
        assert_eq!(town.total(&account).await, 25_000 - 1_000, "{fault:?}: paid exactly once");
        let history = town.node.account(&account).await.unwrap().history;
        assert_eq!(history.iter().filter(|h| h.kind == "pay").count(), 1, "{fault:?}: one payment on chain");
        town.paid_event(&pos, &invoice).await;
        assert_eq!(town.invoice_status(&pos, &invoice).await, "paid");
    }
}
