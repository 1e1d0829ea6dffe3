//! `machi-merchant demo`: a whole working town on this machine in one command — the
//! node (embedded storage, seeded: an operator, an issue on sale, residents who bought
//! sets) and the merchant API beside it (a local and a large shop with bank accounts
//! and tokens, an open invoice), residents' kiosk cards, and a guide of what to try.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use machi_api::TxStatus;
use machi_ledger::{AccountId, Action, Delegation, ShopClass, Yen};
use machi_wallet::keystore::Keystore;

use crate::merchant::{Config, Merchant};
use crate::model::{AccountType, BankAccountInput, CreateInvoiceRequest, RegisterShopRequest, Scope};

pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub node_listen: String,
    pub merchant_listen: String,
}

/// The PIN of every demo resident's card.
pub const DEMO_PIN: &str = "1234";

const TOWN_BANK: &str = r#"# The town's account that pays shops' cash-outs (demo values).
requester_code = "1234567890"
name_kana = "マチヤクバ"
bank_code = "0126"
branch_code = "101"
account_type = "ordinary"
account_number = "1234567"
"#;

/// Runs the demo town until Ctrl-C.
pub async fn run_demo(
    options: DemoOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let dir = &options.data_dir;
    let node_dir = dir.join("node");
    let fresh = !machi_node::log_path(&node_dir).exists();
    if fresh {
        machi_node::init(&node_dir, "machi-demo")?;
    }
    let node = machi_node::Node::open(&node_dir)?;
    let town_key = machi_node::read_key(&node_dir.join("keys/town.key"))?;
    let keys_dir = dir.join("merchant-keys");
    if fresh {
        machi_node::seed_demo_town(&node, &node_dir, false).await?;
        delegate_to_the_merchant_api(&node, &town_key, &keys_dir).await?;
    }
    let node_listener = tokio::net::TcpListener::bind(&options.node_listen)
        .await
        .with_context(|| format!("listening on {}", options.node_listen))?;
    let node_url = format!("http://{}", node_listener.local_addr()?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let node_stopped = wait_for(stopped.clone());
    let node_task = tokio::spawn(node.serve(node_listener, node_stopped));

    let bank_path = dir.join("town-bank.toml");
    if !bank_path.exists() {
        std::fs::write(&bank_path, TOWN_BANK)?;
    }
    let merchant = Merchant::open(Config {
        data_dir: dir.join("merchant"),
        node_url: node_url.clone(),
        town: AccountId::of(&town_key),
        registrar_key: machi_node::read_key(&keys_dir.join(crate::delegates::REGISTRAR_KEY_FILE))?,
        settler_key: machi_node::read_key(&keys_dir.join(crate::delegates::SETTLER_KEY_FILE))?,
        town_bank: Some(crate::town_bank::load_town_bank(&bank_path)?),
        clock: Arc::new(machi_node::SystemClock),
    })
    .await?;
    if fresh {
        seed_shops(&merchant, dir, &node_dir).await?;
    }
    let listener = tokio::net::TcpListener::bind(&options.merchant_listen)
        .await
        .with_context(|| format!("listening on {}", options.merchant_listen))?;
    let merchant_url = format!("http://{}", listener.local_addr()?);
    let guide = guide(&merchant, dir, &node_url, &merchant_url).await?;
    println!("{guide}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let served = crate::serve(merchant, listener, shutdown).await;
    let _ = stop.send(true);
    node_task.await.context("node task")??;
    served.context("serving the merchant API")
}

/// The town gives the merchant API its two delegated keys, as it would at the town office
/// with `machi-wallet town register-delegate`.
async fn delegate_to_the_merchant_api(
    node: &machi_node::Node,
    town: &machi_ledger::SigningKey,
    keys_dir: &Path,
) -> anyhow::Result<()> {
    let (registrar, settler) = crate::delegates::generate_delegate_keys(keys_dir)?;
    let chain_id = node.shared.chain_id.clone();
    let txs = [(registrar, Delegation::ShopRegistrar), (settler, Delegation::Settler)].map(
        |(delegate, delegation)| {
            machi_client::sign(
                &chain_id,
                town,
                Action::RegisterDelegate { delegate, name: "merchant API".into(), delegation },
            )
        },
    );
    for result in node.submit(txs.to_vec()).await? {
        anyhow::ensure!(result.status == TxStatus::Applied, "delegating to the merchant API: {result:?}");
    }
    Ok(())
}

async fn wait_for(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
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
async fn seed_shops(merchant: &Merchant, dir: &Path, node_dir: &Path) -> anyhow::Result<()> {
    let shops = [
        ("山田商店", "ヤマダシヨウテン", ShopClass::Local, bank("105", "0012345", "ヤマダ タロウ")),
        ("スーパーまち", "スーパーマチ", ShopClass::Large, bank("101", "0067890", "カ)スーパーマチ")),
    ];
    let mut secrets = String::new();
    for (name, kana, class, bank) in shops {
        let request = RegisterShopRequest { name: name.into(), kana_name: kana.into(), class, bank };
        let shop = merchant
            .register_shop(request)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
        let pos = merchant
            .create_token(shop.id, Scope::PointOfSale, "counter".into())
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let full = merchant
            .create_token(shop.id, Scope::Full, "back office".into())
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        writeln!(secrets, "shop\t{name}\t{}\t{}\t{}", shop.id, pos.token, full.token)?;
    }
    writeln!(secrets, "admin\t{}", crate::tokens::new_admin_token(&dir.join("merchant"))?)?;
    let keystore = Keystore::open(&dir.join("keystore"))?;
    for i in 1..=machi_node::DEMO_RESIDENTS {
        let key = machi_node::read_key(&node_dir.join(format!("keys/resident-{i}.key")))?;
        let card = keystore.create(&key, DEMO_PIN, "resident")?;
        writeln!(secrets, "card\t{}", card.display())?;
    }
    crate::store::write_durable_async(dir.join("demo-secrets.txt"), secrets.into_bytes()).await?;
    Ok(())
}

async fn guide(
    merchant: &Merchant,
    dir: &Path,
    node_url: &str,
    merchant_url: &str,
) -> anyhow::Result<String> {
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
    let shop_id = yamada[1].parse().map_err(|_| anyhow::anyhow!("bad shop id in demo-secrets.txt"))?;
    let request =
        CreateInvoiceRequest {
            amount: Yen(1_200), memo: "りんご 3個".into(), expires_in_s: Some(86_400)
        };
    let (invoice, _) = merchant
        .create_invoice(shop_id, &request, b"demo", None)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
    let code = invoice.pay_code.unwrap_or_default();
    let keystore = dir.join("keystore");
    let wallet = format!(
        "cargo run -q --release -p machi-wallet -- --node {node_url} --merchant {merchant_url} --keystore {}",
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
    writeln!(g, "Try (in another terminal):")?;
    writeln!(g, "  curl {merchant_url}/v1/pay/{code}              # what a wallet sees for the pay code")?;
    writeln!(g, "  {wallet} kiosk --receipts {}", dir.join("receipts").display())?;
    writeln!(g, "                                                  # the kiosk: card {}, PIN {DEMO_PIN}, pay code {code}", cards.first().cloned().unwrap_or_default())?;
    writeln!(
        g,
        "  MACHI_PIN={DEMO_PIN} {wallet} pay --card {} --code {code}",
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
