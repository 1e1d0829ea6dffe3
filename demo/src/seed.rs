//! The demo town's chain: an operator, an issue on sale, and residents who have bought
//! sets, sent to the node over its HTTP API like any other client's transactions. Keys are
//! written beside the chain (`DIR/node/keys`) so the other tools can act as these people.

use std::path::Path;

use anyhow::{bail, Context};
use machi_api::TxStatus;
use machi_client::Client;
use machi_ledger::{AccountId, Action, Delegation, IssueParams, RateBp, SigningKey, Yen};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// Residents of the demo town, each with a kiosk card.
pub(crate) const RESIDENTS: usize = 3;

/// Writes `name`.key under `DIR/keys`, or reads it when a previous demo made it.
fn demo_key(data_dir: &Path, name: &str) -> anyhow::Result<(SigningKey, bool)> {
    let path = data_dir.join("keys").join(format!("{name}.key"));
    if path.exists() {
        return Ok((machi_host::read_key(&path)?, false));
    }
    let key = machi_host::generate_key();
    machi_host::write_key(&path, &key)?;
    Ok((key, true))
}

/// The key of resident `i` (1 to `RESIDENTS`).
pub(crate) fn resident_key(data_dir: &Path, i: usize) -> anyhow::Result<SigningKey> {
    machi_host::read_key(&data_dir.join(format!("keys/resident-{i}.key")))
}

/// Sends `txs` in one batch and requires every one applied.
async fn submit_all(node: &Client, txs: &[machi_ledger::SignedTx], what: &str) -> anyhow::Result<()> {
    for result in node.submit_batch(txs).await.with_context(|| format!("{what}: sending"))? {
        if result.status != TxStatus::Applied {
            bail!("{what} failed: {result:?}");
        }
    }
    Ok(())
}

/// Seeds the demo town on a fresh chain (does nothing on a chain already seeded). Shops
/// are not registered here: the merchant API registers them (it keeps their keys and bank
/// accounts).
pub(crate) async fn seed_town(node: &Client, chain_id: &str, data_dir: &Path) -> anyhow::Result<()> {
    let town = machi_host::read_key(&data_dir.join("keys/town.key"))?;
    let (operator, fresh) = demo_key(data_dir, "operator")?;
    if !fresh {
        return Ok(());
    }
    let now = machi_host::now_ms();
    let sign = |key: &SigningKey, action: Action| machi_client::sign_at(chain_id, key, action, now);
    let issue = IssueParams {
        id: 1,
        name: "第1回 まちプレミアム商品券".into(),
        price: Yen(10_000),
        common_per_set: Yen(6_250),
        local_per_set: Yen(6_250),
        total_sets: 2_000,
        max_sets_per_resident: 5,
        workers_may_buy: true,
        sale_start_ms: now - DAY_MS,
        sale_end_ms: now + 7 * DAY_MS,
        spend_until_ms: now + 90 * DAY_MS,
        cash_out_deadline_ms: now + 120 * DAY_MS,
        cash_out_fee: RateBp(0),
    };
    let mut txs = vec![
        sign(
            &town,
            Action::RegisterOperator { operator: AccountId::of(&operator), name: "役場 1番窓口".into() },
        ),
        sign(&town, Action::CreateIssue { issue }),
    ];
    for i in 1..=RESIDENTS {
        let (resident, _) = demo_key(data_dir, &format!("resident-{i}"))?;
        let resident = AccountId::of(&resident);
        let resident_hash = machi_ledger::sha256(format!("demo-resident-{i}").as_bytes());
        txs.push(sign(&operator, Action::RegisterResident { resident, resident_hash, worker: false }));
        let sell = Action::SellSets { issue: 1, resident, sets: 2, cash_received: Yen(20_000) };
        txs.push(sign(&operator, sell));
    }
    submit_all(node, &txs, "seeding the demo town").await
}

/// The town gives the merchant API its two delegated keys, as it would at the town office
/// with `machi-wallet town register-delegate`; the keys are written to `keys_dir`.
pub(crate) async fn delegate_to_the_merchant_api(
    node: &Client,
    chain_id: &str,
    node_dir: &Path,
    keys_dir: &Path,
) -> anyhow::Result<()> {
    let town = machi_host::read_key(&node_dir.join("keys/town.key"))?;
    let (registrar, settler) = machi_merchant::generate_delegate_keys(keys_dir)?;
    let issuer = machi_merchant::generate_issuer_key(keys_dir)?;
    let delegates = [
        (registrar, Delegation::ShopRegistrar),
        (settler, Delegation::Settler),
        (issuer, Delegation::Issuer),
    ];
    let txs = delegates.map(|(delegate, delegation)| {
        machi_client::sign(
            chain_id,
            &town,
            Action::RegisterDelegate { delegate, name: "merchant API".into(), delegation },
        )
    });
    submit_all(node, &txs, "delegating to the merchant API").await
}
