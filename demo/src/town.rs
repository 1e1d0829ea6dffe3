//! The demo town: a whole working town on this machine in one command — the node
//! (embedded storage, seeded: an operator, an issue on sale, residents who bought sets)
//! and the merchant API beside it (a local and a large shop with bank accounts and
//! tokens, an open invoice), residents' kiosk cards, and a guide of what to try. Both
//! run in this process; everything after they start goes through their HTTP APIs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use machi_ledger::{AccountId, ShopClass, Yen};
use machi_merchant::{
    AccountType, BankAccountInput, Config, CreateInvoiceRequest, CreateTokenRequest, DeviceCaller, Invoice,
    Merchant, RegisterShopRequest, Scope, ShopView, TokenCreated,
};
use machi_wallet::keystore::Keystore;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::seed;

pub(crate) struct DemoOptions {
    pub(crate) data_dir: PathBuf,
    pub(crate) node_listen: String,
    pub(crate) merchant_listen: String,
}

/// The PIN of every demo resident's card.
pub(crate) const DEMO_PIN: &str = "1234";

/// The demo chain's id.
const CHAIN_ID: &str = "machi-demo";

const TOWN_BANK: &str = r#"# The town's account that pays shops' cash-outs (demo values).
requester_code = "1234567890"
name_kana = "マチヤクバ"
bank_code = "0126"
branch_code = "101"
account_type = "ordinary"
account_number = "1234567"
"#;

/// Runs the demo town until `shutdown`.
pub(crate) async fn run_demo(
    options: DemoOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let dir = &options.data_dir;
    let node_dir = dir.join("node");
    let fresh = !machi_node::log_path(&node_dir).exists();
    if fresh {
        machi_node::init(&node_dir, CHAIN_ID)?;
    }
    let node = machi_node::Node::open(&node_dir)?;
    let town_key = machi_host::read_key(&node_dir.join("keys/town.key"))?;
    let keys_dir = dir.join("merchant-keys");
    let node_listener = tokio::net::TcpListener::bind(&options.node_listen)
        .await
        .with_context(|| format!("listening on {}", options.node_listen))?;
    let node_url = format!("http://{}", node_listener.local_addr()?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let node_stopped = wait_for(stopped.clone());
    let node_task = tokio::spawn(node.serve(node_listener, node_stopped));
    if fresh {
        let client = machi_client::Client::new(&node_url);
        seed::seed_town(&client, CHAIN_ID, &node_dir).await?;
        seed::delegate_to_the_merchant_api(&client, CHAIN_ID, &node_dir, &keys_dir).await?;
    }

    let bank_path = dir.join("town-bank.toml");
    if !bank_path.exists() {
        machi_host::write_durable(&bank_path, TOWN_BANK.as_bytes())?;
    }
    let merchant = Merchant::open(Config {
        data_dir: dir.join("merchant"),
        node_url: node_url.clone(),
        town: AccountId::of(&town_key),
        registrar_key: machi_host::read_key(&keys_dir.join(machi_merchant::REGISTRAR_KEY_FILE))?,
        settler_key: machi_host::read_key(&keys_dir.join(machi_merchant::SETTLER_KEY_FILE))?,
        // The town office's issue form creates issues with it (a town seeded before the
        // issuer delegation existed has none: its form gives the file to sign instead).
        issuer_key: {
            let path = keys_dir.join(machi_merchant::ISSUER_KEY_FILE);
            path.exists().then(|| machi_host::read_key(&path)).transpose()?
        },
        town_bank: Some(machi_merchant::load_town_bank(&bank_path)?),
        clock: Arc::new(machi_host::SystemClock),
    })
    .await?;
    let listener = tokio::net::TcpListener::bind(&options.merchant_listen)
        .await
        .with_context(|| format!("listening on {}", options.merchant_listen))?;
    let merchant_url = format!("http://{}", listener.local_addr()?);
    let served = tokio::spawn(machi_merchant::serve(merchant, listener, shutdown));
    let api = MerchantApi { http: reqwest::Client::new(), base: merchant_url.clone() };
    if fresh {
        seed_shops(&api, dir, &node_dir).await?;
    }
    let guide = guide(&api, dir, &node_url).await?;
    println!("{guide}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let served = served.await.context("merchant API task")?;
    let _ = stop.send(true);
    node_task.await.context("node task")??;
    served.context("serving the merchant API")
}

async fn wait_for(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// The merchant API over HTTP, as a shop's or the town's own program would call it.
struct MerchantApi {
    http: reqwest::Client,
    base: String,
}

impl MerchantApi {
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            anyhow::bail!("POST {path}: {status}: {text}");
        }
        response.json().await.with_context(|| format!("POST {path}: reading the answer"))
    }
}

fn bank(branch: &str, number: &str, holder: &str) -> BankAccountInput {
    BankAccountInput {
        bank_code: "0126".into(),
        branch_code: branch.into(),
        account_type: AccountType::Ordinary,
        account_number: number.into(),
        holder_kana: holder.into(),
    }
}

/// Registers the two shops with tokens, and gives residents cards; what must be shown
/// again on later runs (tokens are kept only as hashes) goes to DIR/demo-secrets.txt.
async fn seed_shops(api: &MerchantApi, dir: &Path, node_dir: &Path) -> anyhow::Result<()> {
    let shops = [
        ("山田商店", "ヤマダシヨウテン", ShopClass::Local, bank("105", "0012345", "ヤマダ タロウ")),
        ("スーパーまち", "スーパーマチ", ShopClass::Large, bank("101", "0067890", "カ)スーパーマチ")),
    ];
    let admin = machi_merchant::new_admin_token(&dir.join("merchant"))?;
    let mut secrets = String::new();
    for (name, kana, class, bank) in shops {
        let request = RegisterShopRequest { name: name.into(), kana_name: kana.into(), class, bank };
        let shop: ShopView = api.post("/v1/admin/shops", &admin, &request).await?;
        let tokens = format!("/v1/admin/shops/{}/tokens", shop.id);
        let token = |scope, label: &str| CreateTokenRequest { scope, label: label.into() };
        let pos: TokenCreated = api.post(&tokens, &admin, &token(Scope::PointOfSale, "counter")).await?;
        let full: TokenCreated = api.post(&tokens, &admin, &token(Scope::Full, "back office")).await?;
        writeln!(secrets, "shop\t{name}\t{}\t{}\t{}", shop.id, pos.token, full.token)?;
    }
    writeln!(secrets, "admin\t{admin}")?;
    let keystore = Keystore::open(&dir.join("keystore"))?;
    for i in 1..=seed::RESIDENTS {
        let card = keystore.create(&seed::resident_key(node_dir, i)?, DEMO_PIN, "resident")?;
        writeln!(secrets, "card\t{}", card.display())?;
    }
    machi_host::write_durable(&dir.join("demo-secrets.txt"), secrets.as_bytes())?;
    Ok(())
}

/// The screens of the first shop and of the town office: each URL with a fresh pairing
/// code, to type on the page in a browser (the codes are machi-merchant's own).
fn screens(dir: &Path, merchant_url: &str) -> anyhow::Result<String> {
    let data_dir = dir.join("merchant");
    let (shop, name) = machi_merchant::shops_in(&data_dir)?.into_iter().next().context("demo shops")?;
    let minutes = machi_merchant::PAIRING_CODE_VALID_MS / 60_000;
    let mut s = String::new();
    writeln!(s, "Screens of {name} and the town office: open the URL in a browser and type the code there")?;
    writeln!(s, "(each code works once, within {minutes} minutes; docs/SCREENS.md shows the screens):")?;
    for (what, caller) in [
        ("counter     ", DeviceCaller::Shop { shop, scope: Scope::PointOfSale }),
        ("back office ", DeviceCaller::Shop { shop, scope: Scope::Full }),
        ("town office ", DeviceCaller::TownOffice),
    ] {
        let code =
            machi_merchant::pairing_code_offline(&data_dir, caller, what.trim(), machi_host::now_ms())?;
        writeln!(s, "  {what} {merchant_url}/pair  pairing code {}-{}", &code[..4], &code[4..])?;
    }
    Ok(s)
}

async fn guide(api: &MerchantApi, dir: &Path, node_url: &str) -> anyhow::Result<String> {
    let merchant_url = &api.base;
    let secrets =
        std::fs::read_to_string(dir.join("demo-secrets.txt")).context("reading demo-secrets.txt")?;
    let fields = |kind: &str| -> Vec<Vec<String>> {
        secrets
            .lines()
            .filter(|l| l.starts_with(&format!("{kind}\t")))
            .map(|l| l.split('\t').skip(1).map(str::to_string).collect())
            .collect()
    };
    let shops = fields("shop");
    let admin = fields("admin").first().and_then(|f| f.first().cloned()).unwrap_or_default();
    let cards: Vec<String> = fields("card").into_iter().filter_map(|f| f.first().cloned()).collect();
    let yamada = shops.first().context("demo shops")?;
    // A fresh invoice each run, so there is always an open pay code to try.
    let request =
        CreateInvoiceRequest {
            amount: Yen(1_200), memo: "りんご 3個".into(), expires_in_s: Some(86_400)
        };
    let invoice: Invoice = api.post("/v1/invoices", &yamada[2], &request).await?;
    let code = invoice.pay_code.unwrap_or_default();
    let keystore = dir.join("keystore");
    let wallet = format!(
        "cargo run -q --release -p machi-demo -- wallet --node {node_url} --merchant {merchant_url} --keystore {}",
        keystore.display()
    );
    let mut g = String::new();
    writeln!(g, "machi-merchant listening on {merchant_url}")?;
    writeln!(g)?;
    writeln!(g, "A demo town is running (everything is kept in {}):", dir.display())?;
    writeln!(g, "  node          {node_url}      town dashboard: {node_url}/")?;
    writeln!(g, "  merchant API  {merchant_url}      API document:   {merchant_url}/openapi.json")?;
    writeln!(g)?;
    for shop in &shops {
        writeln!(g, "  shop {}  id {}", shop[0], shop[1])?;
        writeln!(g, "      counter token (point_of_sale): {}", shop[2])?;
        writeln!(g, "      back-office token (full):      {}", shop[3])?;
    }
    writeln!(g, "  town admin token: {admin}")?;
    writeln!(g, "  residents' cards (PIN {DEMO_PIN}): {}", cards.join(", "))?;
    writeln!(g, "  an open invoice: ¥1,200 at 山田商店, pay code {code}")?;
    writeln!(g)?;
    write!(g, "{}", screens(dir, merchant_url)?)?;
    writeln!(g)?;
    writeln!(g, "Try (in another terminal):")?;
    writeln!(g, "  curl {merchant_url}/v1/pay/{code}              # what a wallet sees for the pay code")?;
    writeln!(g, "  {wallet} kiosk --receipts {}", dir.join("receipts").display())?;
    writeln!(g, "                                                  # the kiosk: card {}, PIN {DEMO_PIN}, pay code {code}", cards.first().cloned().unwrap_or_default())?;
    writeln!(
        g,
        "  MACHI_PIN={DEMO_PIN} {wallet} pay --card {} --code {code}",
        cards.first().cloned().unwrap_or_default()
    )?;
    writeln!(
        g,
        "  MACHI_PIN={DEMO_PIN} {wallet} history --card {}   # read as the card: its own account only",
        cards.first().cloned().unwrap_or_default()
    )?;
    writeln!(g, "  curl -H 'Authorization: Bearer {}' {merchant_url}/v1/invoices/{}", yamada[2], invoice.id)?;
    writeln!(g, "  curl -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\", yamada[2])?;
    writeln!(g, "       -d '{{\"amount\": 980, \"memo\": \"やさい\"}}' {merchant_url}/v1/invoices")?;
    writeln!(
        g,
        "  curl -N -H 'Authorization: Bearer {}' {merchant_url}/v1/events   # payments as they land",
        yamada[2]
    )?;
    writeln!(g, "  docs/MERCHANT-API.md walks through a shop's day; docs/KIOSK.md is for counter staff.")?;
    write!(g, "Stop with Ctrl-C.")?;
    Ok(g)
}
