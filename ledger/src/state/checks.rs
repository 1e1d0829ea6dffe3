//! The supply invariant after every block, and a full recount for tests and audits.

use super::*;

impl State {
    /// The per-issue supply invariant, from the running totals: face value issued is all
    /// accounted for, no issue sold beyond its cap, and cash received is sets sold × price.
    /// Cheap: run after every block.
    pub fn supply_invariant(&self) -> Result<(), String> {
        for (id, issue) in &self.issues {
            let s = &issue.supply;
            if !s.invariant_holds() {
                return Err(format!("issue {id}: issued {} != accounted {}", s.issued(), s.accounted()));
            }
            if s.sets_sold > issue.params.total_sets {
                return Err(format!(
                    "issue {id} sold {} sets beyond its cap {}",
                    s.sets_sold, issue.params.total_sets
                ));
            }
            let price = issue.params.price.checked_mul(u64::from(s.sets_sold));
            if price != Some(s.cash_received) {
                return Err(format!("issue {id}: cash received {} != sets sold × price", s.cash_received));
            }
        }
        Ok(())
    }

    /// The invariant where this node made the block: a failure is a bug in the ledger,
    /// never bad input, and stops the producer.
    pub fn assert_supply_invariant(&self) {
        if let Err(broken) = self.supply_invariant() {
            panic!("supply invariant broken: {broken}");
        }
    }

    /// Recomputes every issue's holdings from the accounts themselves and compares them
    /// with the running totals, and checks each resident's cap. O(accounts): for tests
    /// and audits.
    pub fn check_full(&self) -> Result<(), String> {
        self.check_counters()?;
        let mut sums: BTreeMap<IssueId, Supply> = BTreeMap::new();
        for (key, account) in &self.accounts {
            for lot in &account.lots {
                let sum = sums.entry(lot.issue).or_default();
                let bucket = match account.role {
                    Role::Shop(_) => sum.shops_mut(lot.kind),
                    Role::Resident { .. } => sum.residents_mut(lot.kind),
                    _ => return Err(format!("account {key} of role {:?} holds value", account.role)),
                };
                *bucket = bucket.checked_add(lot.amount).ok_or("overflow")?;
                if lot.amount.is_zero() {
                    return Err(format!("account {key} keeps an empty lot"));
                }
            }
            for (issue, sets) in &account.bought {
                let cap = self.issues.get(issue).map_or(0, |i| i.params.max_sets_per_resident);
                if *sets > cap {
                    return Err(format!("account {key} bought {sets} sets of issue {issue}, cap {cap}"));
                }
            }
        }
        for (id, issue) in &self.issues {
            let s = &issue.supply;
            let sum = sums.remove(id).unwrap_or_default();
            let pairs = [
                ("residents_common", s.residents_common, sum.residents_common),
                ("residents_local", s.residents_local, sum.residents_local),
                ("shops_common", s.shops_common, sum.shops_common),
                ("shops_local", s.shops_local, sum.shops_local),
            ];
            for (name, running, recomputed) in pairs {
                if running != recomputed {
                    return Err(format!("issue {id}: {name} is {running} but accounts hold {recomputed}"));
                }
            }
            if !s.invariant_holds() {
                return Err(format!("issue {id}: issued {} != accounted {}", s.issued(), s.accounted()));
            }
        }
        match sums.keys().next() {
            Some(id) => Err(format!("accounts hold value of unknown issue {id}")),
            None => Ok(()),
        }
    }
}
