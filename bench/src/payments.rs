//! `payments`: residents paying shops ¥1-¥100, as batches or as single requests.

use std::time::Duration;

use machi_api::TxResultView;
use machi_client::Client;
use machi_ledger::{Action, Yen};

use crate::load::{drive, Common, Load, Mode, Outcome};
use crate::town::{self, id, sign_all, Town};

/// Flags of `payments`.
#[derive(clap::Args)]
pub(crate) struct PaymentsArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, value_enum, default_value = "batch")]
    mode: Mode,
    /// Concurrent requests in flight (connections).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Transactions per request in batch mode.
    #[arg(long, default_value_t = 512)]
    batch_size: usize,
    /// Offered load in transactions per second (single mode); default: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Transactions signed in advance; the run stops early if they run out.
    #[arg(long, default_value_t = 300_000)]
    pool: usize,
}

pub(crate) async fn run(args: PaymentsArgs) -> anyhow::Result<()> {
    let limits = crate::limits::measure().await?;
    let common = &args.common;
    let town_key = town::read_key(&common.town_key)?;
    let client = town::town_client(&common.node, &town_key);
    let town = town::setup(&client, town_key, &common.paying_town()).await?;
    let load = Load {
        mode: args.mode,
        concurrency: args.concurrency,
        batch_size: args.batch_size,
        duration: Duration::from_secs(common.duration),
        rate: args.rate,
    };
    let (outcome, results) = payments(&client, &town, &load, args.pool).await;
    crate::load::report(common, &limits, &outcome, &results)
}

/// Residents paying shops ¥1-¥100, round robin over residents, random shops.
async fn payments(client: &Client, town: &Town, load: &Load, pool: usize) -> (Outcome, Vec<TxResultView>) {
    let work = (0..pool).map(|i| payment(town, i)).collect();
    let txs = sign_all(&town.chain_id, work);
    drive(client, txs, load, "payments").await
}

/// The `i`th payment: resident `i` (round robin) pays a random shop ¥1-¥100.
pub(crate) fn payment(town: &Town, i: usize) -> (machi_ledger::SigningKey, Action) {
    let resident = town.residents[i % town.residents.len()].clone();
    let shop = id(&town.shops[rand::random::<usize>() % town.shops.len()]);
    let amount = Yen(1 + rand::random::<u64>() % 100);
    (resident, Action::Pay { shop, amount, invoice: None })
}
