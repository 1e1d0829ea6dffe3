//! `rehearse`: a whole sale day for a town, compressed into minutes: the sale, residents
//! paying shops, refunds, cash-outs, the settlement and expiry, ending with the audit
//! summary. Counter staff can run it against a practice node before the real day.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use machi_api::TxStatus;
use machi_client::{sign, Client};
use machi_ledger::{Action, Hash32, TxId, Yen};
use sha2::{Digest, Sha256};

use crate::town::{id, sign_all, submit_all, TownSize};

pub(crate) struct Plan {
    pub(crate) residents: usize,
    pub(crate) shops: usize,
    pub(crate) operators: usize,
    pub(crate) payments_per_resident: usize,
    /// How long value may be spent after the sale, in seconds (expiry waits for it).
    pub(crate) spend_seconds: u64,
}

fn phase(name: &str, started: Instant) {
    println!("  ✔ {name:<46} {:>7.2} s", started.elapsed().as_secs_f64());
}

async fn all_applied(client: &Client, txs: &[machi_ledger::SignedTx]) -> anyhow::Result<Vec<TxId>> {
    let mut ids = Vec::with_capacity(txs.len());
    for chunk in txs.chunks(machi_api::SUBMIT_TXS_MAX) {
        for r in client.submit_batch(chunk).await? {
            if r.status != TxStatus::Applied {
                bail!("a transaction was not applied: {r:?}");
            }
            ids.push(r.tx_id);
        }
    }
    Ok(ids)
}

pub(crate) async fn run(client: &Client, town_key: SigningKey, plan: &Plan) -> anyhow::Result<()> {
    let day = Instant::now();
    println!("rehearsal: {} residents, {} shops, {} counters", plan.residents, plan.shops, plan.operators);
    let size = TownSize {
        operators: plan.operators,
        shops: plan.shops,
        residents: plan.residents,
        sets_each: 0,
        total_sets: (plan.residents * 2) as u32,
        cap: 2,
    };
    let mut t = Instant::now();
    let mut town = crate::town::setup(client, town_key.clone(), &size).await?;
    phase("town set up: counters, shops, residents", t);

    // The issue used for the day: on sale now, spendable for `spend_seconds`.
    t = Instant::now();
    let now = machi_client::now_ms();
    let spend_until_ms = now + plan.spend_seconds * 1_000;
    let mut params = client.issue(town.issue).await?.params;
    params.id += 1;
    params.name = format!("リハーサル 第{}回", params.id);
    params.sale_start_ms = now - 1_000;
    params.sale_end_ms = spend_until_ms - 1;
    params.spend_until_ms = spend_until_ms;
    params.cash_out_deadline_ms = spend_until_ms + 3_600_000;
    let issue = params.id;
    all_applied(client, &[sign(&town.chain_id, &town_key, Action::CreateIssue { issue: params })]).await?;
    town.issue = issue;
    let sales = town
        .residents
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let sets = 1 + (i % 2) as u32;
            let action = Action::SellSets {
                issue,
                resident: id(r),
                sets,
                cash_received: Yen(10_000 * u64::from(sets)),
            };
            (town.operators[i % town.operators.len()].clone(), action)
        })
        .collect();
    let sales = sign_all(&town.chain_id, sales);
    let mut tasks = tokio::task::JoinSet::new();
    for tx in sales {
        let client = client.clone();
        tasks.spawn(async move { client.submit(&tx).await });
    }
    while let Some(result) = tasks.join_next().await {
        let result = result?.context("a sale was not answered")?;
        if result.status != TxStatus::Applied {
            bail!("a sale failed: {result:?}");
        }
    }
    phase("sale: every resident bought at the counter", t);

    t = Instant::now();
    let payments = (0..plan.residents * plan.payments_per_resident)
        .map(|i| {
            let resident = town.residents[i % town.residents.len()].clone();
            let shop = id(&town.shops[(i * 7 + i / town.residents.len()) % town.shops.len()]);
            (resident, Action::Pay { shop, amount: Yen(500 + (i as u64 * 37) % 2_000), invoice: None })
        })
        .collect();
    let payment_ids = all_applied(client, &sign_all(&town.chain_id, payments)).await?;
    phase("shopping: residents paid shops", t);

    t = Instant::now();
    let refunds: Vec<_> = payment_ids
        .iter()
        .enumerate()
        .step_by(20)
        .map(|(i, payment)| {
            let shop = town.shops[(i * 7 + i / town.residents.len()) % town.shops.len()].clone();
            (shop, Action::Refund { payment: *payment, amount: Yen(100) })
        })
        .collect();
    let refunds = sign_all(&town.chain_id, refunds);
    submit_all(client, &refunds).await?;
    phase("refunds: 1 in 20 payments partly refunded", t);

    t = Instant::now();
    let mut cash_outs = Vec::new();
    for shop in &town.shops {
        let held: u64 = client
            .account(&id(shop))
            .await?
            .balances
            .iter()
            .filter(|b| b.issue == issue)
            .map(|b| b.amount.0)
            .sum();
        if held > 0 {
            cash_outs.push((shop.clone(), Action::RequestCashOut { issue, amount: Yen(held) }));
        }
    }
    let cash_out_ids = all_applied(client, &sign_all(&town.chain_id, cash_outs)).await?;
    phase("cash-out: every shop asked for its balance", t);

    t = Instant::now();
    // The rehearsal's transfer list stands in for the Zengin file the merchant API makes.
    let list: String = cash_out_ids.iter().map(|c| format!("{c}\n")).collect();
    let file_sha256 = Hash32(Sha256::digest(list.as_bytes()).into());
    let date = machi_ledger::time::format_jst_date(machi_client::now_ms());
    let settle = Action::SettleCashOuts { cash_outs: cash_out_ids, transfer_date: date, file_sha256 };
    all_applied(client, &[sign(&town.chain_id, &town_key, settle)]).await?;
    phase("settlement: the town paid every cash-out", t);

    t = Instant::now();
    let wait = spend_until_ms.saturating_sub(machi_client::now_ms()) + 50;
    println!("    waiting {:.1} s for the spend-until time to pass...", wait as f64 / 1e3);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    all_applied(client, &[sign(&town.chain_id, &town_key, Action::ExpireIssue { issue })]).await?;
    phase("expiry: unspent resident value expired", t);

    let supply = client.supply().await?;
    let s = supply.issues.iter().find(|i| i.issue == issue).context("the issue is in the supply report")?;
    println!("\naudit summary for issue {} ({}), chain height {}:", s.issue, s.name, supply.height);
    println!(
        "  sets sold {} / cash received {} / face value issued {} / premium cost {}",
        s.sets_sold, s.cash_received, s.issued_total, s.premium_cost
    );
    println!(
        "  paid out {} + fees {} + expired {} + still held {}",
        s.paid_out,
        s.fees,
        s.expired,
        s.residents_common
            .plus(s.residents_local)
            .plus(s.shops_common)
            .plus(s.shops_local)
            .plus(s.pending_cash_out)
    );
    println!("  supply invariant: {}", if s.invariant_holds { "holds" } else { "BROKEN" });
    println!("whole day rehearsed in {:.1} s", day.elapsed().as_secs_f64());
    if !s.invariant_holds {
        bail!("the supply invariant does not hold");
    }
    Ok(())
}
