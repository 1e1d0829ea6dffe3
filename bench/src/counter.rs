//! `counter`: shops' counters at work through the merchant API. Each worker
//! is a counter: it creates an invoice, a resident pays it (signed payment to the node,
//! naming the invoice), and the counter waits for the merchant API's `invoice.paid`
//! event. Measured per sale: invoice creation, payment commit, commit → paid event, and
//! the whole sale; plus the public pay-code look-up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use futures_util::StreamExt as _;
use machi_api::TxStatus;
use machi_client::{sign, Client};
use machi_ledger::{Action, Yen};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::stats::{median, percentile};
use crate::town::{read_key, setup, Town, TownSize};

#[derive(Serialize)]
struct Outcome {
    sales: usize,
    sales_per_s: f64,
    invoice_ms: [f64; 2],
    commit_ms: [f64; 2],
    paid_event_ms: [f64; 2],
    sale_ms: [f64; 2],
    pay_code_lookup_ms: [f64; 2],
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

struct Merchant {
    url: String,
    http: reqwest::Client,
}

impl Merchant {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("reaching {}", self.url))?;
        let status = response.status();
        let value: Value = response.json().await?;
        if !status.is_success() {
            bail!("{path}: {status} {value}");
        }
        Ok(value)
    }

    /// Registers `n` shops (every fourth large) and returns (shop id, POS token).
    async fn shops(&self, admin: &str, n: usize) -> anyhow::Result<Vec<(String, String)>> {
        let mut shops = Vec::new();
        for i in 0..n {
            let class = if i % 4 == 0 { "large" } else { "local" };
            let bank = json!({"bank_code": "0126", "branch_code": "101", "account_type": "ordinary",
                              "account_number": "0012345", "holder_kana": "ベンチ"});
            let body =
                json!({"name": format!("ベンチ店{i}"), "kana_name": "ベンチ", "class": class, "bank": bank});
            let shop = self.call(reqwest::Method::POST, "/v1/admin/shops", admin, Some(body)).await?;
            let id = shop["id"].as_str().context("shop id")?.to_string();
            let path = format!("/v1/admin/shops/{id}/tokens");
            let token = self
                .call(reqwest::Method::POST, &path, admin, Some(json!({"scope": "point_of_sale"})))
                .await?;
            shops.push((id, token["token"].as_str().context("token")?.to_string()));
        }
        Ok(shops)
    }
}

/// Reads a shop's event stream and hands each `invoice.paid` to whoever waits for it.
async fn listen(
    mut events: machi_client::EventStream<machi_client::ServerEvent>,
    waiting: Waiting,
) -> anyhow::Result<()> {
    while let Some(event) = events.next().await {
        let at = Instant::now();
        let event = event?;
        if event.name != "invoice.paid" {
            continue;
        }
        let value: Value = event.json()?;
        let id = value["invoice"]["id"].as_str().unwrap_or_default();
        if let Some(sender) = waiting.lock().expect("waiting lock").remove(id) {
            let _ = sender.send(at);
        }
    }
    Ok(())
}

struct Sale {
    invoice: Duration,
    commit: Duration,
    paid_event: Duration,
    whole: Duration,
}

async fn sell(
    merchant: &Merchant,
    node: &Client,
    town: &Town,
    shop: &(String, String),
    resident: usize,
    waiting: &Waiting,
) -> anyhow::Result<Sale> {
    let amount = 100 + (resident as u64 * 37) % 900;
    let start = Instant::now();
    let invoice = merchant
        .call(reqwest::Method::POST, "/v1/invoices", &shop.1, Some(json!({"amount": amount})))
        .await?;
    let invoiced = Instant::now();
    let id = invoice["id"].as_str().context("invoice id")?.to_string();
    let (send, paid) = oneshot::channel();
    waiting.lock().expect("waiting lock").insert(id.clone(), send);
    let action = Action::Pay {
        shop: shop.0.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        amount: Yen(amount),
        invoice: Some(id),
    };
    let result = node.submit(&sign(&town.chain_id, &town.residents[resident], action)).await?;
    if result.status != TxStatus::Applied {
        bail!("payment not applied: {result:?}");
    }
    let committed = Instant::now();
    let paid_at = tokio::time::timeout(Duration::from_secs(30), paid)
        .await
        .context("no invoice.paid within 30 s")??;
    Ok(Sale {
        invoice: invoiced - start,
        commit: committed - invoiced,
        paid_event: paid_at.saturating_duration_since(committed),
        whole: paid_at - start,
    })
}

/// Flags of `counter`.
#[derive(clap::Args)]
pub(crate) struct CounterArgs {
    /// The node's address, or a chain's replicas separated by commas
    /// (http://10.0.0.1:7101,http://10.0.0.2:7101): a request that one cannot serve
    /// (down, no leader, halted) goes to the next, the same signed transaction.
    #[arg(long, env = "MACHI_NODE", default_value = "http://127.0.0.1:7070", value_parser = machi_client::node_list)]
    node: String,
    #[arg(long, default_value = "http://127.0.0.1:7071")]
    merchant: String,
    /// The town's key file (DIR/keys/town.key).
    #[arg(long)]
    town_key: PathBuf,
    /// A town admin token of the merchant API (`machi-merchant admin-token`).
    #[arg(long)]
    admin_token: String,
    #[arg(long, default_value_t = 8)]
    shops: usize,
    #[arg(long, default_value_t = 5_000)]
    residents: usize,
    /// Counters selling at once.
    #[arg(long, default_value_t = 32)]
    counters: usize,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: CounterArgs) -> anyhow::Result<()> {
    let limits = crate::limits::measure().await?;
    let town_key = read_key(&args.town_key)?;
    let outcome = sales(&args, town_key).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "limits": limits, "counter": outcome }))?);
    } else {
        crate::limits::print(&limits);
        print(&outcome);
    }
    Ok(())
}

/// Sets up the town and the shops, then lets the counters sell.
async fn sales(args: &CounterArgs, town_key: SigningKey) -> anyhow::Result<Outcome> {
    let node = crate::town::town_client(&args.node, &town_key);
    let size = TownSize {
        operators: 1,
        shops: 0,
        residents: args.residents,
        sets_each: 2,
        total_sets: (args.residents * 2) as u32,
        cap: 2,
    };
    let town = setup(&node, town_key, &size).await?;
    let merchant =
        Merchant { url: args.merchant.trim_end_matches('/').to_string(), http: reqwest::Client::new() };
    let shops = merchant.shops(&args.admin_token, args.shops).await?;
    let waiting: Waiting = Arc::default();
    let events = Client::new(&merchant.url);
    for shop in &shops {
        // The service subscribes before it answers, so once the subscription is taken no
        // event can be missed.
        let stream = events.shop_events(&shop.1, None).await?;
        tokio::spawn(listen(stream, waiting.clone()));
    }
    let lookups = lookups(&merchant, &shops[0].1).await?;
    let counters = Arc::new(Counters { merchant, node, town, shops, waiting, next: AtomicUsize::new(0) });
    let started = Instant::now();
    let sales = counters.sell_until(args.counters, started + Duration::from_secs(args.duration)).await?;
    Ok(outcome(&sales, started.elapsed().as_secs_f64(), lookups))
}

/// What every counter shares: where it sells, whose payments it waits for, and the next
/// resident to come to a counter.
struct Counters {
    merchant: Merchant,
    node: Client,
    town: Town,
    shops: Vec<(String, String)>,
    waiting: Waiting,
    next: AtomicUsize,
}

impl Counters {
    /// `counters` counters sell, each at its shop, until the deadline or until every
    /// resident has paid once; the sales of all of them.
    async fn sell_until(self: Arc<Self>, counters: usize, deadline: Instant) -> anyhow::Result<Vec<Sale>> {
        let mut workers = Vec::new();
        for counter in 0..counters {
            let at = self.clone();
            workers.push(tokio::spawn(async move {
                let mut sales = Vec::new();
                while Instant::now() < deadline {
                    // Large shops take common value only: each resident pays once, well within it.
                    let resident = at.next.fetch_add(1, Ordering::Relaxed);
                    if resident >= at.town.residents.len() {
                        break;
                    }
                    let shop = &at.shops[counter % at.shops.len()];
                    sales.push(sell(&at.merchant, &at.node, &at.town, shop, resident, &at.waiting).await?);
                }
                anyhow::Ok(sales)
            }));
        }
        let mut sales = Vec::new();
        for worker in workers {
            sales.extend(worker.await??);
        }
        Ok(sales)
    }
}

fn outcome(sales: &[Sale], elapsed_s: f64, lookups: [f64; 2]) -> Outcome {
    let figures = |pick: fn(&Sale) -> Duration| {
        let mut ms: Vec<f64> = sales.iter().map(|s| pick(s).as_secs_f64() * 1e3).collect();
        [median(&mut ms), percentile(&mut ms, 99.0)]
    };
    Outcome {
        sales: sales.len(),
        sales_per_s: sales.len() as f64 / elapsed_s,
        invoice_ms: figures(|s| s.invoice),
        commit_ms: figures(|s| s.commit),
        paid_event_ms: figures(|s| s.paid_event),
        sale_ms: figures(|s| s.whole),
        pay_code_lookup_ms: lookups,
    }
}

/// Median and p99 of 10 pay-code look-ups (within the per-client burst of 20; a second
/// run within a minute from the same address meets the limit, as it should).
async fn lookups(merchant: &Merchant, token: &str) -> anyhow::Result<[f64; 2]> {
    let invoice =
        merchant.call(reqwest::Method::POST, "/v1/invoices", token, Some(json!({"amount": 100}))).await?;
    let code = invoice["pay_code"].as_str().context("pay code")?;
    let mut ms = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let response = merchant.http.get(format!("{}/v1/pay/{code}", merchant.url)).send().await?;
        if !response.status().is_success() {
            bail!(
                "pay-code look-up: {} (the per-client limit: wait a minute between runs)",
                response.status()
            );
        }
        response.bytes().await?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok([median(&mut ms), percentile(&mut ms, 99.0)])
}

fn print(o: &Outcome) {
    println!("counter sales through the merchant API: {} sales, {:.0} sales/s", o.sales, o.sales_per_s);
    println!("  {:<34} {:>9} {:>9}", "", "p50 ms", "p99 ms");
    for (what, f) in [
        ("create invoice", o.invoice_ms),
        ("payment committed (node)", o.commit_ms),
        ("commit → invoice.paid event", o.paid_event_ms),
        ("whole sale", o.sale_ms),
        ("public pay-code look-up", o.pay_code_lookup_ms),
    ] {
        println!("  {what:<34} {:>9.1} {:>9.1}", f[0], f[1]);
    }
}
