//! The counters' cash close and the town's deposits (docs/RULES.md, "close day" and
//! "record deposit"): each case fails if its rule is removed from the ledger.

use machi_ledger::{Action, DaySales, IssueParams, Outcome, Reason, Refusal, Yen, CASH_YEN_MAX};

use crate::town::{id, issue_params, key, Town, DAY_MS, T0};

const APPLIED: Result<Outcome, Refusal> = Ok(Outcome::Applied);
/// T0's JST date.
const DAY: &str = "2027-01-05";

fn rejected(reason: Reason) -> Result<Outcome, Refusal> {
    Ok(Outcome::Rejected(reason))
}

fn close(day: &str, sales: Vec<DaySales>, expected: u64, counted: u64) -> Action {
    Action::CloseDay { day: day.into(), sales, expected: Yen(expected), counted: Yen(counted) }
}

fn deposit(day: &str, on: &str, amount: u64, slip: &str) -> Action {
    Action::RecordDeposit {
        day: day.into(),
        deposited_on: on.into(),
        amount: Yen(amount),
        slip_reference: slip.into(),
    }
}

fn sales(issue: u32, sets: u32) -> DaySales {
    DaySales { issue, sets, cash: Yen(10_000 * u64::from(sets)) }
}

/// A second issue on sale for three days from T0.
fn with_long_issue(town: &mut Town) {
    let t = town.town.clone();
    let issue = IssueParams { id: 2, sale_end_ms: T0 + 3 * DAY_MS, ..issue_params(2) };
    town.ok(&t, Action::CreateIssue { issue });
}

#[test]
fn sales_are_kept_per_counter_issue_and_jst_day() {
    let mut town = Town::new(4);
    with_long_issue(&mut town);
    let second = key(5);
    let t = town.town.clone();
    town.ok(&t, Action::RegisterOperator { operator: id(&second), name: "出張窓口".into() });
    assert_eq!(town.sell(0, 2), APPLIED);
    assert_eq!(town.sell_issue(2, 1, 1), APPLIED);
    assert_eq!(town.sell(1, 1), APPLIED);
    // A rejected sale is not cash at the counter.
    assert_eq!(town.sell(2, 3), rejected(Reason::OverCap));
    let resident = id(&town.residents[3]);
    let at_second = Action::SellSets { issue: 1, resident, sets: 1, cash_received: Yen(10_000) };
    assert_eq!(town.run(&second, at_second), APPLIED);
    // 23:59:59.999 JST is still the same day; midnight is the next.
    town.now = T0 + DAY_MS - 1;
    assert_eq!(town.sell_issue(2, 2, 1), APPLIED);
    town.now = T0 + DAY_MS;
    assert_eq!(town.sell_issue(2, 2, 1), APPLIED);

    let days = &town.state.counter_days[&id(&town.operator)];
    assert_eq!(days.keys().collect::<Vec<_>>(), ["2027-01-05", "2027-01-06"]);
    assert_eq!(days[DAY].sales, vec![sales(1, 3), sales(2, 2)]);
    assert_eq!(days[DAY].expected(), Yen(50_000));
    assert_eq!(days["2027-01-06"].sales, vec![sales(2, 1)]);
    assert_eq!(town.state.counter_days[&id(&second)][DAY].sales, vec![sales(1, 1)]);
}

#[test]
fn a_close_restates_the_chains_sales_and_records_the_difference() {
    let mut town = Town::new(2);
    with_long_issue(&mut town);
    let op = town.operator.clone();
    assert_eq!(town.sell(0, 2), APPLIED);
    assert_eq!(town.sell_issue(2, 1, 1), APPLIED);
    let right = || vec![sales(1, 2), sales(2, 1)];
    let cases = [
        (vec![sales(1, 2)], 20_000),
        (vec![sales(2, 1), sales(1, 2)], 30_000),
        (vec![sales(1, 1), sales(2, 1)], 20_000),
        (vec![sales(1, 2), DaySales { issue: 2, sets: 1, cash: Yen(9_000) }], 29_000),
        (right(), 29_000),
        (vec![], 0),
    ];
    for (stated, expected) in cases {
        let what = format!("{stated:?} {expected}");
        assert_eq!(
            town.run(&op, close(DAY, stated, expected, 30_000)),
            rejected(Reason::CloseMismatch),
            "{what}"
        );
    }
    assert_eq!(town.run(&op, close(DAY, right(), 30_000, 29_000)), APPLIED);
    let day = &town.state.counter_days[&id(&op)][DAY];
    let recorded = day.close.as_ref().expect("closed");
    assert_eq!(
        (recorded.expected, recorded.counted, recorded.difference),
        (Yen(30_000), Yen(29_000), -1_000)
    );
}

#[test]
fn one_close_per_counter_and_day_and_the_first_stands() {
    let mut town = Town::new(1);
    let op = town.operator.clone();
    assert_eq!(town.sell(0, 1), APPLIED);
    assert_eq!(town.run(&op, close(DAY, vec![sales(1, 1)], 10_000, 10_500)), APPLIED);
    assert_eq!(
        town.run(&op, close(DAY, vec![sales(1, 1)], 10_000, 10_000)),
        rejected(Reason::DayAlreadyClosed)
    );
    let recorded = town.state.counter_days[&id(&op)][DAY].close.clone().expect("closed");
    assert_eq!((recorded.counted, recorded.difference), (Yen(10_500), 500));
}

#[test]
fn a_closed_counter_sells_no_more_that_day() {
    let mut town = Town::new(3);
    with_long_issue(&mut town);
    let second = key(5);
    let t = town.town.clone();
    town.ok(&t, Action::RegisterOperator { operator: id(&second), name: "出張窓口".into() });
    let op = town.operator.clone();
    assert_eq!(town.sell_issue(2, 0, 1), APPLIED);
    assert_eq!(town.run(&op, close(DAY, vec![sales(2, 1)], 10_000, 10_000)), APPLIED);
    assert_eq!(town.sell_issue(2, 1, 1), rejected(Reason::CounterClosed));
    // Another counter still sells; so does this one the next day.
    let resident = id(&town.residents[1]);
    let at_second = Action::SellSets { issue: 2, resident, sets: 1, cash_received: Yen(10_000) };
    assert_eq!(town.run(&second, at_second), APPLIED);
    town.now = T0 + DAY_MS;
    assert_eq!(town.sell_issue(2, 2, 1), APPLIED);
    assert_eq!(town.state.issues[&2].supply.sets_sold, 3);
}

#[test]
fn close_days_are_real_days_not_after_today() {
    let mut town = Town::new(1);
    let op = town.operator.clone();
    for day in ["2027-1-05", "2027-02-30", "", "yesterday"] {
        assert_eq!(town.run(&op, close(day, vec![], 0, 0)), rejected(Reason::InvalidParameters), "{day:?}");
    }
    assert_eq!(town.run(&op, close("2027-01-06", vec![], 0, 0)), rejected(Reason::DayNotStarted));
    assert_eq!(town.run(&op, close(DAY, vec![], 0, CASH_YEN_MAX + 1)), rejected(Reason::InvalidParameters));
    // A day without sales closes at ¥0 expected, and cash found is a difference too.
    assert_eq!(town.run(&op, close("2027-01-04", vec![], 0, 1_000)), APPLIED);
    assert_eq!(town.state.counter_days[&id(&op)]["2027-01-04"].close.as_ref().unwrap().difference, 1_000);
    // A past day closes once its sales are over: the next morning, yesterday's close.
    assert_eq!(town.sell(0, 1), APPLIED);
    town.now = T0 + DAY_MS + 9 * 60 * 60 * 1000;
    assert_eq!(town.run(&op, close(DAY, vec![sales(1, 1)], 10_000, 10_000)), APPLIED);
}

#[test]
fn who_closes_and_who_records_deposits() {
    let mut town = Town::new(1);
    let (t, op, shop, resident) =
        (town.town.clone(), town.operator.clone(), town.local.clone(), town.residents[0].clone());
    let settler = key(6);
    let delegate = Action::RegisterDelegate {
        delegate: id(&settler),
        name: "精算".into(),
        delegation: machi_ledger::Delegation::Settler,
    };
    town.ok(&t, delegate);
    for signer in [&t, &shop, &resident] {
        assert_eq!(town.run(signer, close(DAY, vec![], 0, 0)), Err(Refusal::WrongRole));
    }
    for signer in [&op, &shop, &resident, &settler] {
        assert_eq!(town.run(signer, deposit(DAY, DAY, 1, "A-1")), Err(Refusal::WrongRole));
    }
    assert_eq!(town.run(&t, deposit(DAY, DAY, 1, "A-1")), APPLIED);
    // A frozen operator closes nothing.
    town.ok(&t, Action::Freeze { account: id(&op) });
    assert_eq!(town.run(&op, close(DAY, vec![], 0, 0)), rejected(Reason::AccountFrozen));
}

#[test]
fn deposits_name_a_day_a_date_an_amount_and_a_unique_slip() {
    let mut town = Town::new(1);
    let t = town.town.clone();
    town.now = T0 + 2 * DAY_MS;
    let today = "2027-01-07";
    let long = "x".repeat(machi_ledger::SLIP_CHARS_MAX + 1);
    let cases = [
        (deposit(DAY, today, 0, "S-1"), Reason::ZeroAmount),
        (deposit("2027-01-32", today, 1, "S-1"), Reason::InvalidParameters),
        (deposit(DAY, "07/01/2027", 1, "S-1"), Reason::InvalidParameters),
        (deposit(today, DAY, 1, "S-1"), Reason::InvalidParameters),
        (deposit(DAY, today, CASH_YEN_MAX + 1, "S-1"), Reason::InvalidParameters),
        (deposit(DAY, today, 1, ""), Reason::InvalidParameters),
        (deposit(DAY, today, 1, " S-1"), Reason::InvalidParameters),
        (deposit(DAY, today, 1, "S-\n1"), Reason::InvalidParameters),
        (deposit(DAY, today, 1, &long), Reason::InvalidParameters),
        (deposit(DAY, "2027-01-08", 1, "S-1"), Reason::DayNotStarted),
    ];
    for (action, reason) in cases {
        let what = format!("{action:?}");
        assert_eq!(town.run(&t, action), rejected(reason), "{what}");
    }
    assert!(town.state.deposits.is_empty(), "nothing half-written");
    let slip = "x".repeat(machi_ledger::SLIP_CHARS_MAX);
    assert_eq!(town.run(&t, deposit(DAY, today, 30_000, &slip)), APPLIED);
    assert_eq!(town.run(&t, deposit("2027-01-06", today, 5, &slip)), rejected(Reason::SlipAlreadyRecorded));
    // A day's cash may go to the bank in more than one deposit.
    assert_eq!(town.run(&t, deposit(DAY, today, 1_000, "りそな 0002")), APPLIED);
    let recorded: Vec<(&str, u64)> =
        town.state.deposits.iter().map(|d| (d.day.as_str(), d.amount.0)).collect();
    assert_eq!(recorded, [(DAY, 30_000), (DAY, 1_000)]);
}
