//! `sale-open`: an issue opens and every purchase attempt from the operators arrives at
//! once; the answers and the chain are checked against the sets on sale and the
//! per-person cap.

use std::collections::HashMap;
use std::time::Duration;

use machi_api::{TxResultView, TxStatus};
use machi_client::Client;
use machi_ledger::{AccountId, Action, SignedTx, TxBody, TxId, Yen};

use crate::load::{drive, Common, Load, Outcome};
use crate::town::{self, id, sign_all, Town, TownSize};

/// Flags of `sale-open`.
#[derive(clap::Args)]
pub(crate) struct SaleOpenArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 2_000)]
    sets: u32,
    #[arg(long, default_value_t = 20_000)]
    attempts: usize,
    #[arg(long, default_value_t = 50)]
    operators: usize,
}

/// Sets one resident may buy.
const CAP: u32 = 2;
/// Concurrent connections per operator.
const CONNECTIONS_PER_OPERATOR: usize = 8;
/// Longest time the attempts may take to be answered.
const ATTEMPTS_S_MAX: u64 = 120;

pub(crate) async fn run(args: SaleOpenArgs) -> anyhow::Result<()> {
    let limits = crate::limits::measure().await?;
    let common = &args.common;
    let town_key = town::read_key(&common.town_key)?;
    let client = town::town_client(&common.node, &town_key);
    let size = TownSize {
        operators: args.operators,
        shops: 1,
        residents: common.residents,
        sets_each: 0,
        total_sets: args.sets,
        cap: CAP,
    };
    let town = town::setup(&client, town_key, &size).await?;
    let (outcome, results) = sale_open(&client, &town, args.attempts).await?;
    crate::load::report(common, &limits, &outcome, &results)
}

/// Purchase attempts of one to `CAP` sets, round robin over residents and operators.
fn attempts(town: &Town, attempts: usize) -> Vec<SignedTx> {
    let work = (0..attempts)
        .map(|i| {
            let resident = id(&town.residents[i % town.residents.len()]);
            let operator = town.operators[i % town.operators.len()].clone();
            let sets = 1 + (i as u32 / town.residents.len() as u32) % CAP;
            let cash_received = Yen(10_000 * u64::from(sets));
            (operator, Action::SellSets { issue: town.issue, resident, sets, cash_received })
        })
        .collect();
    sign_all(&town.chain_id, work)
}

async fn sale_open(
    client: &Client,
    town: &Town,
    attempts: usize,
) -> anyhow::Result<(Outcome, Vec<TxResultView>)> {
    let txs = self::attempts(town, attempts);
    // Who each attempt was for, to check the per-person cap from the answers.
    let buyers: HashMap<TxId, (AccountId, u32)> = txs
        .iter()
        .map(|tx| match TxBody::decode(&tx.body).map(|b| b.action) {
            Ok(Action::SellSets { resident, sets, .. }) => (tx.id(&town.chain_id), (resident, sets)),
            _ => unreachable!("sale-open signs only sales"),
        })
        .collect();
    let load =
        Load::single(town.operators.len() * CONNECTIONS_PER_OPERATOR, Duration::from_secs(ATTEMPTS_S_MAX));
    let (mut outcome, results) = drive(client, txs, &load, "sale-open").await;
    check(client, town, &buyers, &results, attempts, &mut outcome).await?;
    Ok((outcome, results))
}

/// Notes what was sold against the issue, the cap and the attempts, and counts an error
/// when any of them does not hold.
async fn check(
    client: &Client,
    town: &Town,
    buyers: &HashMap<TxId, (AccountId, u32)>,
    results: &[TxResultView],
    attempts: usize,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let issue = client.issue(town.issue).await?;
    let mut bought: HashMap<AccountId, u32> = HashMap::new();
    for r in results.iter().filter(|r| r.status == TxStatus::Applied) {
        let (resident, sets) = buyers[&r.tx_id];
        *bought.entry(resident).or_default() += sets;
    }
    let over_cap = bought.values().filter(|&&n| n > CAP).count();
    let sold: u32 = bought.values().sum();
    // Time to sell out as the chain recorded it: from the first attempt's block to the
    // block of the last sale.
    let first = results.iter().filter_map(|r| r.height).min().unwrap_or(0);
    let last_sale =
        results.iter().filter(|r| r.status == TxStatus::Applied).filter_map(|r| r.height).max().unwrap_or(0);
    let (t0, t1) = (client.block(first).await?.timestamp_ms, client.block(last_sale).await?.timestamp_ms);
    outcome.notes.push(format!(
        "sets sold {} of {} (left {}); by the answers {sold}",
        issue.sets_sold, issue.params.total_sets, issue.sets_left
    ));
    outcome.notes.push(format!("buyers over the cap of {CAP}: {over_cap}"));
    outcome.notes.push(format!("every attempt answered: {}", results.len() == attempts));
    outcome.notes.push(format!("sold out {:.2} s after the first attempt's block", (t1 - t0) as f64 / 1e3));
    if issue.sets_left != 0 || results.len() != attempts || over_cap > 0 || sold != issue.sets_sold {
        outcome.errors += 1;
    }
    Ok(())
}
