//! `GET /v1/cash/days` and the cash part of the supply report (`machi-node audit`):
//! per sale day (JST), the cash the chain received from sales, what each counter counted
//! at its close, what the town deposited at the bank, and every gap between them.
//! Counted cash and deposits are per day, not per issue: a drawer holds one pile of
//! cash. The chain's figures are per issue too. Nothing here adjusts anything: a gap is
//! shown as it is.

use std::collections::BTreeMap;

use machi_ledger::{AccountId, DaySales, IssueId, State, TxId, Yen};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/cash/days`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CashReport {
    pub chain_id: String,
    pub height: u64,
    /// Oldest day first: every day with a sale, a close or a deposit.
    pub days: Vec<CashDayView>,
}

/// One sale day (the JST calendar date of the blocks), all counters and issues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CashDayView {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Per issue, from the applied sales on the chain.
    pub issues: Vec<CashIssueDayView>,
    pub sets: u64,
    /// Cash received by the chain: the sum of the day's applied `sell_sets`.
    pub cash_received: Yen,
    /// Every counter that sold or closed that day.
    pub counters: Vec<CounterDayView>,
    /// Counters that sold that day and have not closed it.
    pub counters_not_closed: u32,
    /// Cash counted at the counters that closed.
    pub counted: Yen,
    /// Counted − expected, summed over the closes (negative: short).
    pub count_difference: i64,
    pub deposits: Vec<DepositView>,
    pub deposited: Yen,
    /// Deposited − counted (negative: less went to the bank than was counted).
    pub deposit_difference: i64,
    /// What does not add up; empty when the day is closed, counted right and deposited.
    pub gaps: Vec<CashGap>,
}

/// One issue's sales that day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CashIssueDayView {
    #[schema(inline)]
    pub issue: IssueId,
    pub sets: u64,
    pub cash_received: Yen,
    /// The part of `cash_received` taken at counters that have not closed the day.
    pub not_closed: Yen,
}

/// One counter (operator key) on one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CounterDayView {
    pub operator: AccountId,
    pub name: String,
    /// Per issue, ascending: exactly what a `close_day` restates.
    pub sales: Vec<DaySales>,
    pub sets: u64,
    /// Cash the chain expects in this counter's drawer.
    pub expected: Yen,
    pub close: Option<CloseView>,
}

/// A counter's recorded close.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CloseView {
    pub tx: TxId,
    pub counted: Yen,
    /// Counted − expected: positive over (過剰), negative short (不足).
    pub difference: i64,
    pub closed_ms: u64,
}

/// A bank deposit the town recorded for the day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DepositView {
    pub tx: TxId,
    pub deposited_on: String,
    pub amount: Yen,
    pub slip_reference: String,
}

/// Something about a day's cash that does not add up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CashGap {
    /// A counter sold and has not closed the day.
    NotClosed { operator: AccountId, name: String, expected: Yen },
    /// A counter counted more or less than the chain expected.
    CountDiffers { operator: AccountId, name: String, difference: i64 },
    /// Cash was received or counted and no deposit is recorded.
    NotDeposited { cash_received: Yen, counted: Yen },
    /// The deposits differ from what the counters counted.
    DepositDiffers { difference: i64 },
}

impl CashGap {
    /// The gap in one plain line, Japanese then English.
    pub fn describe(&self) -> String {
        match self {
            CashGap::NotClosed { name, expected, .. } => {
                format!("未締め {name}（見込み {expected}） / counter {name} not closed ({expected} expected)")
            }
            CashGap::CountDiffers { name, difference, .. } => {
                let (ja, en) = if *difference < 0 { ("不足", "short") } else { ("過剰", "over") };
                let amount = Yen(difference.unsigned_abs());
                format!("{name} の現金 {amount} {ja} / counter {name} {amount} {en}")
            }
            CashGap::NotDeposited { cash_received, counted } => format!(
                "入金記録なし（受領 {cash_received}、計数 {counted}） / not deposited ({cash_received} received, {counted} counted)"
            ),
            CashGap::DepositDiffers { difference } => {
                let (ja, en) = if *difference < 0 { ("少ない", "less") } else { ("多い", "more") };
                let amount = Yen(difference.unsigned_abs());
                format!("入金額が計数額より {amount} {ja} / deposited {amount} {en} than counted")
            }
        }
    }
}

fn signed(value: Yen) -> i64 {
    i64::try_from(value.0).unwrap_or(i64::MAX)
}

impl CashReport {
    /// Every day's cash as the state has it.
    pub fn new(state: &State, height: u64) -> CashReport {
        let mut days: BTreeMap<&str, Vec<CounterDayView>> = BTreeMap::new();
        for (operator, counter_days) in &state.counter_days {
            let name = state.accounts.get(operator).map_or_else(String::new, |a| a.name.clone());
            for (day, counter) in counter_days {
                days.entry(day.as_str()).or_default().push(CounterDayView {
                    operator: *operator,
                    name: name.clone(),
                    sales: counter.sales.clone(),
                    sets: counter.sets(),
                    expected: counter.expected(),
                    close: counter.close.as_ref().map(|c| CloseView {
                        tx: c.tx,
                        counted: c.counted,
                        difference: c.difference,
                        closed_ms: c.closed_ms,
                    }),
                });
            }
        }
        for deposit in &state.deposits {
            days.entry(deposit.day.as_str()).or_default();
        }
        let days = days.into_iter().map(|(day, counters)| CashDayView::new(state, day, counters)).collect();
        CashReport { chain_id: state.chain_id.clone(), height, days }
    }

    /// One day, empty when nothing happened that day.
    pub fn day(&self, day: &str) -> CashDayView {
        self.days.iter().find(|d| d.day == day).cloned().unwrap_or_else(|| CashDayView::empty(day))
    }
}

impl CashDayView {
    fn empty(day: &str) -> CashDayView {
        CashDayView {
            day: day.to_string(),
            issues: Vec::new(),
            sets: 0,
            cash_received: Yen::ZERO,
            counters: Vec::new(),
            counters_not_closed: 0,
            counted: Yen::ZERO,
            count_difference: 0,
            deposits: Vec::new(),
            deposited: Yen::ZERO,
            deposit_difference: 0,
            gaps: Vec::new(),
        }
    }

    fn new(state: &State, day: &str, mut counters: Vec<CounterDayView>) -> CashDayView {
        counters.sort_by(|a, b| (&a.name, a.operator).cmp(&(&b.name, b.operator)));
        let mut view = CashDayView::empty(day);
        let mut issues: BTreeMap<IssueId, CashIssueDayView> = BTreeMap::new();
        for counter in &counters {
            for sale in &counter.sales {
                let issue = issues.entry(sale.issue).or_insert(CashIssueDayView {
                    issue: sale.issue,
                    sets: 0,
                    cash_received: Yen::ZERO,
                    not_closed: Yen::ZERO,
                });
                issue.sets += u64::from(sale.sets);
                issue.cash_received = issue.cash_received.plus(sale.cash);
                if counter.close.is_none() {
                    issue.not_closed = issue.not_closed.plus(sale.cash);
                }
            }
            view.sets += counter.sets;
            view.cash_received = view.cash_received.plus(counter.expected);
            match &counter.close {
                None => {
                    view.counters_not_closed += 1;
                    view.gaps.push(CashGap::NotClosed {
                        operator: counter.operator,
                        name: counter.name.clone(),
                        expected: counter.expected,
                    });
                }
                Some(close) => {
                    view.counted = view.counted.plus(close.counted);
                    view.count_difference = view.count_difference.saturating_add(close.difference);
                    if close.difference != 0 {
                        view.gaps.push(CashGap::CountDiffers {
                            operator: counter.operator,
                            name: counter.name.clone(),
                            difference: close.difference,
                        });
                    }
                }
            }
        }
        view.issues = issues.into_values().collect();
        view.counters = counters;
        for deposit in state.deposits.iter().filter(|d| d.day == day) {
            view.deposited = view.deposited.plus(deposit.amount);
            view.deposits.push(DepositView {
                tx: deposit.tx,
                deposited_on: deposit.deposited_on.clone(),
                amount: deposit.amount,
                slip_reference: deposit.slip_reference.clone(),
            });
        }
        view.deposit_difference = signed(view.deposited).saturating_sub(signed(view.counted));
        if view.deposits.is_empty() {
            if !view.cash_received.is_zero() || !view.counted.is_zero() {
                view.gaps
                    .push(CashGap::NotDeposited { cash_received: view.cash_received, counted: view.counted });
            }
        } else if view.deposit_difference != 0 {
            view.gaps.push(CashGap::DepositDiffers { difference: view.deposit_difference });
        }
        view
    }
}
