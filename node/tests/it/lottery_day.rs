//! A lottery sale day through a running node over a real socket, at a town's scale: 3,000
//! residents apply for 2,000 sets (one or two each), three parties commit and reveal, the
//! town draws; winners buy at two counters (some do not come), the waiting list buys some
//! of what they left, the rest sells first come until sold out; both counters close each
//! day (one ¥10,000 short once), the town deposits each day's count; `audit` and `verify`
//! agree and carry the lottery's and the cash's numbers.

use std::collections::BTreeMap;

use machi_api::{CashGap, LotteryStage, TxCode, TxStatus};
use machi_ledger::lottery::{self, LotteryParams};
use machi_ledger::testkit::standard_issue;
use machi_ledger::time::format_jst_date;
use machi_ledger::{sha256, Action, DaySales, Delegation, IssueParams, SignedTx, Yen};

use crate::harness::{id, new_key, TestNode, DAY_MS};

const APPLICANTS: usize = 3_000;
const SETS: u32 = 2_000;
const PRICE: u64 = 10_000;

/// Sets sold per (JST day, counter index).
type Sold = BTreeMap<(String, usize), u32>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_apply_for_two_thousand_sets_drawn_bought_closed_deposited_audited() {
    let node = TestNode::start().await;
    let start = node.now();
    let town = node.town.clone();
    let counters = [new_key(), new_key()];
    for (i, k) in counters.iter().enumerate() {
        node.ok(&town, Action::RegisterOperator { operator: id(k), name: format!("{}番窓口", i + 1) }).await;
    }
    let (bank, auditor) = (new_key(), new_key());
    for (k, name) in [(&bank, "銀行"), (&auditor, "監査")] {
        let delegation = Delegation::LotteryParty;
        node.ok(&town, Action::RegisterDelegate { delegate: id(k), name: name.into(), delegation }).await;
    }
    let issue = IssueParams {
        sale_start_ms: start + 10 * DAY_MS,
        sale_end_ms: start + 20 * DAY_MS,
        ..standard_issue(1, SETS, 2, start + 10 * DAY_MS)
    };
    node.ok(&town, Action::CreateIssue { issue }).await;

    let residents: Vec<_> = (0..APPLICANTS).map(|_| new_key()).collect();
    let registrations: Vec<SignedTx> = residents
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let resident_hash = sha256(format!("resident-{i}").as_bytes());
            node.sign(
                &counters[0],
                Action::RegisterResident { resident: id(r), resident_hash, worker: false },
            )
        })
        .collect();
    node.ok_batch(registrations).await;

    let parties = [town.clone(), bank.clone(), auditor.clone()];
    let lottery = LotteryParams {
        parties: parties.iter().map(id).collect(),
        commit_deadline_ms: start + DAY_MS,
        apply_start_ms: start + DAY_MS,
        apply_end_ms: start + 3 * DAY_MS,
        reveal_end_ms: start + 4 * DAY_MS,
        purchase_end_ms: start + 12 * DAY_MS,
        waiting_end_ms: start + 15 * DAY_MS,
    };
    node.ok(&town, Action::SetLottery { issue: 1, lottery }).await;
    let secrets: Vec<_> = parties.iter().map(|_| machi_client::lottery_secret()).collect();
    for (k, (_, commitment)) in parties.iter().zip(&secrets) {
        node.ok(k, Action::CommitLotterySecret { issue: 1, commitment: *commitment }).await;
    }

    // Applications: one or two sets each, 4,500 asked for 2,000; a tenth at the counter.
    node.clock.set(start + DAY_MS);
    let asked = |i: usize| 1 + (i % 2) as u32;
    let applications: Vec<SignedTx> = residents
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let signer = if i % 10 == 0 { &counters[1] } else { r };
            node.sign(signer, Action::ApplyLottery { issue: 1, resident: id(r), sets: asked(i) })
        })
        .collect();
    node.ok_batch(applications).await;

    node.clock.set(start + 3 * DAY_MS);
    for (k, (secret, _)) in parties.iter().zip(&secrets) {
        node.ok(k, Action::RevealLotterySecret { issue: 1, secret: *secret }).await;
    }
    node.ok(&town, Action::DrawLottery { issue: 1 }).await;

    let view = node.client.lottery(1).await.unwrap();
    let drawn = view.draw.clone().expect("drawn once every party revealed");
    assert_eq!(view.applications.len(), APPLICANTS);
    assert_eq!(view.sets_applied, 4_500);
    assert_eq!(drawn.sets_won, SETS);
    assert!(drawn.missing_parties.is_empty());
    assert_eq!(drawn.winners.iter().map(|w| w.won).sum::<u32>(), SETS);
    assert!(drawn.winners.iter().all(|w| 1 <= w.won && w.won <= w.applied));
    assert_eq!(drawn.winners.len() + drawn.waiting_list.len(), APPLICANTS);
    let revealed: Vec<_> = view.parties.iter().map(|p| p.secret).collect();
    let again = lottery::draw(1, &revealed, &view.applications, SETS).unwrap();
    assert_eq!(
        (again.seed, &again.winners, &again.waiting),
        (drawn.seed, &drawn.winners, &drawn.waiting_list)
    );

    let mut sold = Sold::new();
    let mut sell = |node: &TestNode, resident, sets: u32, n: usize| {
        let counter = n % counters.len();
        *sold.entry((format_jst_date(node.now()), counter)).or_default() += sets;
        let cash_received = Yen(PRICE * u64::from(sets));
        node.sign(&counters[counter], Action::SellSets { issue: 1, resident, sets, cash_received })
    };

    // The winners' window: all but every fifth winner come and buy what they won.
    node.clock.set(start + 10 * DAY_MS);
    let waiting_first = drawn.waiting_list[0].account;
    let early = node.submit(
        &counters[0],
        Action::SellSets { issue: 1, resident: waiting_first, sets: 1, cash_received: Yen(PRICE) },
    );
    let early = early.await;
    assert_eq!((early.status, early.reason), (TxStatus::Rejected, Some(TxCode::NotAllotted)));
    let buyers: Vec<_> = drawn.winners.iter().enumerate().filter(|(n, _)| n % 5 != 4).collect();
    let purchases: Vec<SignedTx> = buyers.iter().map(|(n, w)| sell(&node, w.account, w.won, *n)).collect();
    node.ok_batch(purchases).await;
    let bought_by_winners: u32 = buyers.iter().map(|(_, w)| w.won).sum();
    assert!(bought_by_winners < SETS);

    // The waiting list's window: the sets the absent winners left, down the list in order.
    node.clock.set(start + 12 * DAY_MS);
    let absent = drawn.winners[4];
    let late = node.submit(
        &counters[0],
        Action::SellSets {
            issue: 1,
            resident: absent.account,
            sets: absent.won,
            cash_received: Yen(PRICE * u64::from(absent.won)),
        },
    );
    let late = late.await;
    assert_eq!(late.status, TxStatus::Rejected, "a winner's window has closed: {late:?}");
    let allotment = node.client.lottery(1).await.unwrap().draw.unwrap().waiting_allotment.expect("fixed");
    assert_eq!(allotment.iter().map(|a| a.won).sum::<u32>(), SETS - bought_by_winners);
    assert!(allotment.iter().zip(&drawn.waiting_list).all(|(a, w)| a.account == w.account));
    // Every third one allotted does not come either.
    let waiting_buyers: Vec<_> = allotment.iter().enumerate().filter(|(n, _)| n % 3 != 2).collect();
    let purchases: Vec<SignedTx> =
        waiting_buyers.iter().map(|(n, a)| sell(&node, a.account, a.won, *n)).collect();
    node.ok_batch(purchases).await;
    let bought_by_waiting_list: u32 = waiting_buyers.iter().map(|(_, a)| a.won).sum();

    // After it, first come: the sets still left go to whoever comes — here the waiting
    // list's next ones, two sets each (the cap) — until the issue is sold out.
    node.clock.set(start + 15 * DAY_MS);
    let mut left = SETS - bought_by_winners - bought_by_waiting_list;
    assert_eq!(node.client.issue(1).await.unwrap().sets_left, left);
    assert_eq!(node.client.lottery(1).await.unwrap().stage, LotteryStage::FirstCome);
    let mut walk_ins = drawn.waiting_list[allotment.len()..].iter().map(|w| w.account);
    let mut purchases = Vec::new();
    while left > 0 {
        let sets = left.min(2);
        purchases.push(sell(&node, walk_ins.next().expect("enough applicants left"), sets, purchases.len()));
        left -= sets;
    }
    let sold_first_come = SETS - bought_by_winners - bought_by_waiting_list;
    assert!(sold_first_come > 0);
    node.ok_batch(purchases).await;
    let refused = node.submit(
        &counters[1],
        Action::SellSets {
            issue: 1,
            resident: walk_ins.next().expect("one more"),
            sets: 1,
            cash_received: Yen(PRICE),
        },
    );
    let refused = refused.await;
    assert_eq!((refused.status, refused.reason), (TxStatus::Rejected, Some(TxCode::SoldOut)));

    // Every counter closes each day it sold; counter 2 is ¥10,000 short on the first day.
    let first_day = format_jst_date(start + 10 * DAY_MS);
    let mut deposits: BTreeMap<String, u64> = BTreeMap::new();
    for ((day, counter), sets) in &sold {
        let expected = PRICE * u64::from(*sets);
        let short = *counter == 1 && *day == first_day;
        let counted = if short { expected - 10_000 } else { expected };
        *deposits.entry(day.clone()).or_default() += counted;
        let sales = vec![DaySales { issue: 1, sets: *sets, cash: Yen(expected) }];
        let close =
            Action::CloseDay { day: day.clone(), sales, expected: Yen(expected), counted: Yen(counted) };
        node.ok(&counters[*counter], close).await;
    }
    for (n, (day, amount)) in deposits.iter().enumerate() {
        let deposit = Action::RecordDeposit {
            day: day.clone(),
            deposited_on: format_jst_date(node.now()),
            amount: Yen(*amount),
            slip_reference: format!("SLIP-{n:03}"),
        };
        node.ok(&town, deposit).await;
    }

    // The audit and the verify of the export agree, and say all of it.
    let out = node.path().join("chain.jsonl");
    machi_node::export(node.path(), &out).unwrap();
    let audited = machi_node::audit_data_dir(node.path()).unwrap();
    let verified = machi_node::verify_export(&out, None).unwrap();
    assert_eq!(audited, verified);
    let l = &verified.lotteries[0];
    assert_eq!((l.seed, l.applicants, l.sets_applied, l.sets_won), (Some(drawn.seed), 3_000, 4_500, SETS));
    assert_eq!(
        (l.bought_by_winners, l.bought_by_waiting_list, l.sold_first_come),
        (bought_by_winners, bought_by_waiting_list, sold_first_come)
    );
    let supply = &verified.issues[0];
    assert_eq!((supply.sets_sold, supply.cash_received), (SETS, Yen(PRICE * u64::from(SETS))));
    assert!(supply.invariant_holds);
    let days: Vec<_> = verified.cash_days.iter().map(|d| d.day.clone()).collect();
    assert_eq!(days, deposits.keys().cloned().collect::<Vec<_>>());
    let received: u64 = verified.cash_days.iter().map(|d| d.cash_received.0).sum();
    assert_eq!(received, PRICE * u64::from(SETS));
    for day in &verified.cash_days {
        let expected_gaps = if day.day == first_day {
            vec![CashGap::CountDiffers {
                operator: id(&counters[1]),
                name: "2番窓口".into(),
                difference: -10_000,
            }]
        } else {
            vec![]
        };
        assert_eq!(day.gaps, expected_gaps, "{}", day.day);
        assert_eq!(day.deposit_difference, 0, "{}", day.day);
    }
}
