//! The counters' cash: each operator's sales per JST day, the day's cash close (入金締め)
//! and the town's bank deposits of a day's cash. The close states what the chain
//! recorded and what the operator counted; the difference is recorded, never adjusted.

use super::*;
use crate::limits::{CASH_YEN_MAX, SLIP_CHARS_MAX};
use crate::time::{format_jst_date, parse_date};
use crate::tx::DaySales;

/// One counter's sales on one JST day, and its close once made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterDay {
    /// Applied sales per issue, ascending by issue id.
    pub sales: Vec<DaySales>,
    pub close: Option<CashClose>,
}

impl CounterDay {
    pub fn expected(&self) -> Yen {
        self.sales.iter().fold(Yen::ZERO, |sum, s| sum.plus(s.cash))
    }

    pub fn sets(&self) -> u64 {
        self.sales.iter().map(|s| u64::from(s.sets)).sum()
    }
}

/// A recorded cash close: what the chain expected, what the operator counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashClose {
    pub tx: TxId,
    pub expected: Yen,
    pub counted: Yen,
    /// `counted − expected`: positive is cash over (過剰), negative short (不足).
    pub difference: i64,
    pub closed_ms: u64,
}

/// A bank deposit of a sale day's cash, as the town recorded it from the slip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    pub tx: TxId,
    pub day: String,
    pub deposited_on: String,
    pub amount: Yen,
    pub slip_reference: String,
    pub recorded_ms: u64,
}

/// A slip reference as printed: 1-64 characters, no control characters.
fn slip_is_valid(slip: &str) -> bool {
    let chars = slip.chars().count();
    (1..=SLIP_CHARS_MAX).contains(&chars) && !slip.chars().any(char::is_control) && slip.trim() == slip
}

/// What a close states: its day, the sales it restates and the cash counted.
pub(super) struct Count<'a> {
    pub(super) day: &'a str,
    pub(super) sales: &'a [DaySales],
    pub(super) expected: Yen,
    pub(super) counted: Yen,
}

impl State {
    /// The counters' sales add up to each issue's cash received and sets sold, and every
    /// close restates its day's sales: a recount for tests and audits.
    pub(super) fn check_counters(&self) -> Result<(), String> {
        let mut sums: BTreeMap<IssueId, (u64, Yen)> = BTreeMap::new();
        for (operator, days) in &self.counter_days {
            for (day, counter) in days {
                for sale in &counter.sales {
                    let sum = sums.entry(sale.issue).or_insert((0, Yen::ZERO));
                    sum.0 += u64::from(sale.sets);
                    sum.1 = sum.1.checked_add(sale.cash).ok_or("overflow")?;
                }
                if let Some(close) = &counter.close {
                    let difference = i128::from(close.counted.0) - i128::from(close.expected.0);
                    if close.expected != counter.expected() || i128::from(close.difference) != difference {
                        return Err(format!("counter {operator} {day}: the close does not restate the day"));
                    }
                }
            }
        }
        for (id, issue) in &self.issues {
            let (sets, cash) = sums.remove(id).unwrap_or((0, Yen::ZERO));
            if sets != u64::from(issue.supply.sets_sold) || cash != issue.supply.cash_received {
                return Err(format!(
                    "issue {id}: counters sold {sets} sets for {cash}, the issue {} for {}",
                    issue.supply.sets_sold, issue.supply.cash_received
                ));
            }
        }
        match sums.keys().next() {
            Some(id) => Err(format!("counters sold sets of unknown issue {id}")),
            None => Ok(()),
        }
    }

    /// A counter that closed today sells no more today.
    pub(super) fn counter_is_open(&self, operator: AccountId, now_ms: u64) -> Result<(), Reason> {
        let today = format_jst_date(now_ms);
        let closed = self
            .counter_days
            .get(&operator)
            .and_then(|days| days.get(&today))
            .is_some_and(|day| day.close.is_some());
        if closed {
            return Err(Reason::CounterClosed);
        }
        Ok(())
    }

    /// Adds an applied sale to the counter's day.
    pub(super) fn record_counter_sale(
        &mut self,
        operator: AccountId,
        issue: IssueId,
        sets: u32,
        cash: Yen,
        now_ms: u64,
    ) {
        let day = self.counter_days.entry(operator).or_default().entry(format_jst_date(now_ms)).or_default();
        match day.sales.binary_search_by_key(&issue, |s| s.issue) {
            Ok(i) => {
                // Bounded by the issue's total sets and its total price, checked at create.
                let sale = &mut day.sales[i];
                sale.sets += sets;
                sale.cash = sale.cash.plus(cash);
            }
            Err(i) => day.sales.insert(i, DaySales { issue, sets, cash }),
        }
    }

    pub(super) fn close_day(
        &mut self,
        id: TxId,
        operator: AccountId,
        close: Count<'_>,
        now_ms: u64,
    ) -> Result<(), Reason> {
        let Count { day, sales, expected, counted } = close;
        if parse_date(day).is_none() || counted.0 > CASH_YEN_MAX {
            return Err(Reason::InvalidParameters);
        }
        if *day > *format_jst_date(now_ms) {
            return Err(Reason::DayNotStarted);
        }
        let recorded = self.counter_days.get(&operator).and_then(|days| days.get(day));
        if recorded.is_some_and(|d| d.close.is_some()) {
            return Err(Reason::DayAlreadyClosed);
        }
        let recorded_sales = recorded.map_or(&[][..], |d| &d.sales[..]);
        let recorded_expected = recorded.map_or(Yen::ZERO, CounterDay::expected);
        if sales != recorded_sales || expected != recorded_expected {
            return Err(Reason::CloseMismatch);
        }
        let difference = i64::try_from(i128::from(counted.0) - i128::from(expected.0))
            .map_err(|_| Reason::InvalidParameters)?;
        let close = CashClose { tx: id, expected, counted, difference, closed_ms: now_ms };
        self.counter_days.entry(operator).or_default().entry(day.to_string()).or_default().close =
            Some(close);
        Ok(())
    }

    pub(super) fn record_deposit(
        &mut self,
        id: TxId,
        day: &str,
        deposited_on: &str,
        amount: Yen,
        slip_reference: &str,
        now_ms: u64,
    ) -> Result<(), Reason> {
        if amount.is_zero() {
            return Err(Reason::ZeroAmount);
        }
        if parse_date(day).is_none()
            || parse_date(deposited_on).is_none()
            || deposited_on < day
            || amount.0 > CASH_YEN_MAX
            || !slip_is_valid(slip_reference)
        {
            return Err(Reason::InvalidParameters);
        }
        if *deposited_on > *format_jst_date(now_ms) {
            return Err(Reason::DayNotStarted);
        }
        if self.deposits.iter().any(|d| d.slip_reference == slip_reference) {
            return Err(Reason::SlipAlreadyRecorded);
        }
        self.deposits.push(Deposit {
            tx: id,
            day: day.to_string(),
            deposited_on: deposited_on.to_string(),
            amount,
            slip_reference: slip_reference.to_string(),
            recorded_ms: now_ms,
        });
        Ok(())
    }
}
