//! `rehearse`: a whole sale day for a town, compressed into minutes: the sale, residents
//! paying shops, refunds, cash-outs, the settlement and expiry, ending with the audit
//! summary. Counter staff can run it against a practice node before the real day.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use machi_api::TxStatus;
use machi_client::{sign, Client};
use machi_ledger::{Action, Hash32, SignedTx, TxId, Yen};
use sha2::{Digest, Sha256};

use crate::town::{id, read_key, sign_all, submit_all, Town, TownSize};

/// Flags of `rehearse`.
#[derive(clap::Args)]
pub(crate) struct RehearseArgs {
    /// The node's address, or a chain's replicas separated by commas
    /// (http://10.0.0.1:7101,http://10.0.0.2:7101): a request that one cannot serve
    /// (down, no leader, halted) goes to the next, the same signed transaction.
    #[arg(long, env = "MACHI_NODE", default_value = "http://127.0.0.1:7070", value_parser = machi_client::node_list)]
    node: String,
    #[arg(long)]
    town_key: PathBuf,
    #[arg(long, default_value_t = 2_000)]
    residents: usize,
    #[arg(long, default_value_t = 20)]
    shops: usize,
    #[arg(long, default_value_t = 5)]
    counters: usize,
    #[arg(long, default_value_t = 5)]
    payments_per_resident: usize,
    /// Seconds residents may spend before the issue expires.
    #[arg(long, default_value_t = 20)]
    spend_seconds: u64,
    /// Seconds the lottery day's application window stays open (every resident applies
    /// within it).
    #[arg(long, default_value_t = 10)]
    lottery_apply_seconds: u64,
}

/// Milliseconds between one lottery window's end and the next step, so that every
/// transaction falls clearly inside its window.
const LOTTERY_MARGIN_MS: u64 = 1_500;

/// Of the payments, one in this many is partly refunded.
const REFUND_EVERY: usize = 20;

pub(crate) async fn run(args: RehearseArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let town_key = read_key(&args.town_key)?;
    println!("rehearsal: {} residents, {} shops, {} counters", args.residents, args.shops, args.counters);
    let client = crate::town::town_client(&args.node, &town_key);
    read_session(&client).await?;
    let size = TownSize {
        operators: args.counters,
        shops: args.shops,
        residents: args.residents,
        sets_each: 0,
        total_sets: (args.residents * 2) as u32,
        cap: 2,
    };
    let t = Instant::now();
    let town = crate::town::setup(&client, town_key.clone(), &size).await?;
    phase("town set up: counters, shops, residents", t);
    let day = Day::open(client, town, town_key, args.spend_seconds).await?;
    day.sale().await?;
    let payments = day.shopping(args.residents * args.payments_per_resident).await?;
    day.refunds(&payments).await?;
    let cash_outs = day.cash_outs().await?;
    day.settlement(cash_outs).await?;
    day.expiry().await?;
    day.summary(started).await?;
    day.lottery(args.lottery_apply_seconds).await
}

/// Sleeps until the wall clock reaches `ms` (a lottery window's boundary).
async fn wait_until(ms: u64) {
    let wait = ms.saturating_sub(machi_client::now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

/// Reads as the town: the first read opens the run's read session (a challenge signed
/// with the town's key, exchanged for a token), which every later read and every clone of
/// the client uses. Prints what the opening costs beside a read that does not open one.
async fn read_session(client: &Client) -> anyhow::Result<()> {
    let t = Instant::now();
    client.head().await.context("reaching the node")?;
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    client.head().await?;
    let next_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "  read session as the town (\"{}\"): first read with its opening {first_ms:.2} ms, the next \
         read {next_ms:.2} ms; one session per node for the run",
        crate::town::READ_PURPOSE
    );
    Ok(())
}

fn phase(name: &str, started: Instant) {
    println!("  ✔ {name:<46} {:>7.2} s", started.elapsed().as_secs_f64());
}

async fn all_applied(client: &Client, txs: &[SignedTx]) -> anyhow::Result<Vec<TxId>> {
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

/// The day being rehearsed: the town and the issue used for it.
struct Day {
    client: Client,
    town: Town,
    town_key: SigningKey,
    issue: u32,
    spend_until_ms: u64,
}

impl Day {
    /// Creates the issue used for the day: on sale now, spendable for `spend_seconds`.
    async fn open(
        client: Client,
        mut town: Town,
        town_key: SigningKey,
        spend_seconds: u64,
    ) -> anyhow::Result<Day> {
        let now = machi_client::now_ms();
        let spend_until_ms = now + spend_seconds * 1_000;
        let mut params = client.issue(town.issue).await?.params;
        params.id += 1;
        params.name = format!("リハーサル 第{}回", params.id);
        params.sale_start_ms = now - 1_000;
        params.sale_end_ms = spend_until_ms - 1;
        params.spend_until_ms = spend_until_ms;
        params.cash_out_deadline_ms = spend_until_ms + 3_600_000;
        let issue = params.id;
        all_applied(&client, &[sign(&town.chain_id, &town_key, Action::CreateIssue { issue: params })])
            .await?;
        town.issue = issue;
        Ok(Day { client, town, town_key, issue, spend_until_ms })
    }

    /// Every resident buys one or two sets at a counter, each sale its own request.
    async fn sale(&self) -> anyhow::Result<()> {
        let t = Instant::now();
        let town = &self.town;
        let sales = town
            .residents
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let sets = 1 + (i % 2) as u32;
                let cash_received = Yen(10_000 * u64::from(sets));
                let action = Action::SellSets { issue: self.issue, resident: id(r), sets, cash_received };
                (town.operators[i % town.operators.len()].clone(), action)
            })
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        for tx in sign_all(&town.chain_id, sales) {
            let client = self.client.clone();
            tasks.spawn(async move { client.submit(&tx).await });
        }
        while let Some(result) = tasks.join_next().await {
            let result = result?.context("a sale was not answered")?;
            if result.status != TxStatus::Applied {
                bail!("a sale failed: {result:?}");
            }
        }
        phase("sale: every resident bought at the counter", t);
        Ok(())
    }

    /// The shop that the `i`th payment goes to.
    fn shop_of_payment(&self, i: usize) -> &SigningKey {
        let town = &self.town;
        &town.shops[(i * 7 + i / town.residents.len()) % town.shops.len()]
    }

    /// Residents pay shops `payments` times; the payments' ids.
    async fn shopping(&self, payments: usize) -> anyhow::Result<Vec<TxId>> {
        let t = Instant::now();
        let town = &self.town;
        let payments = (0..payments)
            .map(|i| {
                let resident = town.residents[i % town.residents.len()].clone();
                let shop = id(self.shop_of_payment(i));
                (resident, Action::Pay { shop, amount: Yen(500 + (i as u64 * 37) % 2_000), invoice: None })
            })
            .collect();
        let payment_ids = all_applied(&self.client, &sign_all(&town.chain_id, payments)).await?;
        phase("shopping: residents paid shops", t);
        Ok(payment_ids)
    }

    async fn refunds(&self, payments: &[TxId]) -> anyhow::Result<()> {
        let t = Instant::now();
        let refunds: Vec<_> = payments
            .iter()
            .enumerate()
            .step_by(REFUND_EVERY)
            .map(|(i, payment)| {
                let shop = self.shop_of_payment(i).clone();
                (shop, Action::Refund { payment: *payment, amount: Yen(100) })
            })
            .collect();
        submit_all(&self.client, &sign_all(&self.town.chain_id, refunds)).await?;
        phase("refunds: 1 in 20 payments partly refunded", t);
        Ok(())
    }

    /// Every shop asks to cash out what it holds of the day's issue; the cash-outs' ids.
    async fn cash_outs(&self) -> anyhow::Result<Vec<TxId>> {
        let t = Instant::now();
        let mut cash_outs = Vec::new();
        for shop in &self.town.shops {
            let account = self.client.account(&id(shop)).await?;
            let held: u64 =
                account.balances.iter().filter(|b| b.issue == self.issue).map(|b| b.amount.0).sum();
            if held > 0 {
                cash_outs
                    .push((shop.clone(), Action::RequestCashOut { issue: self.issue, amount: Yen(held) }));
            }
        }
        let cash_out_ids = all_applied(&self.client, &sign_all(&self.town.chain_id, cash_outs)).await?;
        phase("cash-out: every shop asked for its balance", t);
        Ok(cash_out_ids)
    }

    async fn settlement(&self, cash_outs: Vec<TxId>) -> anyhow::Result<()> {
        let t = Instant::now();
        // The rehearsal's transfer list stands in for the Zengin file the merchant API makes.
        let list: String = cash_outs.iter().map(|c| format!("{c}\n")).collect();
        let file_sha256 = Hash32(Sha256::digest(list.as_bytes()).into());
        let date = machi_ledger::time::format_jst_date(machi_client::now_ms());
        let settle = Action::SettleCashOuts { cash_outs, transfer_date: date, file_sha256 };
        all_applied(&self.client, &[sign(&self.town.chain_id, &self.town_key, settle)]).await?;
        phase("settlement: the town paid every cash-out", t);
        Ok(())
    }

    /// Waits for the spend-until time to pass, then expires the unspent value.
    async fn expiry(&self) -> anyhow::Result<()> {
        let t = Instant::now();
        let wait = self.spend_until_ms.saturating_sub(machi_client::now_ms()) + 50;
        println!("    waiting {:.1} s for the spend-until time to pass...", wait as f64 / 1e3);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let expire = Action::ExpireIssue { issue: self.issue };
        all_applied(&self.client, &[sign(&self.town.chain_id, &self.town_key, expire)]).await?;
        phase("expiry: unspent resident value expired", t);
        Ok(())
    }

    /// A lottery day on a new issue (one set for every two residents, up to two each): the
    /// town commits and reveals (the only party the rehearsal holds a key of), every
    /// resident applies, the draw, and every winner buys what they won at a counter.
    async fn lottery(&self, apply_seconds: u64) -> anyhow::Result<()> {
        let town = &self.town;
        let chain = &town.chain_id;
        let now = machi_client::now_ms();
        let apply_start_ms = now + LOTTERY_MARGIN_MS;
        let apply_end_ms = apply_start_ms + apply_seconds * 1_000;
        let reveal_end_ms = apply_end_ms + 60_000;
        let purchase_end_ms = reveal_end_ms + 600_000;
        let mut params = self.client.issue(self.issue).await?.params;
        params.id = self.issue + 1;
        params.name = format!("リハーサル 抽選 第{}回", params.id);
        params.total_sets = u32::try_from(town.residents.len().div_ceil(2)).context("too many residents")?;
        params.max_sets_per_resident = 2;
        params.sale_start_ms = apply_end_ms;
        params.sale_end_ms = purchase_end_ms + 3_600_000;
        params.spend_until_ms = params.sale_end_ms + 3_600_000;
        params.cash_out_deadline_ms = params.spend_until_ms + 3_600_000;
        let (issue, price) = (params.id, params.price);
        let lottery = machi_ledger::lottery::LotteryParams {
            parties: vec![id(&self.town_key)],
            commit_deadline_ms: apply_start_ms,
            apply_start_ms,
            apply_end_ms,
            reveal_end_ms,
            purchase_end_ms,
            waiting_end_ms: purchase_end_ms + 1,
        };
        let (secret, commitment) = machi_client::lottery_secret();
        let setup = [
            Action::CreateIssue { issue: params },
            Action::SetLottery { issue, lottery },
            Action::CommitLotterySecret { issue, commitment },
        ];
        for action in setup {
            all_applied(&self.client, &[sign(chain, &self.town_key, action)]).await?;
        }
        println!("\nlottery day: issue {issue}, {} residents", town.residents.len());
        wait_until(apply_start_ms).await;

        let t = Instant::now();
        let applications: Vec<_> = town
            .residents
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (r.clone(), Action::ApplyLottery { issue, resident: id(r), sets: 1 + (i % 2) as u32 })
            })
            .collect();
        let n = applications.len();
        all_applied(&self.client, &sign_all(chain, applications)).await?;
        let took = t.elapsed().as_secs_f64();
        if machi_client::now_ms() >= apply_end_ms {
            bail!("the applications took longer than the window; raise --lottery-apply-seconds");
        }
        phase("lottery: every resident applied", t);
        println!("    {n} applications, {:.0} applications/s", n as f64 / took);

        wait_until(apply_end_ms + LOTTERY_MARGIN_MS).await;
        all_applied(
            &self.client,
            &[sign(chain, &self.town_key, Action::RevealLotterySecret { issue, secret })],
        )
        .await?;
        let t = Instant::now();
        all_applied(&self.client, &[sign(chain, &self.town_key, Action::DrawLottery { issue })]).await?;
        let draw_ms = t.elapsed().as_secs_f64() * 1e3;
        let view = self.client.lottery(issue).await?;
        let drawn = view.draw.context("the draw is not on record")?;
        phase("lottery: revealed and drawn", t);
        println!(
            "    draw {draw_ms:.1} ms (the transaction, applied): {} winners, {} sets won, {} waiting",
            drawn.winners.len(),
            drawn.sets_won,
            drawn.waiting_list.len()
        );

        let t = Instant::now();
        let sales: Vec<_> = drawn
            .winners
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let cash_received = Yen(price.0 * u64::from(w.won));
                let action = Action::SellSets { issue, resident: w.account, sets: w.won, cash_received };
                (town.operators[i % town.operators.len()].clone(), action)
            })
            .collect();
        let bought = sales.len();
        let mut tasks = tokio::task::JoinSet::new();
        for tx in sign_all(chain, sales) {
            let client = self.client.clone();
            tasks.spawn(async move { client.submit(&tx).await });
        }
        while let Some(result) = tasks.join_next().await {
            let result = result?.context("a purchase was not answered")?;
            if result.status != TxStatus::Applied {
                bail!("a winner's purchase failed: {result:?}");
            }
        }
        let took = t.elapsed().as_secs_f64();
        phase("lottery: every winner bought what they won", t);
        println!("    {bought} purchases, {:.0} purchases/s", bought as f64 / took);
        let sold = self.client.lottery(issue).await?.draw.context("drawn")?.bought_by_winners;
        println!("    sets bought by winners: {sold} of {}", drawn.sets_won);
        Ok(())
    }

    /// The audit summary of the day's issue; an error if the supply invariant broke.
    async fn summary(&self, started: Instant) -> anyhow::Result<()> {
        let supply = self.client.supply().await?;
        let s = supply
            .issues
            .iter()
            .find(|i| i.issue == self.issue)
            .context("the issue is in the supply report")?;
        println!("\naudit summary for issue {} ({}), chain height {}:", s.issue, s.name, supply.height);
        println!(
            "  sets sold {} / cash received {} / face value issued {} / premium cost {}",
            s.sets_sold, s.cash_received, s.issued_total, s.premium_cost
        );
        let held = s
            .residents_common
            .plus(s.residents_local)
            .plus(s.shops_common)
            .plus(s.shops_local)
            .plus(s.pending_cash_out);
        println!("  paid out {} + fees {} + expired {} + still held {}", s.paid_out, s.fees, s.expired, held);
        println!("  supply invariant: {}", if s.invariant_holds { "holds" } else { "BROKEN" });
        println!("whole day rehearsed in {:.1} s", started.elapsed().as_secs_f64());
        if !s.invariant_holds {
            bail!("the supply invariant does not hold");
        }
        Ok(())
    }
}
