//! One table per rule of docs/RULES.md §2-3. Each case fails if its rule is removed from the
//! ledger.

use machi_ledger::{Action, Hash32, Kind, Outcome, Reason, Refusal, Yen};

use crate::town::{id, issue_params, key, Town, DAY_MS, T0};

const APPLIED: Result<Outcome, Refusal> = Ok(Outcome::Applied);

fn rejected(reason: Reason) -> Result<Outcome, Refusal> {
    Ok(Outcome::Rejected(reason))
}

#[test]
fn sale_window() {
    let cases = [
        (T0 - 1, rejected(Reason::SaleNotOpen)),
        (T0, APPLIED),
        (T0 + DAY_MS - 1, APPLIED),
        (T0 + DAY_MS, rejected(Reason::SaleNotOpen)),
    ];
    for (now, expected) in cases {
        let mut town = Town::new(1);
        town.now = now;
        assert_eq!(town.sell(0, 1), expected, "at {now}");
    }
}

#[test]
fn supply_cap() {
    let mut town = Town::new(4);
    let t = town.town.clone();
    let issue = machi_ledger::IssueParams { id: 2, total_sets: 3, ..issue_params(2) };
    town.ok(&t, Action::CreateIssue { issue });
    assert_eq!(town.sell_issue(2, 0, 2), APPLIED);
    assert_eq!(town.sell_issue(2, 1, 2), rejected(Reason::NotEnoughSetsLeft));
    assert_eq!(town.sell_issue(2, 1, 1), APPLIED);
    assert_eq!(town.sell_issue(2, 2, 1), rejected(Reason::SoldOut));
    assert_eq!(town.state.issues[&2].supply.sets_sold, 3);
}

#[test]
fn per_resident_cap() {
    let mut town = Town::new(2);
    assert_eq!(town.sell(0, 3), rejected(Reason::OverCap));
    assert_eq!(town.sell(0, 1), APPLIED);
    assert_eq!(town.sell(0, 2), rejected(Reason::OverCap));
    assert_eq!(town.sell(0, 1), APPLIED);
    assert_eq!(town.sell(0, 1), rejected(Reason::OverCap));
    // A family member has a cap of their own.
    assert_eq!(town.sell(1, 2), APPLIED);
}

#[test]
fn cash_received_must_match_price() {
    let mut town = Town::new(1);
    let op = town.operator.clone();
    let resident = id(&town.residents[0]);
    for (cash, expected) in
        [(9_999, rejected(Reason::CashMismatch)), (20_001, rejected(Reason::CashMismatch)), (20_000, APPLIED)]
    {
        let action = Action::SellSets { issue: 1, resident, sets: 2, cash_received: Yen(cash) };
        assert_eq!(town.run(&op, action), expected, "cash {cash}");
    }
    let s = &town.state.issues[&1].supply;
    assert_eq!((s.cash_received, s.issued_common, s.issued_local), (Yen(20_000), Yen(12_500), Yen(12_500)));
}

#[test]
fn workers_buy_only_when_the_issue_allows() {
    let mut town = Town::new(1);
    town.residents.push(key(200));
    town.register_resident(1, true);
    assert_eq!(town.sell(1, 1), rejected(Reason::WorkersNotEligible));
    let t = town.town.clone();
    let issue = machi_ledger::IssueParams { id: 2, workers_may_buy: true, ..issue_params(2) };
    town.ok(&t, Action::CreateIssue { issue });
    assert_eq!(town.sell_issue(2, 1, 1), APPLIED);
}

#[test]
fn one_account_per_resident_number() {
    let mut town = Town::new(1);
    let op = town.operator.clone();
    let resident_hash = machi_ledger::sha256(b"resident-number-0");
    let action = Action::RegisterResident { resident: id(&key(77)), resident_hash, worker: false };
    assert_eq!(town.run(&op, action), rejected(Reason::ResidentAlreadyRegistered));
    let action = Action::RegisterResident {
        resident: id(&town.residents[0]),
        resident_hash: Hash32([7; 32]),
        worker: false,
    };
    assert_eq!(town.run(&op, action), rejected(Reason::AccountExists));
}

#[test]
fn kinds_and_shop_class() {
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap(); // ¥6,250 common + ¥6,250 local
    let (large, local) = (town.large.clone(), town.local.clone());
    // A large shop takes common value only.
    assert_eq!(town.pay(0, &large, 6_251).1, rejected(Reason::InsufficientBalance));
    assert_eq!(town.pay(0, &large, 1_000).1, APPLIED);
    assert_eq!(town.balance(&town.residents[0].clone(), 1, Kind::Common), 5_250);
    assert_eq!(town.balance(&town.residents[0].clone(), 1, Kind::Local), 6_250);
    // A local shop takes local value first, then common.
    assert_eq!(town.pay(0, &local, 7_000).1, APPLIED);
    let r = town.residents[0].clone();
    assert_eq!((town.balance(&r, 1, Kind::Local), town.balance(&r, 1, Kind::Common)), (0, 4_500));
    assert_eq!((town.balance(&local, 1, Kind::Local), town.balance(&local, 1, Kind::Common)), (6_250, 750));
    assert_eq!(town.pay(0, &local, 4_501).1, rejected(Reason::InsufficientBalance));
    assert_eq!(town.pay(0, &local, 4_500).1, APPLIED);
}

#[test]
fn earliest_expiring_lot_is_spent_first() {
    let mut town = Town::new(1);
    let t = town.town.clone();
    let issue = machi_ledger::IssueParams { id: 2, spend_until_ms: T0 + 10 * DAY_MS, ..issue_params(2) };
    town.ok(&t, Action::CreateIssue { issue });
    town.sell(0, 1).unwrap();
    town.sell_issue(2, 0, 1).unwrap();
    let local = town.local.clone();
    assert_eq!(town.pay(0, &local, 7_000).1, APPLIED);
    let r = town.residents[0].clone();
    // Issue 2 expires first: its local value goes first, then issue 1's local.
    assert_eq!(town.balance(&r, 2, Kind::Local), 0);
    assert_eq!(town.balance(&r, 1, Kind::Local), 5_500);
    assert_eq!(town.balance(&r, 2, Kind::Common), 6_250);
}

#[test]
fn no_transfers_between_residents() {
    let mut town = Town::new(2);
    town.sell(0, 1).unwrap();
    let other = town.residents[1].clone();
    assert_eq!(town.pay(0, &other, 100).1, rejected(Reason::NotAShop));
    let op = town.operator.clone();
    assert_eq!(town.pay(0, &op, 100).1, rejected(Reason::NotAShop));
    assert_eq!(town.pay(0, &key(55), 100).1, rejected(Reason::NotAShop));
    assert_eq!(town.pay(0, &town.local.clone(), 0).1, rejected(Reason::ZeroAmount));
}

#[test]
fn refunds_are_bounded_and_restore_the_same_value() {
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let (local, large) = (town.local.clone(), town.large.clone());
    let (payment, result) = town.pay(0, &local, 7_000); // 6,250 local + 750 common
    assert_eq!(result, APPLIED);
    let refund = |amount| Action::Refund { payment, amount: Yen(amount) };
    assert_eq!(town.run(&large, refund(1)), rejected(Reason::NotYourPayment));
    assert_eq!(town.run(&local, refund(7_001)), rejected(Reason::RefundExceedsPayment));
    assert_eq!(town.run(&local, refund(1_000)), APPLIED); // 750 common, then 250 local
    let r = town.residents[0].clone();
    assert_eq!((town.balance(&r, 1, Kind::Common), town.balance(&r, 1, Kind::Local)), (6_250, 250));
    assert_eq!(town.run(&local, refund(6_001)), rejected(Reason::RefundExceedsPayment));
    assert_eq!(town.run(&local, refund(6_000)), APPLIED);
    assert_eq!(town.run(&local, refund(1)), rejected(Reason::RefundExceedsPayment));
    assert_eq!(town.state.accounts[&id(&r)].total(), Yen(12_500));
    let unknown = Action::Refund { payment: machi_ledger::TxId([9; 32]), amount: Yen(1) };
    assert_eq!(town.run(&local, unknown), rejected(Reason::UnknownPayment));
}

#[test]
fn refund_needs_the_shop_to_still_hold_the_value() {
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let local = town.local.clone();
    let (payment, _) = town.pay(0, &local, 5_000);
    town.ok(&local, Action::RequestCashOut { issue: 1, amount: Yen(5_000) });
    assert_eq!(
        town.run(&local, Action::Refund { payment, amount: Yen(1) }),
        rejected(Reason::ShopBalanceInsufficient)
    );
}

#[test]
fn cash_out_fee_rounds_down_and_settles() {
    let mut town = Town::new(1);
    town.sell(0, 2).unwrap();
    let local = town.local.clone();
    assert_eq!(town.pay(0, &local, 12_345).1, APPLIED);
    let cash_out = town.tx(&local, Action::RequestCashOut { issue: 1, amount: Yen(12_345) });
    assert_eq!(town.apply(&cash_out), APPLIED);
    let record = &town.state.cash_outs[&cash_out.id];
    assert_eq!((record.fee, record.net), (Yen(61), Yen(12_284))); // 0.5% of 12,345 = 61.725
    let s = town.state.issues[&1].supply.clone();
    assert_eq!(
        (s.fees, s.pending_cash_out, s.shops_local, s.shops_common),
        (Yen(61), Yen(12_284), Yen(0), Yen(0))
    );
    assert_eq!(
        town.run(&local, Action::RequestCashOut { issue: 1, amount: Yen(1) }),
        rejected(Reason::InsufficientBalance)
    );
    let t = town.town.clone();
    let settle = |ids: Vec<machi_ledger::TxId>, date: &str| Action::SettleCashOuts {
        cash_outs: ids,
        transfer_date: date.into(),
        file_sha256: Hash32([1; 32]),
    };
    assert_eq!(town.run(&t, settle(vec![cash_out.id], "2027-02-30")), rejected(Reason::InvalidParameters));
    assert_eq!(
        town.run(&t, settle(vec![cash_out.id, cash_out.id], "2027-02-01")),
        rejected(Reason::InvalidParameters)
    );
    assert_eq!(
        town.run(&t, settle(vec![machi_ledger::TxId([3; 32])], "2027-02-01")),
        rejected(Reason::UnknownCashOut)
    );
    assert_eq!(town.run(&t, settle(vec![cash_out.id], "2027-02-01")), APPLIED);
    assert_eq!(town.run(&t, settle(vec![cash_out.id], "2027-02-01")), rejected(Reason::CashOutNotPending));
    let s = &town.state.issues[&1].supply;
    assert_eq!((s.pending_cash_out, s.paid_out), (Yen(0), Yen(12_284)));
}

#[test]
fn cash_out_deadline() {
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let local = town.local.clone();
    town.pay(0, &local, 1_000).1.unwrap();
    town.now = T0 + 60 * DAY_MS + 1;
    let request = Action::RequestCashOut { issue: 1, amount: Yen(1_000) };
    assert_eq!(town.run(&local, request), rejected(Reason::CashOutDeadlinePassed));
}

#[test]
fn expiry() {
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let (local, t) = (town.local.clone(), town.town.clone());
    town.pay(0, &local, 2_500).1.unwrap();
    town.now = T0 + 30 * DAY_MS;
    assert_eq!(town.run(&t, Action::ExpireIssue { issue: 1 }), rejected(Reason::IssueNotEnded));
    assert_eq!(town.pay(0, &local, 1).1, APPLIED, "spend-until is inclusive");
    town.now += 1;
    assert_eq!(town.pay(0, &local, 1).1, rejected(Reason::InsufficientBalance));
    assert_eq!(town.run(&t, Action::ExpireIssue { issue: 1 }), APPLIED);
    assert_eq!(town.run(&t, Action::ExpireIssue { issue: 1 }), rejected(Reason::AlreadyExpired));
    let s = town.state.issues[&1].supply.clone();
    assert_eq!(
        (s.expired, s.residents_common, s.residents_local, s.shops_local),
        (Yen(9_999), Yen(0), Yen(0), Yen(2_501))
    );
    // Shops keep their balance until the cash-out deadline, then it expires too.
    town.now = T0 + 60 * DAY_MS + 1;
    assert_eq!(town.run(&t, Action::ExpireIssue { issue: 1 }), APPLIED);
    assert_eq!(town.state.issues[&1].supply.expired, Yen(12_500));
}

#[test]
fn roles() {
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let (t, op, shop, r) =
        (town.town.clone(), town.operator.clone(), town.local.clone(), town.residents[0].clone());
    let resident = id(&r);
    let sell = Action::SellSets { issue: 1, resident, sets: 1, cash_received: Yen(10_000) };
    let stranger = key(61);
    let cases: Vec<(&machi_ledger::SigningKey, Action, Result<Outcome, Refusal>)> = vec![
        (&r, sell.clone(), Err(Refusal::WrongRole)),
        (&t, sell.clone(), Err(Refusal::WrongRole)),
        (&shop, Action::Pay { shop: id(&shop), amount: Yen(1), invoice: None }, Err(Refusal::WrongRole)),
        (&op, Action::CreateIssue { issue: issue_params(5) }, Err(Refusal::WrongRole)),
        (
            &r,
            Action::RegisterShop {
                shop: id(&key(60)),
                name: "x".into(),
                class: machi_ledger::ShopClass::Local,
            },
            Err(Refusal::WrongRole),
        ),
        (&shop, Action::ExpireIssue { issue: 1 }, Err(Refusal::WrongRole)),
        (&r, Action::RequestCashOut { issue: 1, amount: Yen(1) }, Err(Refusal::WrongRole)),
        (&op, Action::Freeze { account: id(&shop) }, Err(Refusal::WrongRole)),
        (
            &stranger,
            Action::Pay { shop: id(&shop), amount: Yen(1), invoice: None },
            Err(Refusal::UnknownSigner),
        ),
        (&t, Action::Genesis { town: id(&t), producer: id(&t) }, Err(Refusal::WrongRole)),
    ];
    for (signer, action, expected) in cases {
        let what = format!("{action:?}");
        assert_eq!(town.run(signer, action), expected, "{what}");
    }
    assert_eq!(town.state.issues[&1].supply.sets_sold, 1);
}

#[test]
fn frozen_accounts() {
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let (op, t, local) = (town.operator.clone(), town.town.clone(), town.local.clone());
    let resident = id(&town.residents[0]);
    town.ok(&op, Action::Freeze { account: resident });
    assert_eq!(town.run(&op, Action::Freeze { account: resident }), rejected(Reason::NoChange));
    assert_eq!(town.pay(0, &local, 100).1, rejected(Reason::AccountFrozen));
    assert_eq!(town.sell(0, 1), rejected(Reason::AccountFrozen));
    town.ok(&op, Action::Unfreeze { account: resident });
    assert_eq!(town.pay(0, &local, 100).1, APPLIED);
    town.ok(&t, Action::Freeze { account: id(&local) });
    assert_eq!(town.pay(0, &local, 100).1, rejected(Reason::PayeeFrozen));
    assert_eq!(
        town.run(&local, Action::RequestCashOut { issue: 1, amount: Yen(100) }),
        rejected(Reason::AccountFrozen)
    );
}

#[test]
fn lost_key_replacement() {
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let (op, local) = (town.operator.clone(), town.local.clone());
    let (payment, _) = town.pay(0, &local, 1_000);
    let (old, new) = (town.residents[0].clone(), key(150));
    town.ok(&op, Action::ReplaceKey { old: id(&old), new: id(&new) });
    assert_eq!(
        town.run(&op, Action::ReplaceKey { old: id(&old), new: id(&key(151)) }),
        rejected(Reason::AccountRevoked)
    );
    // The old key can do nothing; the new one holds the value and the purchase count.
    assert_eq!(town.pay(0, &local, 1).1, Err(Refusal::KeyRevoked));
    town.residents[0] = new.clone();
    assert_eq!(town.state.accounts[&id(&new)].total(), Yen(11_500));
    assert_eq!(town.sell(0, 2), rejected(Reason::OverCap));
    assert_eq!(town.sell(0, 1), APPLIED);
    // A refund of a payment made with the old key reaches the new one.
    town.ok(&local, Action::Refund { payment, amount: Yen(1_000) });
    assert_eq!(town.state.accounts[&id(&new)].total(), Yen(25_000));
    assert_eq!(town.state.resident_hashes[&machi_ledger::sha256(b"resident-number-0")], id(&new));
}

#[test]
fn replays_and_time_to_live() {
    let mut town = Town::new(1);
    let op = town.operator.clone();
    let resident = id(&town.residents[0]);
    let sell = town.tx(&op, Action::SellSets { issue: 1, resident, sets: 1, cash_received: Yen(10_000) });
    assert_eq!(town.apply(&sell), APPLIED);
    assert_eq!(town.apply(&sell), Err(Refusal::Duplicate));
    assert_eq!(town.state.issues[&1].supply.sets_sold, 1);

    let late = town.tx(&op, Action::SellSets { issue: 1, resident, sets: 1, cash_received: Yen(10_000) });
    town.now += 60_001;
    assert_eq!(town.apply(&late), Err(Refusal::TtlExpired));
    town.now -= 60_001 + machi_ledger::CLOCK_SKEW_MS_MAX + 1;
    assert_eq!(town.apply(&late), Err(Refusal::NotYetValid));
    town.now += machi_ledger::CLOCK_SKEW_MS_MAX + 1;
    assert_eq!(town.apply(&late), APPLIED);
}

#[test]
fn invalid_issue_parameters() {
    let mut town = Town::new(0);
    let t = town.town.clone();
    let base = issue_params(2);
    let bad = [
        machi_ledger::IssueParams { price: Yen(0), ..base.clone() },
        machi_ledger::IssueParams { total_sets: 0, ..base.clone() },
        machi_ledger::IssueParams { max_sets_per_resident: 0, ..base.clone() },
        machi_ledger::IssueParams { sale_end_ms: base.sale_start_ms, ..base.clone() },
        machi_ledger::IssueParams { spend_until_ms: base.sale_end_ms - 1, ..base.clone() },
        machi_ledger::IssueParams { cash_out_fee: machi_ledger::RateBp(10_001), ..base.clone() },
        machi_ledger::IssueParams { common_per_set: Yen(u64::MAX), ..base.clone() },
        machi_ledger::IssueParams { name: " ".into(), ..base.clone() },
    ];
    for issue in bad {
        let what = format!("{issue:?}");
        assert_eq!(
            town.run(&t, Action::CreateIssue { issue }),
            rejected(Reason::InvalidParameters),
            "{what}"
        );
    }
    town.ok(&t, Action::CreateIssue { issue: base.clone() });
    assert_eq!(town.run(&t, Action::CreateIssue { issue: base }), rejected(Reason::IssueExists));
}

/// The fee is charged on everything a shop has cashed out of an issue, rounded down once:
/// a ¥199 cash-out at 0.5% pays ¥0 now, but the next one pays what the two together owe,
/// so splitting a cash-out into small ones saves nothing.
#[test]
fn cash_out_fee_is_charged_on_the_running_total() {
    let mut town = Town::new(1);
    town.sell(0, 2).unwrap();
    let local = town.local.clone();
    assert_eq!(town.pay(0, &local, 20_000).1, APPLIED);
    let mut fees = Vec::new();
    for _ in 0..100 {
        let cash_out = town.tx(&local, Action::RequestCashOut { issue: 1, amount: Yen(199) });
        assert_eq!(town.apply(&cash_out), APPLIED);
        fees.push(town.state.cash_outs[&cash_out.id].fee.0);
    }
    // 0.5% of 19,900 is 99.5: the hundred requests pay ¥99 in all, as one would.
    assert_eq!(fees.iter().sum::<u64>(), 99);
    assert_eq!(&fees[..3], &[0, 1, 1], "0.995, 1.99, 2.985 rounded down");
    let s = &town.state.issues[&1].supply;
    assert_eq!((s.fees, s.pending_cash_out), (Yen(99), Yen(19_801)));
    assert_eq!(town.state.accounts[&id(&local)].cashed_out(1), Yen(19_900));
}

/// Delegated town keys hold one power each; the master key registers them and can freeze
/// (revoke) them.
#[test]
fn delegated_town_keys() {
    use machi_ledger::{Delegation, ShopClass};
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let (t, op, local) = (town.town.clone(), town.operator.clone(), town.local.clone());
    let (registrar, settler) = (key(70), key(71));
    let delegate = |key: &machi_ledger::SigningKey, delegation| Action::RegisterDelegate {
        delegate: id(key),
        name: format!("{delegation:?}"),
        delegation,
    };
    assert_eq!(town.run(&op, delegate(&registrar, Delegation::ShopRegistrar)), Err(Refusal::WrongRole));
    town.ok(&t, delegate(&registrar, Delegation::ShopRegistrar));
    town.ok(&t, delegate(&settler, Delegation::Settler));
    assert_eq!(
        town.run(&t, delegate(&key(72), Delegation::Settler)),
        APPLIED,
        "the town may hold several of each"
    );
    let register_shop = |seed: u8| Action::RegisterShop {
        shop: id(&key(seed)),
        name: "八百屋".into(),
        class: ShopClass::Local,
    };
    town.pay(0, &local, 1_000).1.unwrap();
    let cash_out = town.tx(&local, Action::RequestCashOut { issue: 1, amount: Yen(1_000) });
    assert_eq!(town.apply(&cash_out), APPLIED);
    let settle = Action::SettleCashOuts {
        cash_outs: vec![cash_out.id],
        transfer_date: "2027-02-01".into(),
        file_sha256: Hash32([1; 32]),
    };
    let neither_may = [
        Action::CreateIssue { issue: issue_params(9) },
        Action::ExpireIssue { issue: 1 },
        Action::RegisterOperator { operator: id(&key(73)), name: "x".into() },
        Action::Freeze { account: id(&local) },
        Action::Unfreeze { account: id(&local) },
        delegate(&key(74), Delegation::Settler),
    ];
    for action in neither_may {
        let what = format!("{action:?}");
        assert_eq!(town.run(&registrar, action.clone()), Err(Refusal::WrongRole), "registrar: {what}");
        assert_eq!(town.run(&settler, action), Err(Refusal::WrongRole), "settler: {what}");
    }
    assert_eq!(town.run(&settler, register_shop(80)), Err(Refusal::WrongRole));
    assert_eq!(town.run(&registrar, settle.clone()), Err(Refusal::WrongRole));
    assert_eq!(town.run(&registrar, register_shop(80)), APPLIED);
    assert_eq!(town.run(&settler, settle), APPLIED);
    // A frozen delegate is a revoked one.
    town.ok(&t, Action::Freeze { account: id(&registrar) });
    assert_eq!(town.run(&registrar, register_shop(81)), rejected(Reason::AccountFrozen));
    assert!(!town.state.accounts.contains_key(&id(&key(81))));
}

/// An issuer delegate (the town office's form) creates issues and does nothing else; the
/// town revokes it by freezing it, and no other delegate may create an issue.
#[test]
fn an_issuer_delegate_only_creates_issues() {
    use machi_ledger::{Delegation, ShopClass};
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let (t, local) = (town.town.clone(), town.local.clone());
    let (issuer, registrar) = (key(90), key(91));
    let delegate = |key: &machi_ledger::SigningKey, delegation| Action::RegisterDelegate {
        delegate: id(key),
        name: format!("{delegation:?}"),
        delegation,
    };
    town.ok(&t, delegate(&issuer, Delegation::Issuer));
    town.ok(&t, delegate(&registrar, Delegation::ShopRegistrar));
    assert_eq!(town.state.accounts[&id(&issuer)].role.name(), "issuer");
    assert_eq!(
        town.run(&registrar, Action::CreateIssue { issue: issue_params(2) }),
        Err(Refusal::WrongRole),
        "a registrar cannot create an issue"
    );
    assert_eq!(town.run(&issuer, Action::CreateIssue { issue: issue_params(2) }), APPLIED);
    assert!(town.state.issues.contains_key(&2));
    let resident = id(&town.residents[0]);
    let never = [
        Action::SellSets { issue: 2, resident, sets: 1, cash_received: Yen(10_000) },
        Action::RegisterShop { shop: id(&key(92)), name: "八百屋".into(), class: ShopClass::Local },
        Action::SettleCashOuts {
            cash_outs: vec![],
            transfer_date: "2027-02-01".into(),
            file_sha256: Hash32([1; 32]),
        },
        Action::ExpireIssue { issue: 1 },
        Action::Freeze { account: id(&local) },
        Action::Unfreeze { account: id(&local) },
        Action::RegisterOperator { operator: id(&key(93)), name: "x".into() },
        delegate(&key(94), Delegation::Issuer),
    ];
    for action in never {
        let what = format!("{action:?}");
        assert_eq!(town.run(&issuer, action), Err(Refusal::WrongRole), "issuer: {what}");
    }
    town.ok(&t, Action::Freeze { account: id(&issuer) });
    assert_eq!(
        town.run(&issuer, Action::CreateIssue { issue: issue_params(3) }),
        rejected(Reason::AccountFrozen),
        "a frozen issuer is a revoked one"
    );
    assert!(!town.state.issues.contains_key(&3));
}

/// An auditor delegate (the bank's or the assembly's auditors) only reads the node's API:
/// every kind of transaction it signs is refused with the wrong-role reason, and the
/// ledger's state is as before.
#[test]
fn an_auditor_delegate_signs_nothing() {
    use machi_ledger::{lottery::LotteryParams, DaySales, Delegation, Replica, ShopClass};
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let (t, local) = (town.town.clone(), town.local.clone());
    let auditor = key(95);
    town.ok(
        &t,
        Action::RegisterDelegate {
            delegate: id(&auditor),
            name: "監査委員".into(),
            delegation: Delegation::Auditor,
        },
    );
    assert_eq!(town.state.accounts[&id(&auditor)].role.name(), "auditor");
    let resident = id(&town.residents[0]);
    let payment = town.pay(0, &local, 100).0;
    let every_kind = [
        Action::Genesis { town: id(&auditor), producer: id(&auditor) },
        Action::RegisterOperator { operator: id(&key(96)), name: "x".into() },
        Action::RegisterShop { shop: id(&key(97)), name: "八百屋".into(), class: ShopClass::Local },
        Action::RegisterResident { resident: id(&key(98)), resident_hash: Hash32([2; 32]), worker: false },
        Action::CreateIssue { issue: issue_params(2) },
        Action::SellSets { issue: 1, resident, sets: 1, cash_received: Yen(10_000) },
        Action::Pay { shop: id(&local), amount: Yen(100), invoice: None },
        Action::Refund { payment, amount: Yen(100) },
        Action::RequestCashOut { issue: 1, amount: Yen(100) },
        Action::SettleCashOuts {
            cash_outs: vec![],
            transfer_date: "2027-02-01".into(),
            file_sha256: Hash32([1; 32]),
        },
        Action::ExpireIssue { issue: 1 },
        Action::ReplaceKey { old: resident, new: id(&key(99)) },
        Action::Freeze { account: resident },
        Action::Unfreeze { account: resident },
        Action::RegisterDelegate {
            delegate: id(&key(89)),
            name: "x".into(),
            delegation: Delegation::Auditor,
        },
        Action::SetReplicas {
            replicas: vec![Replica {
                id: 1,
                name: "x".into(),
                api_addr: "127.0.0.1:1".into(),
                raft_addr: "127.0.0.1:2".into(),
                producer: id(&auditor),
                voter: true,
            }],
        },
        Action::CloseDay {
            day: "2027-01-05".into(),
            sales: vec![DaySales { issue: 1, sets: 1, cash: Yen(10_000) }],
            expected: Yen(10_000),
            counted: Yen(10_000),
        },
        Action::RecordDeposit {
            day: "2027-01-05".into(),
            deposited_on: "2027-01-06".into(),
            amount: Yen(10_000),
            slip_reference: "A-1".into(),
        },
        Action::SetLottery {
            issue: 1,
            lottery: LotteryParams {
                parties: vec![id(&auditor)],
                commit_deadline_ms: T0 + 1,
                apply_start_ms: T0 + 2,
                apply_end_ms: T0 + 3,
                reveal_end_ms: T0 + 4,
                purchase_end_ms: T0 + 5,
                waiting_end_ms: T0 + 6,
            },
        },
        Action::CommitLotterySecret { issue: 1, commitment: Hash32([3; 32]) },
        Action::ApplyLottery { issue: 1, resident, sets: 1 },
        Action::RevealLotterySecret { issue: 1, secret: Hash32([4; 32]) },
        Action::DrawLottery { issue: 1 },
    ];
    let kinds: std::collections::BTreeSet<&str> = every_kind.iter().map(Action::kind_name).collect();
    assert_eq!(kinds.len(), every_kind.len(), "one action of each kind");
    let before = town.state.clone();
    for action in every_kind {
        let what = format!("{action:?}");
        assert_eq!(town.run(&auditor, action), Err(Refusal::WrongRole), "auditor: {what}");
    }
    assert_eq!(town.state.accounts, before.accounts, "nothing it signed changed an account");
    assert_eq!(town.state.issues, before.issues, "nothing it signed changed an issue");
}

/// Every kind of action is named in `an_auditor_delegate_signs_nothing`: a new kind is a
/// compile error here until the test signs one of it too.
#[allow(dead_code)]
fn every_action_kind_is_tried_by_the_auditor_test(action: &Action) {
    match action {
        Action::Genesis { .. }
        | Action::RegisterOperator { .. }
        | Action::RegisterShop { .. }
        | Action::RegisterResident { .. }
        | Action::CreateIssue { .. }
        | Action::SellSets { .. }
        | Action::Pay { .. }
        | Action::Refund { .. }
        | Action::RequestCashOut { .. }
        | Action::SettleCashOuts { .. }
        | Action::ExpireIssue { .. }
        | Action::ReplaceKey { .. }
        | Action::Freeze { .. }
        | Action::Unfreeze { .. }
        | Action::RegisterDelegate { .. }
        | Action::SetReplicas { .. }
        | Action::CloseDay { .. }
        | Action::RecordDeposit { .. }
        | Action::SetLottery { .. }
        | Action::CommitLotterySecret { .. }
        | Action::ApplyLottery { .. }
        | Action::RevealLotterySecret { .. }
        | Action::DrawLottery { .. } => {}
    }
}

/// The delegation's postcard index is part of the signed format (docs/FORMAT.md): appended
/// kinds keep the earlier numbers.
#[test]
fn delegation_indices_are_pinned() {
    use machi_ledger::Delegation;
    let kinds = [
        Delegation::ShopRegistrar,
        Delegation::Settler,
        Delegation::LotteryParty,
        Delegation::Issuer,
        Delegation::Auditor,
    ];
    for (index, kind) in kinds.into_iter().enumerate() {
        assert_eq!(postcard::to_allocvec(&kind).unwrap(), vec![index as u8], "{kind:?}");
    }
}

/// An operator may freeze a resident (a lost card) and lift that, but a freeze by the town
/// is the town's to lift, and a new card does not lift it.
#[test]
fn town_freezes_need_the_town_to_lift_them() {
    let mut town = Town::new(1);
    town.sell(0, 1).unwrap();
    let (op, t, local) = (town.operator.clone(), town.town.clone(), town.local.clone());
    let resident = id(&town.residents[0]);
    town.ok(&t, Action::Freeze { account: resident });
    assert_eq!(town.run(&op, Action::Unfreeze { account: resident }), rejected(Reason::FrozenByTown));
    assert_eq!(town.run(&op, Action::Freeze { account: resident }), rejected(Reason::NoChange));
    assert_eq!(town.pay(0, &local, 100).1, rejected(Reason::AccountFrozen));
    // A replaced card keeps the town's freeze.
    let new = key(150);
    town.ok(&op, Action::ReplaceKey { old: resident, new: id(&new) });
    town.residents[0] = new.clone();
    assert!(town.state.accounts[&id(&new)].frozen_by_town);
    assert_eq!(town.pay(0, &local, 100).1, rejected(Reason::AccountFrozen));
    assert_eq!(town.run(&op, Action::Unfreeze { account: id(&new) }), rejected(Reason::FrozenByTown));
    town.ok(&t, Action::Unfreeze { account: id(&new) });
    assert_eq!(town.pay(0, &local, 100).1, APPLIED);
    // An operator's freeze: the operator lifts it, or the town makes it its own.
    town.ok(&op, Action::Freeze { account: id(&new) });
    town.ok(&t, Action::Freeze { account: id(&new) });
    assert_eq!(town.run(&op, Action::Unfreeze { account: id(&new) }), rejected(Reason::FrozenByTown));
    town.ok(&t, Action::Unfreeze { account: id(&new) });
    town.ok(&op, Action::Freeze { account: id(&new) });
    town.ok(&op, Action::Unfreeze { account: id(&new) });
    // A replacement lifts an operator's freeze (the lost card was frozen).
    town.ok(&op, Action::Freeze { account: id(&new) });
    let newer = key(151);
    town.ok(&op, Action::ReplaceKey { old: id(&new), new: id(&newer) });
    assert!(!town.state.accounts[&id(&newer)].frozen);
}
