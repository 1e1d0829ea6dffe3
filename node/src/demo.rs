//! `machi-node demo`: a working local town in one command — a chain with an operator, a
//! local and a large shop, an issue on sale, and residents who have bought sets. Keys
//! are written beside the chain so the other tools can act as these people.

use std::path::Path;

use anyhow::{bail, Context};
use machi_api::TxStatus;
use machi_ledger::{AccountId, Action, IssueParams, RateBp, ShopClass, SignedTx, SigningKey, TxBody, Yen};

use crate::node::Node;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
pub const DEMO_RESIDENTS: usize = 3;

fn id(key: &SigningKey) -> AccountId {
    AccountId::of(key)
}

/// Writes `name`.key under `DIR/keys`, or reads it when a previous demo made it.
fn demo_key(data_dir: &Path, name: &str) -> anyhow::Result<(SigningKey, bool)> {
    let path = data_dir.join("keys").join(format!("{name}.key"));
    if path.exists() {
        return Ok((crate::keys::read_key(&path)?, false));
    }
    let key = crate::keys::generate();
    crate::keys::write_key(&path, &key)?;
    Ok((key, true))
}

/// Seeds the demo town on a fresh chain (does nothing on a chain already seeded).
pub async fn seed(node: &Node, data_dir: &Path) -> anyhow::Result<()> {
    seed_town(node, data_dir, true).await
}

/// Seeds the demo town; without shops when the merchant API registers them (it keeps
/// their bank accounts).
pub async fn seed_town(node: &Node, data_dir: &Path, with_shops: bool) -> anyhow::Result<()> {
    let town = crate::keys::read_key(&data_dir.join("keys/town.key"))?;
    let (operator, fresh) = demo_key(data_dir, "operator")?;
    if !fresh {
        return Ok(());
    }
    let now = node.shared.clock.now_ms();
    let chain_id = node.shared.chain_id.clone();
    let sign = |key: &SigningKey, nonce: u64, action: Action| {
        let body = TxBody { chain_id: chain_id.clone(), created_ms: now, ttl_ms: 60_000, nonce, action };
        SignedTx::sign(&chain_id, key, &body)
    };
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
    let mut txs = vec![sign(
        &town,
        1,
        Action::RegisterOperator { operator: id(&operator), name: "役場 1番窓口".into() },
    )];
    if with_shops {
        let (yamada, _) = demo_key(data_dir, "shop-yamada")?;
        let (super_, _) = demo_key(data_dir, "shop-super")?;
        let local = ShopClass::Local;
        txs.push(sign(
            &town,
            2,
            Action::RegisterShop { shop: id(&yamada), name: "山田商店".into(), class: local },
        ));
        let large = ShopClass::Large;
        txs.push(sign(
            &town,
            3,
            Action::RegisterShop { shop: id(&super_), name: "スーパーまち".into(), class: large },
        ));
    }
    txs.push(sign(&town, 4, Action::CreateIssue { issue }));
    for i in 1..=DEMO_RESIDENTS {
        let (resident, _) = demo_key(data_dir, &format!("resident-{i}"))?;
        let resident_hash = machi_ledger::sha256(format!("demo-resident-{i}").as_bytes());
        let nonce = 10 + i as u64 * 2;
        txs.push(sign(
            &operator,
            nonce,
            Action::RegisterResident { resident: id(&resident), resident_hash, worker: false },
        ));
        let sell =
            Action::SellSets { issue: 1, resident: id(&resident), sets: 2, cash_received: Yen(20_000) };
        txs.push(sign(&operator, nonce + 1, sell));
    }
    for result in node.submit(txs).await.context("seeding the demo town")? {
        if result.status != TxStatus::Applied {
            bail!("seeding the demo town failed: {result:?}");
        }
    }
    Ok(())
}
