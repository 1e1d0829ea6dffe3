//! A node and a merchant API in temp folders on 127.0.0.1:0, sharing a clock the test
//! moves; a town seeded with an issue (1% cash-out fee) and residents who bought sets.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use machi_api::{TxResultView, TxStatus};
use machi_client::{sign_at, Client};
use machi_ledger::testkit::standard_issue;
use machi_ledger::{AccountId, Action, Delegation, IssueParams, SignedTx, SigningKey, Yen};
use machi_merchant::{Config, Merchant};
use machi_node::{ManualClock, Node};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub(crate) use machi_ledger::testkit::DAY_MS;

/// The month (`YYYY-MM`, JST) of `ms`, and the first millisecond of the next month.
pub(crate) fn month_of(ms: u64) -> (String, u64) {
    let date = machi_ledger::time::format_jst_date(ms);
    let (year, month) = (date[..4].parse::<i32>().unwrap(), date[5..7].parse::<u32>().unwrap());
    let next =
        if month == 12 { format!("{}-01-01", year + 1) } else { format!("{year}-{:02}-01", month + 1) };
    (date[..7].to_string(), machi_ledger::time::start_of_day_jst_ms(&next).unwrap())
}

pub(crate) fn id(key: &SigningKey) -> AccountId {
    AccountId::of(key)
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("task ends");
    }
}

pub(crate) struct Town {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) node_dir: PathBuf,
    pub(crate) merchant_dir: PathBuf,
    pub(crate) node: Client,
    node_addr: std::net::SocketAddr,
    pub(crate) url: String,
    pub(crate) chain_id: String,
    pub(crate) town: SigningKey,
    /// The town's delegated keys that the merchant API runs with.
    pub(crate) registrar: SigningKey,
    pub(crate) settler: SigningKey,
    /// The delegated issuer the service is started with, if any.
    pub(crate) issuer: Option<SigningKey>,
    pub(crate) operator: SigningKey,
    pub(crate) residents: Vec<SigningKey>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) admin: String,
    pub(crate) http: reqwest::Client,
    /// When set, the merchant API reaches the node through this stand-in.
    pub(crate) proxy: Option<crate::proxy::Proxy>,
    /// Peers whose `X-Forwarded-For` the merchant API believes.
    pub(crate) trusted_proxies: Vec<std::net::IpAddr>,
    /// The merchant API marks its cookies `Secure` always (`--secure-cookies`).
    pub(crate) secure_cookies: bool,
    node_task: Option<Running>,
    merchant_task: Option<Running>,
    /// The running merchant API, to see it gone after a stop (sled allows one opener).
    merchant: std::sync::Weak<Merchant>,
}

async fn serve_node(
    dir: &std::path::Path,
    clock: Arc<ManualClock>,
    addr: &str,
) -> (std::net::SocketAddr, Running) {
    let node = Node::open_with_clock(dir, clock).expect("node opens");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind node");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        node.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("node serves");
    });
    (addr, Running { stop, task })
}

impl Town {
    pub(crate) async fn start() -> Town {
        Town::start_with(false).await
    }

    /// A town whose merchant API reaches the node through a fault-injecting stand-in.
    pub(crate) async fn start_behind_proxy() -> Town {
        Town::start_with(true).await
    }

    async fn start_with(proxied: bool) -> Town {
        let dir = tempfile::tempdir().expect("temp dir");
        let node_dir = dir.path().join("node");
        let merchant_dir = dir.path().join("merchant");
        machi_node::init(&node_dir, "merchant-test").expect("init");
        // Block times move forward from genesis, which `init` stamps with the real time.
        let clock = Arc::new(ManualClock::new(machi_node::now_ms() + 1_000));
        let (node_addr, node_task) = serve_node(&node_dir, clock.clone(), "127.0.0.1:0").await;
        let node = Client::new(&format!("http://{node_addr}"));
        let town = machi_node::read_key(&node_dir.join("keys/town.key")).unwrap();
        let admin = machi_merchant::new_admin_token(&merchant_dir).expect("admin token");
        let mut t = Town {
            _dir: dir,
            node_dir,
            merchant_dir,
            chain_id: "merchant-test".into(),
            node,
            node_addr,
            url: String::new(),
            town,
            registrar: machi_node::generate_key(),
            settler: machi_node::generate_key(),
            issuer: None,
            operator: machi_node::generate_key(),
            residents: (0..3).map(|_| machi_node::generate_key()).collect(),
            clock,
            admin,
            http: reqwest::Client::new(),
            proxy: None,
            trusted_proxies: Vec::new(),
            secure_cookies: false,
            node_task: Some(node_task),
            merchant_task: None,
            merchant: std::sync::Weak::new(),
        };
        if proxied {
            t.proxy = Some(crate::proxy::Proxy::start(&format!("http://{node_addr}")).await);
        }
        t.seed().await;
        t.start_merchant().await;
        t
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The node as `key` reads it (a resident its own account, the town everything): the
    /// node refuses anonymous reads of accounts and blocks.
    pub(crate) fn reading_as(&self, key: &SigningKey) -> Client {
        self.node.reading_as(key.clone(), "machi-merchant tests: checking what the chain holds")
    }

    pub(crate) fn sign(&self, key: &SigningKey, action: Action) -> SignedTx {
        sign_at(&self.chain_id, key, action, self.now())
    }

    pub(crate) async fn submit(&self, key: &SigningKey, action: Action) -> TxResultView {
        let result = self.node.submit(&self.sign(key, action)).await.expect("node answers");
        assert_eq!(result.status, TxStatus::Applied, "{result:?}");
        result
    }

    async fn seed(&self) {
        let start = self.now();
        // On sale since yesterday; spendable and cashed out long enough for the tests that
        // move the clock past a month's end.
        let issue = IssueParams {
            sale_end_ms: start + DAY_MS,
            spend_until_ms: start + 80 * DAY_MS,
            cash_out_deadline_ms: start + 120 * DAY_MS,
            ..standard_issue(1, 100, 5, start - DAY_MS)
        };
        self.submit(
            &self.town,
            Action::RegisterOperator { operator: id(&self.operator), name: "窓口".into() },
        )
        .await;
        self.submit(&self.town, Action::CreateIssue { issue }).await;
        for (delegate, delegation) in
            [(&self.registrar, Delegation::ShopRegistrar), (&self.settler, Delegation::Settler)]
        {
            let action =
                Action::RegisterDelegate { delegate: id(delegate), name: "merchant API".into(), delegation };
            self.submit(&self.town, action).await;
        }
        for (i, resident) in self.residents.iter().enumerate() {
            let resident_hash = machi_ledger::sha256(format!("resident-{i}").as_bytes());
            self.submit(
                &self.operator,
                Action::RegisterResident { resident: id(resident), resident_hash, worker: false },
            )
            .await;
            let sell =
                Action::SellSets { issue: 1, resident: id(resident), sets: 2, cash_received: Yen(20_000) };
            self.submit(&self.operator, sell).await;
        }
    }

    pub(crate) async fn start_merchant(&mut self) {
        let config = self.merchant_config();
        let network = machi_merchant::Network {
            trusted_proxies: self.trusted_proxies.clone(),
            secure_cookies: self.secure_cookies,
        };
        let merchant = Merchant::open_with(config, network).await.expect("merchant opens");
        self.serve_merchant(merchant).await;
    }

    /// The service's configuration for this town (its delegated keys, the town's bank).
    pub(crate) fn merchant_config(&self) -> Config {
        let town_bank = self.merchant_dir.with_file_name("town-bank.toml");
        std::fs::write(
            &town_bank,
            "requester_code = \"0000012345\"\nname_kana = \"バンダイマチ\"\nbank_code = \"0126\"\n\
             branch_code = \"101\"\naccount_type = \"ordinary\"\naccount_number = \"7654321\"\n",
        )
        .unwrap();
        Config {
            data_dir: self.merchant_dir.clone(),
            // Without a proxy, the service is given a replica that is down before the
            // node, as a town's list of replicas may have: every test then also shows the
            // client passing over it.
            node_url: match &self.proxy {
                Some(proxy) => proxy.url.clone(),
                None => format!("{},http://{}", down_replica(), self.node_addr),
            },
            town: id(&self.town),
            registrar_key: self.registrar.clone(),
            settler_key: self.settler.clone(),
            issuer_key: self.issuer.clone(),
            town_bank: Some(machi_merchant::load_town_bank(&town_bank).expect("town bank")),
            clock: self.clock.clone(),
        }
    }

    async fn serve_merchant(&mut self, merchant: Arc<Merchant>) {
        self.merchant = Arc::downgrade(&merchant);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind merchant");
        self.url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            machi_merchant::serve(merchant, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("merchant serves");
        });
        self.merchant_task = Some(Running { stop, task });
    }

    /// Stops the merchant API and waits until the last connection has let go of it, so
    /// its sled folder can be opened again.
    pub(crate) async fn stop_merchant(&mut self) {
        if let Some(task) = self.merchant_task.take() {
            task.stop().await;
        }
        for _ in 0..1_000 {
            if self.merchant.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the merchant API was still held 10 s after it stopped");
    }

    /// Stops the node and starts it again on the same address and folder.
    pub(crate) async fn restart_node(&mut self) {
        self.stop_node().await;
        self.start_node().await;
    }

    pub(crate) async fn stop_node(&mut self) {
        if let Some(task) = self.node_task.take() {
            task.stop().await;
        }
    }

    pub(crate) async fn start_node(&mut self) {
        let (_, task) = serve_node(&self.node_dir, self.clock.clone(), &self.node_addr.to_string()).await;
        self.node_task = Some(task);
    }

    pub(crate) fn proxy(&self) -> &crate::proxy::Proxy {
        self.proxy.as_ref().expect("a town started behind a proxy")
    }

    /// Sends a request to the merchant API; returns status and JSON (or text as a string).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    pub(crate) async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("merchant answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    pub(crate) async fn get_bytes(
        &self,
        path: &str,
        token: &str,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let response = self.http.get(format!("{}{path}", self.url)).bearer_auth(token).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.bytes().await.unwrap().to_vec())
    }

    /// Registers a shop through the admin API and returns its id.
    pub(crate) async fn register_shop(&self, name: &str, class: &str, holder: &str) -> String {
        let body = json!({
            "name": name, "kana_name": "テスト", "class": class,
            "bank": {"bank_code": "0126", "branch_code": "105", "account_type": "ordinary",
                     "account_number": "0012345", "holder_kana": holder}
        });
        let (status, shop) = self.call("POST", "/v1/admin/shops", Some(&self.admin), Some(body)).await;
        assert_eq!(status, 201, "{shop}");
        shop["id"].as_str().unwrap().to_string()
    }

    pub(crate) async fn token(&self, shop: &str, scope: &str) -> String {
        let path = format!("/v1/admin/shops/{shop}/tokens");
        let (status, token) =
            self.call("POST", &path, Some(&self.admin), Some(json!({"scope": scope}))).await;
        assert_eq!(status, 201, "{token}");
        token["token"].as_str().unwrap().to_string()
    }

    /// A resident pays a shop, naming the invoice, as the wallet does.
    pub(crate) async fn pay(&self, resident: usize, shop: &str, amount: u64, invoice: &str) -> TxResultView {
        let action = Action::Pay {
            shop: shop.parse().unwrap(),
            amount: Yen(amount),
            invoice: Some(invoice.to_string()),
        };
        self.submit(&self.residents[resident], action).await
    }

    /// Reads the invoice until it has `status` (the follower reads blocks in the
    /// background); each look first waits for the follower to be past `height`.
    pub(crate) async fn invoice_when(&self, token: &str, invoice: &str, status: &str) -> Value {
        let mut events = self.events(token, None).await;
        for _ in 0..100 {
            let (code, value) = self.call("GET", &format!("/v1/invoices/{invoice}"), Some(token), None).await;
            assert_eq!(code, 200, "{value}");
            if value["status"] == status {
                return value;
            }
            // Wait for the next event (or the keep-alive) instead of a fixed sleep.
            let _ = tokio::time::timeout(Duration::from_secs(1), events.next_event()).await;
        }
        panic!("invoice {invoice} never became {status}");
    }

    pub(crate) async fn events(&self, token: &str, last_event_id: Option<u64>) -> EventStream {
        let events = Client::new(&self.url).shop_events(token, last_event_id).await.expect("events stream");
        EventStream { events, ended: None }
    }
}

impl Drop for Town {
    fn drop(&mut self) {
        if let Some(task) = self.merchant_task.take() {
            let _ = task.stop.send(());
        }
        if let Some(task) = self.node_task.take() {
            let _ = task.stop.send(());
        }
    }
}

/// The URL of a loopback port that nothing listens on: bound, then let go.
fn down_replica() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", listener.local_addr().expect("bound"))
}

/// A shop's event stream, read by machi-client.
pub(crate) struct EventStream {
    events: machi_client::EventStream<machi_client::ServerEvent>,
    /// Why the stream ended, if it did with an error.
    ended: Option<machi_client::ClientError>,
}

impl EventStream {
    /// The next event's (name, data as JSON); `events_missed` with the reason when the
    /// client says events may have been skipped.
    pub(crate) async fn next_event(&mut self) -> Option<(String, Value)> {
        match self.events.next().await? {
            Ok(event) => {
                let data = event.json().unwrap_or_else(|_| Value::String(event.data.clone()));
                Some((event.name, data))
            }
            Err(e @ machi_client::ClientError::EventsMissed(_)) => {
                Some((e.code().to_string(), Value::String(e.to_string())))
            }
            Err(e) => {
                self.ended = Some(e);
                None
            }
        }
    }

    /// Waits (up to 20 s) for an event named `name`.
    pub(crate) async fn expect(&mut self, name: &str) -> Value {
        let wait = async {
            loop {
                match self.next_event().await {
                    Some((n, data)) if n == name => return data,
                    Some(_) => continue,
                    None => panic!("event stream ended before {name}: {:?}", self.ended),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .unwrap_or_else(|_| panic!("no {name} event"))
    }
}
