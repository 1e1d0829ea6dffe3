//! A whole sale day through a running node over a real socket: 300 residents race for an
//! issue of 100 sets (cap 2) from three operators at once; then payments, a refund,
//! cash-outs, settlement and expiry; the supply report equals figures computed by hand.

use std::collections::HashMap;

use machi_api::{TxCode, TxStatus};
use machi_ledger::testkit::standard_issue;
use machi_ledger::{Action, Hash32, Kind, ShopClass, Yen};

use crate::harness::{id, new_key, TestNode, DAY_MS};

const RESIDENTS: usize = 300;
const SETS: u32 = 100;
const CAP: u32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sale_day() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    let operators: Vec<_> = (0..3).map(|_| new_key()).collect();
    let (local, large) = (new_key(), new_key());
    let mut setup = vec![
        node.sign(
            &town,
            Action::RegisterShop { shop: id(&local), name: "山田商店".into(), class: ShopClass::Local },
        ),
        node.sign(
            &town,
            Action::RegisterShop {
                shop: id(&large),
                name: "スーパーばんだい".into(),
                class: ShopClass::Large,
            },
        ),
        node.sign(&town, Action::CreateIssue { issue: standard_issue(1, SETS, CAP, node.now()) }),
    ];
    for (i, op) in operators.iter().enumerate() {
        setup.push(node.sign(&town, Action::RegisterOperator { operator: id(op), name: format!("窓口{i}") }));
    }
    node.ok_batch(setup).await;
    let residents: Vec<_> = (0..RESIDENTS).map(|_| new_key()).collect();
    let registrations = residents
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let resident_hash = machi_ledger::sha256(format!("住民番号-{i}").as_bytes());
            node.sign(
                &operators[i % 3],
                Action::RegisterResident { resident: id(r), resident_hash, worker: false },
            )
        })
        .collect();
    node.ok_batch(registrations).await;

    // The race: every resident asks for 2 sets, the first 30 then for 1 more, each
    // attempt a single request, from three operators at once.
    let mut attempts = Vec::new();
    for (i, r) in residents.iter().enumerate() {
        let wants = if i < 30 { vec![2, 1] } else { vec![2] };
        for sets in wants {
            let action = Action::SellSets {
                issue: 1,
                resident: id(r),
                sets,
                cash_received: Yen(10_000 * u64::from(sets)),
            };
            attempts.push((i, sets, node.sign(&operators[(i + sets as usize) % 3], action)));
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sets, tx) in attempts {
        let client = node.client.clone();
        tasks.spawn(async move { (i, sets, client.submit(&tx).await.expect("answered")) });
    }
    let mut bought: HashMap<usize, u32> = HashMap::new();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    let mut rejected_ids = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, sets, result) = joined.unwrap();
        match result.status {
            TxStatus::Applied => *bought.entry(i).or_default() += sets,
            TxStatus::Rejected => {
                *reasons.entry(result.reason.unwrap().name().to_string()).or_default() += 1;
                rejected_ids.push(result.tx_id);
            }
            TxStatus::Refused => panic!("no attempt may be refused: {result:?}"),
        }
    }
    assert_eq!(bought.values().sum::<u32>(), SETS, "exactly the supply is sold");
    assert!(bought.values().all(|&n| n <= CAP), "nobody above the cap");
    assert!(
        reasons.keys().all(|r| ["sold_out", "over_cap", "not_enough_sets_left"].contains(&r.as_str())),
        "{reasons:?}"
    );
    assert!(reasons["sold_out"] > 0);
    let issue = node.client.issue(1).await.unwrap();
    assert_eq!((issue.sets_sold, issue.sets_left), (SETS, 0));
    // Every refused attempt is on the chain with its reason, in order.
    for tx_id in rejected_ids.iter().take(20) {
        let tx = node.client.tx(tx_id).await.unwrap();
        assert_eq!(tx.result.status, TxStatus::Rejected);
        assert!(tx.result.height.unwrap() > 0);
    }
    for (i, n) in &bought {
        let account = node.client.account(&id(&residents[*i])).await.unwrap();
        assert_eq!(account.total, Yen(12_500 * u64::from(*n)));
        assert_eq!(account.sets_bought[0].sets, *n);
    }

    // Spending: ten residents with 2 sets each pay ¥7,000 at the local shop (local value
    // first) and ¥5,000 at the large shop (common only).
    let payers: Vec<usize> = bought.iter().filter(|(_, n)| **n == 2).map(|(i, _)| *i).take(10).collect();
    assert_eq!(payers.len(), 10);
    let mut first_payment = None;
    for &i in &payers {
        let r = &residents[i];
        let paid = node
            .ok(r, Action::Pay { shop: id(&local), amount: Yen(7_000), invoice: Some(format!("INV-{i}")) })
            .await;
        first_payment.get_or_insert(paid.tx_id);
        node.ok(r, Action::Pay { shop: id(&large), amount: Yen(5_000), invoice: None }).await;
    }
    let over = node
        .submit(&residents[payers[0]], Action::Pay { shop: id(&large), amount: Yen(7_501), invoice: None })
        .await;
    assert_eq!(
        over.reason.map(TxCode::name),
        Some("insufficient_balance"),
        "a large shop takes common value only"
    );
    let payer = node.client.account(&id(&residents[payers[0]])).await.unwrap();
    let held = |kind| payer.balances.iter().filter(|b| b.kind == kind).map(|b| b.amount.0).sum::<u64>();
    assert_eq!((held(Kind::Local), held(Kind::Common)), (5_500, 7_500));
    assert!(payer.history.iter().any(|h| h.kind == "pay"), "history shows the payment");

    // A partial refund, then cash-outs of everything the shops hold.
    let payment = first_payment.unwrap();
    node.ok(&local, Action::Refund { payment, amount: Yen(2_000) }).await;
    let too_much = node.submit(&local, Action::Refund { payment, amount: Yen(5_001) }).await;
    assert_eq!(too_much.reason.map(TxCode::name), Some("refund_exceeds_payment"));
    let local_cash_out =
        node.ok(&local, Action::RequestCashOut { issue: 1, amount: Yen(68_000) }).await.tx_id;
    let large_cash_out =
        node.ok(&large, Action::RequestCashOut { issue: 1, amount: Yen(50_000) }).await.tx_id;
    let settle = Action::SettleCashOuts {
        cash_outs: vec![local_cash_out, large_cash_out],
        transfer_date: "2027-02-10".into(),
        file_sha256: Hash32([0xab; 32]),
    };
    node.ok(&town, settle).await;

    // Wrong roles are refused with 403 and write nothing.
    let height = node.client.head().await.unwrap().height;
    let forged = node.submit(&residents[0], Action::ExpireIssue { issue: 1 }).await;
    assert_eq!((forged.status, forged.reason.map(TxCode::name)), (TxStatus::Refused, Some("wrong_role")));
    assert_eq!(node.client.head().await.unwrap().height, height);

    // Spend-until passes; the town expires what residents did not spend.
    node.clock.set(node.now() + 31 * DAY_MS);
    node.ok(&town, Action::ExpireIssue { issue: 1 }).await;

    let supply = node.client.supply().await.unwrap();
    let s = &supply.issues[0];
    let hand = [
        ("sets_sold", u64::from(s.sets_sold), 100),
        ("cash_received", s.cash_received.0, 1_000_000),
        ("issued_common", s.issued_common.0, 625_000),
        ("issued_local", s.issued_local.0, 625_000),
        ("premium_cost", s.premium_cost.0, 250_000),
        ("residents_common", s.residents_common.0, 0),
        ("residents_local", s.residents_local.0, 0),
        ("shops_common", s.shops_common.0, 0),
        ("shops_local", s.shops_local.0, 0),
        ("pending_cash_out", s.pending_cash_out.0, 0),
        ("paid_out", s.paid_out.0, 67_320 + 49_500), // 1% fee rounded down
        ("fees", s.fees.0, 680 + 500),
        ("expired", s.expired.0, 575_000 + 557_000),
    ];
    for (name, got, expected) in hand {
        assert_eq!(got, expected, "{name}");
    }
    assert!(s.invariant_holds);

    // An auditor replaying the chain gets the same figures.
    let out = node.path().join("export.jsonl");
    machi_node::export(node.path(), &out).unwrap();
    let report = machi_node::verify_export(&out, None).unwrap();
    assert_eq!(report.issues, supply.issues);
    assert!(report.invariant_held_every_block);
    assert_eq!(report.sales_by_day.iter().map(|d| d.sets).sum::<u64>(), u64::from(SETS));
    let refused_attempts: usize = reasons.values().sum();
    assert_eq!(report.sales_by_day.iter().map(|d| d.rejected_attempts).sum::<u64>(), refused_attempts as u64);

    // The town hall screen shows the same figures.
    let page = reqwest::get(format!("{}/", node.url)).await.unwrap().text().await.unwrap();
    for expected in [
        "id=\"sold-1\">100<",
        "id=\"left-1\">0<",
        "¥1,250,000",
        "¥250,000",
        "¥1,132,000",
        "invariant holds",
        "<svg",
    ] {
        assert!(page.contains(expected), "dashboard lacks {expected}");
    }
    assert!(!page.contains("http://") && !page.contains("https://"), "no external assets");
}
