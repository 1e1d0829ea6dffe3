//! A lottery sale through a running node over a real socket: the town sets it, three
//! parties commit, residents apply (one at the counter), two parties reveal, the draw is
//! recorded; `GET /v1/issues/{id}/lottery` carries everything needed to recompute it, a
//! resident reads their result, winners buy, and `audit` and `verify` recompute the draw.

use machi_api::{LotteryStage, LotteryStatus, SaleMode, TxCode, TxStatus};
use machi_ledger::lottery::{self, LotteryParams};
use machi_ledger::testkit::standard_issue;
use machi_ledger::{sha256, Action, Delegation, IssueParams, Yen};

use crate::harness::{id, new_key, TestNode, DAY_MS};

const SETS: u32 = 10;

#[tokio::test]
async fn a_lottery_is_drawn_read_bought_and_recomputed_by_the_audit() {
    let node = TestNode::start().await;
    let start = node.now();
    let town = node.town.clone();
    let (operator, bank, auditor) = (new_key(), new_key(), new_key());
    node.ok(&town, Action::RegisterOperator { operator: id(&operator), name: "窓口".into() }).await;
    for (k, name) in [(&bank, "銀行"), (&auditor, "監査")] {
        let delegation = Delegation::LotteryParty;
        node.ok(&town, Action::RegisterDelegate { delegate: id(k), name: name.into(), delegation }).await;
    }
    let issue = IssueParams {
        sale_start_ms: start + 10 * DAY_MS,
        sale_end_ms: start + 20 * DAY_MS,
        ..standard_issue(1, SETS, 3, start + 10 * DAY_MS)
    };
    node.ok(&town, Action::CreateIssue { issue }).await;
    node.ok(&town, Action::CreateIssue { issue: standard_issue(2, SETS, 3, start) }).await;
    let residents: Vec<_> = (0..5).map(|_| new_key()).collect();
    for (i, r) in residents.iter().enumerate() {
        let resident_hash = sha256(format!("resident-{i}").as_bytes());
        node.ok(&operator, Action::RegisterResident { resident: id(r), resident_hash, worker: false }).await;
    }
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
    node.ok(&town, Action::SetLottery { issue: 1, lottery: lottery.clone() }).await;
    let view = node.client.lottery(1).await.unwrap();
    assert_eq!(view.stage, LotteryStage::Committing);
    assert_eq!(node.client.issue(1).await.unwrap().sale_mode, SaleMode::Lottery);
    assert_eq!(node.client.issue(2).await.unwrap().sale_mode, SaleMode::FirstCome);
    assert!(view.parties.iter().all(|p| p.commitment.is_none()));

    let secrets: Vec<_> = parties.iter().map(|_| machi_client::lottery_secret()).collect();
    for (k, (_, commitment)) in parties.iter().zip(&secrets) {
        node.ok(k, Action::CommitLotterySecret { issue: 1, commitment: *commitment }).await;
    }
    node.clock.set(start + DAY_MS);
    assert_eq!(node.client.lottery(1).await.unwrap().stage, LotteryStage::Applying);
    for r in &residents[..4] {
        node.ok(r, Action::ApplyLottery { issue: 1, resident: id(r), sets: 3 }).await;
    }
    // A family member's application at the counter.
    let family = id(&residents[4]);
    node.ok(&operator, Action::ApplyLottery { issue: 1, resident: family, sets: 2 }).await;
    let entry = node.client.lottery_entry(1, &family).await.unwrap();
    assert_eq!((entry.status, entry.applied_sets), (LotteryStatus::Applied, Some(2)));

    // The auditor keeps its secret; the reveal period ends; the bank draws.
    node.clock.set(start + 3 * DAY_MS);
    for (k, (secret, _)) in parties.iter().zip(&secrets).take(2) {
        node.ok(k, Action::RevealLotterySecret { issue: 1, secret: *secret }).await;
    }
    node.clock.set(start + 4 * DAY_MS);
    node.ok(&bank, Action::DrawLottery { issue: 1 }).await;

    // Everything needed to recompute the draw is in the lottery's view.
    let view = node.client.lottery(1).await.unwrap();
    let drawn = view.draw.clone().expect("drawn");
    assert_eq!(drawn.missing_parties, vec![id(&auditor)]);
    let revealed: Vec<_> = view.parties.iter().map(|p| p.secret).collect();
    for (party, (secret, commitment)) in view.parties.iter().zip(&secrets).take(2) {
        assert_eq!((party.secret, party.commitment), (Some(*secret), Some(*commitment)));
    }
    let again = lottery::draw(1, &revealed, &view.applications, SETS).unwrap();
    assert_eq!(
        (again.seed, &again.winners, &again.waiting),
        (drawn.seed, &drawn.winners, &drawn.waiting_list)
    );
    assert_eq!(view.sets_applied, 14);
    assert_eq!(drawn.sets_won, SETS);

    // A resident's result; winners buy at the counter from the sale's start.
    node.clock.set(start + 10 * DAY_MS);
    let winner = drawn.winners[0];
    let buyer = residents.iter().find(|r| id(r) == winner.account).unwrap();
    let entry = node.client.lottery_entry(1, &id(buyer)).await.unwrap();
    assert_eq!(
        (entry.status, entry.won_sets, entry.can_buy_now),
        (LotteryStatus::Won, Some(winner.won), Some(winner.won))
    );
    assert_eq!(entry.order_key, Some(winner.key));
    let sell = |resident, sets: u32| Action::SellSets {
        issue: 1,
        resident,
        sets,
        cash_received: Yen(10_000 * u64::from(sets)),
    };
    node.ok(&operator, sell(winner.account, winner.won)).await;
    let last = drawn.waiting_list.first().expect("14 sets asked for 10");
    let refused = node.submit(&operator, sell(last.account, 1)).await;
    assert_eq!((refused.status, refused.reason), (TxStatus::Rejected, Some(TxCode::NotAllotted)));
    let entry = node.client.lottery_entry(1, &last.account).await.unwrap();
    assert_eq!((entry.status, entry.waiting_position), (LotteryStatus::Waiting, Some(1)));

    // An issue sold first come has no lottery.
    let err = node.client.lottery(2).await.unwrap_err();
    assert_eq!(err.code(), "not_found");

    // audit and verify recompute the draw from the chain's transactions.
    let out = node.path().join("chain.jsonl");
    machi_node::export(node.path(), &out).unwrap();
    let audited = machi_node::audit_data_dir(node.path()).unwrap();
    let verified = machi_node::verify_export(&out, None).unwrap();
    assert_eq!(audited, verified);
    let l = &verified.lotteries[0];
    assert_eq!((l.issue, l.seed, l.applicants, l.sets_applied), (1, Some(drawn.seed), 5, 14));
    assert_eq!(
        (l.sets_won, l.bought_by_winners, l.missing_parties.clone()),
        (SETS, winner.won, vec![id(&auditor)])
    );
    let text = machi_node::report_text(&verified);
    assert!(text.contains(&format!("seed {}", drawn.seed)), "{text}");
    assert!(text.contains(&format!("NOT REVEALED by {}", id(&auditor))), "{text}");
    let csv = machi_node::report_csv(&verified);
    assert!(csv.contains(&format!(",lottery,{},5,14,10,1,{},0,0", drawn.seed, winner.won)), "{csv}");
    assert!(csv.lines().nth(2).unwrap().ends_with(",first_come,,,,,,,,"), "{csv}");
}
