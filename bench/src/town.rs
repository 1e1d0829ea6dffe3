//! Sets up a town on a running node with the town's key (read from its key file):
//! operators, shops, an issue on sale, and residents who have bought sets.

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use machi_api::{TxStatus, SUBMIT_TXS_MAX};
use machi_client::{sign, Client};
use machi_ledger::{AccountId, Action, IssueParams, RateBp, ShopClass, SignedTx, Yen};

pub(crate) const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Why the bench reads, signed into its read sessions: the node writes it in its access
/// log beside each read the bench makes under the town's everything scope.
pub(crate) const READ_PURPOSE: &str = "machi-bench: measuring";

/// A client of `node` (one base URL or replicas separated by commas) that reads as the
/// town: the node refuses anonymous reads of accounts, blocks and the lottery's lists.
/// Its clones share one read session per node for the whole run; writes are unchanged.
pub(crate) fn town_client(node: &str, town: &SigningKey) -> Client {
    Client::new(node).reading_as(town.clone(), READ_PURPOSE)
}

pub(crate) struct Town {
    pub(crate) chain_id: String,
    pub(crate) operators: Vec<SigningKey>,
    pub(crate) shops: Vec<SigningKey>,
    pub(crate) residents: Vec<SigningKey>,
    pub(crate) issue: u32,
}

/// Reads a key file: the 32-byte seed as 64 hex digits.
pub(crate) fn read_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .with_context(|| format!("{} does not hold 64 hex digits", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

pub(crate) fn id(key: &SigningKey) -> AccountId {
    AccountId::of(key)
}

pub(crate) fn keys(n: usize) -> Vec<SigningKey> {
    (0..n).map(|_| SigningKey::generate(&mut rand::rngs::OsRng)).collect()
}

/// Signs many transactions on every core.
pub(crate) fn sign_all(chain_id: &str, work: Vec<(SigningKey, Action)>) -> Vec<SignedTx> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = work.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|part| {
                scope
                    .spawn(move || part.iter().map(|(k, a)| sign(chain_id, k, a.clone())).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("signing thread")).collect()
    })
}

/// Submits in batches and insists every transaction applied.
pub(crate) async fn submit_all(client: &Client, txs: &[SignedTx]) -> anyhow::Result<()> {
    for chunk in txs.chunks(SUBMIT_TXS_MAX) {
        let results = client.submit_batch(chunk).await?;
        if let Some(bad) = results.iter().find(|r| r.status != TxStatus::Applied) {
            bail!("setting up the town failed: {bad:?}");
        }
    }
    Ok(())
}

pub(crate) struct TownSize {
    pub(crate) operators: usize,
    pub(crate) shops: usize,
    pub(crate) residents: usize,
    /// Sets each resident buys during setup (0: none).
    pub(crate) sets_each: u32,
    pub(crate) total_sets: u32,
    pub(crate) cap: u32,
}

pub(crate) async fn setup(client: &Client, town: SigningKey, size: &TownSize) -> anyhow::Result<Town> {
    let head = client.head().await.context("reaching the node")?;
    let chain_id = head.chain_id;
    let issue = client.issues().await?.iter().map(|i| i.params.id).max().unwrap_or(0) + 1;
    let (operators, shops, residents) = (keys(size.operators), keys(size.shops), keys(size.residents));
    let now = machi_client::now_ms();
    let params = IssueParams {
        id: issue,
        name: format!("負荷試験 第{issue}回"),
        price: Yen(10_000),
        common_per_set: Yen(6_250),
        local_per_set: Yen(6_250),
        total_sets: size.total_sets,
        max_sets_per_resident: size.cap,
        workers_may_buy: false,
        sale_start_ms: now.saturating_sub(60_000),
        sale_end_ms: now + DAY_MS,
        spend_until_ms: now + 30 * DAY_MS,
        cash_out_deadline_ms: now + 60 * DAY_MS,
        cash_out_fee: RateBp(50),
    };
    let mut work: Vec<(SigningKey, Action)> = vec![(town.clone(), Action::CreateIssue { issue: params })];
    for (i, op) in operators.iter().enumerate() {
        work.push((town.clone(), Action::RegisterOperator { operator: id(op), name: format!("窓口{i}") }));
    }
    for (i, shop) in shops.iter().enumerate() {
        let class = if i % 4 == 0 { ShopClass::Large } else { ShopClass::Local };
        work.push((town.clone(), Action::RegisterShop { shop: id(shop), name: format!("店{i}"), class }));
    }
    submit_all(client, &sign_all(&chain_id, work)).await?;
    let registrations = residents
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let resident_hash = machi_ledger::Hash32(rand::random());
            (
                operators[i % operators.len()].clone(),
                Action::RegisterResident { resident: id(r), resident_hash, worker: false },
            )
        })
        .collect();
    submit_all(client, &sign_all(&chain_id, registrations)).await?;
    if size.sets_each > 0 {
        let cash = Yen(10_000 * u64::from(size.sets_each));
        let sales = residents
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let action =
                    Action::SellSets { issue, resident: id(r), sets: size.sets_each, cash_received: cash };
                (operators[i % operators.len()].clone(), action)
            })
            .collect();
        submit_all(client, &sign_all(&chain_id, sales)).await?;
    }
    Ok(Town { chain_id, operators, shops, residents, issue })
}
