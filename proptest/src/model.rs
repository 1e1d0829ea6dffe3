//! A plain reference model of the money rules: maps of balances and counters, written
//! from SPEC §2-3 without reusing the ledger's code. The simulation compares every
//! outcome and every balance of the real ledger with it.

use std::collections::{BTreeMap, BTreeSet};

use machi_ledger::{IssueParams, Kind, Reason, Refusal, ShopClass, TxId};

pub(crate) type Acct = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MRole {
    Town,
    Operator,
    Shop(ShopClass),
    Resident,
    /// A delegated town key that may only settle cash-outs.
    Settler,
}

#[derive(Clone, Debug)]
pub(crate) struct MAccount {
    pub(crate) role: MRole,
    pub(crate) frozen: bool,
    /// Frozen by the town: only the town lifts it, and a new card keeps it.
    pub(crate) town_froze: bool,
    pub(crate) replaced_by: Option<Acct>,
}

impl MAccount {
    pub(crate) fn new(role: MRole) -> MAccount {
        MAccount { role, frozen: false, town_froze: false, replaced_by: None }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct MIssue {
    pub(crate) params: IssueParams,
    pub(crate) sold: u32,
    pub(crate) residents_expired: bool,
    pub(crate) shops_expired: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct MPayment {
    pub(crate) payer: Acct,
    pub(crate) shop: Acct,
    pub(crate) amount: u64,
    pub(crate) takes: Vec<(u32, Kind, u64)>,
    pub(crate) refunded: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct MCashOut {
    pub(crate) issue: u32,
    pub(crate) net: u64,
    pub(crate) pending: bool,
}

/// What the model expects of one transaction.
pub(crate) type Expect = Result<Option<Reason>, Refusal>;

#[derive(Default)]
pub(crate) struct Model {
    pub(crate) accounts: BTreeMap<Acct, MAccount>,
    pub(crate) balances: BTreeMap<(Acct, u32, Kind), u64>,
    pub(crate) bought: BTreeMap<(Acct, u32), u32>,
    pub(crate) issues: BTreeMap<u32, MIssue>,
    pub(crate) payments: BTreeMap<TxId, MPayment>,
    pub(crate) cash_outs: BTreeMap<TxId, MCashOut>,
    pub(crate) expired: BTreeMap<u32, u64>,
    pub(crate) fees: BTreeMap<u32, u64>,
    /// Everything each shop asked to cash out, per issue: the fee is on this total.
    pub(crate) cashed_out: BTreeMap<(Acct, u32), u64>,
    pub(crate) pending: BTreeMap<u32, u64>,
    pub(crate) paid: BTreeMap<u32, u64>,
    pub(crate) seen: BTreeSet<TxId>,
}

impl Model {
    pub(crate) fn balance(&self, acct: Acct, issue: u32, kind: Kind) -> u64 {
        self.balances.get(&(acct, issue, kind)).copied().unwrap_or(0)
    }

    fn add(&mut self, acct: Acct, issue: u32, kind: Kind, amount: u64) {
        *self.balances.entry((acct, issue, kind)).or_default() += amount;
    }

    fn sub(&mut self, acct: Acct, issue: u32, kind: Kind, amount: u64) {
        let entry = self.balances.get_mut(&(acct, issue, kind)).expect("model: debit of an empty balance");
        *entry -= amount;
        if *entry == 0 {
            self.balances.remove(&(acct, issue, kind));
        }
    }

    /// Signer checks that refuse a transaction: unknown, revoked, wrong role.
    pub(crate) fn admit(&self, signer: Acct, allowed: impl Fn(MRole) -> bool) -> Result<(), Refusal> {
        let account = self.accounts.get(&signer).ok_or(Refusal::UnknownSigner)?;
        if account.replaced_by.is_some() {
            return Err(Refusal::KeyRevoked);
        }
        if !allowed(account.role) {
            return Err(Refusal::WrongRole);
        }
        Ok(())
    }

    pub(crate) fn frozen(&self, acct: Acct) -> bool {
        self.accounts.get(&acct).is_some_and(|a| a.frozen)
    }

    pub(crate) fn sell(
        &mut self,
        resident: Acct,
        issue_id: u32,
        sets: u32,
        cash: u64,
        now: u64,
    ) -> Option<Reason> {
        let Some(issue) = self.issues.get(&issue_id) else { return Some(Reason::UnknownIssue) };
        let p = issue.params.clone();
        if now < p.sale_start_ms || now >= p.sale_end_ms {
            return Some(Reason::SaleNotOpen);
        }
        let Some(account) = self.accounts.get(&resident) else { return Some(Reason::UnknownAccount) };
        if account.role != MRole::Resident {
            return Some(Reason::NotAResident);
        }
        if account.replaced_by.is_some() {
            return Some(Reason::AccountRevoked);
        }
        if account.frozen {
            return Some(Reason::AccountFrozen);
        }
        if sets == 0 {
            return Some(Reason::InvalidParameters);
        }
        let left = p.total_sets - issue.sold;
        if left == 0 {
            return Some(Reason::SoldOut);
        }
        if sets > left {
            return Some(Reason::NotEnoughSetsLeft);
        }
        let bought = self.bought.get(&(resident, issue_id)).copied().unwrap_or(0);
        if bought + sets > p.max_sets_per_resident {
            return Some(Reason::OverCap);
        }
        if cash != p.price.0 * u64::from(sets) {
            return Some(Reason::CashMismatch);
        }
        self.issues.get_mut(&issue_id).expect("exists").sold += sets;
        *self.bought.entry((resident, issue_id)).or_default() += sets;
        self.add(resident, issue_id, Kind::Common, p.common_per_set.0 * u64::from(sets));
        self.add(resident, issue_id, Kind::Local, p.local_per_set.0 * u64::from(sets));
        None
    }

    pub(crate) fn pay(&mut self, id: TxId, payer: Acct, shop: Acct, amount: u64, now: u64) -> Option<Reason> {
        if amount == 0 {
            return Some(Reason::ZeroAmount);
        }
        let class = match self.accounts.get(&shop).map(|a| a.role) {
            Some(MRole::Shop(class)) => class,
            _ => return Some(Reason::NotAShop),
        };
        if self.frozen(shop) {
            return Some(Reason::PayeeFrozen);
        }
        // Spending order: local value first (local shops only), then common; within a
        // kind the issue whose spend-until comes first (then the lower id).
        let mut lots: Vec<(u8, u64, u32, Kind, u64)> = self
            .balances
            .iter()
            .filter(|((a, _, _), _)| *a == payer)
            .filter_map(|(&(_, issue, kind), &amount)| {
                let i = &self.issues[&issue];
                let live = !i.residents_expired && now <= i.params.spend_until_ms;
                let usable = class == ShopClass::Local || kind == Kind::Common;
                let rank = if kind == Kind::Local { 0 } else { 1 };
                (live && usable).then_some((rank, i.params.spend_until_ms, issue, kind, amount))
            })
            .collect();
        lots.sort();
        let available: u64 = lots.iter().map(|l| l.4).sum();
        if available < amount {
            return Some(Reason::InsufficientBalance);
        }
        let mut left = amount;
        let mut takes = Vec::new();
        for (_, _, issue, kind, have) in lots {
            if left == 0 {
                break;
            }
            let take = have.min(left);
            left -= take;
            self.sub(payer, issue, kind, take);
            self.add(shop, issue, kind, take);
            takes.push((issue, kind, take));
        }
        self.payments.insert(id, MPayment { payer, shop, amount, takes, refunded: 0 });
        None
    }

    fn current(&self, mut acct: Acct) -> Acct {
        while let Some(next) = self.accounts.get(&acct).and_then(|a| a.replaced_by) {
            acct = next;
        }
        acct
    }

    pub(crate) fn refund(&mut self, shop: Acct, payment: TxId, amount: u64) -> Option<Reason> {
        if amount == 0 {
            return Some(Reason::ZeroAmount);
        }
        let Some(p) = self.payments.get(&payment).cloned() else { return Some(Reason::UnknownPayment) };
        if p.shop != shop {
            return Some(Reason::NotYourPayment);
        }
        if amount > p.amount - p.refunded {
            return Some(Reason::RefundExceedsPayment);
        }
        // Refunds give back the last-spent value first.
        let mut skip = p.refunded;
        let mut left = amount;
        let mut restores = Vec::new();
        for &(issue, kind, took) in p.takes.iter().rev() {
            let skipped = took.min(skip);
            skip -= skipped;
            let give = (took - skipped).min(left);
            if give > 0 {
                restores.push((issue, kind, give));
                left -= give;
            }
        }
        for &(issue, kind, give) in &restores {
            if self.issues[&issue].residents_expired {
                return Some(Reason::IssueExpired);
            }
            if self.balance(shop, issue, kind) < give {
                return Some(Reason::ShopBalanceInsufficient);
            }
        }
        let resident = self.current(p.payer);
        for (issue, kind, give) in restores {
            self.sub(shop, issue, kind, give);
            self.add(resident, issue, kind, give);
        }
        self.payments.get_mut(&payment).expect("exists").refunded += amount;
        None
    }

    pub(crate) fn cash_out(
        &mut self,
        id: TxId,
        shop: Acct,
        issue_id: u32,
        amount: u64,
        now: u64,
    ) -> Option<Reason> {
        if amount == 0 {
            return Some(Reason::ZeroAmount);
        }
        let Some(issue) = self.issues.get(&issue_id) else { return Some(Reason::UnknownIssue) };
        if now > issue.params.cash_out_deadline_ms || issue.shops_expired {
            return Some(Reason::CashOutDeadlinePassed);
        }
        let bp = u64::from(issue.params.cash_out_fee.0);
        let local = self.balance(shop, issue_id, Kind::Local);
        let common = self.balance(shop, issue_id, Kind::Common);
        if local + common < amount {
            return Some(Reason::InsufficientBalance);
        }
        let from_local = local.min(amount);
        if from_local > 0 {
            self.sub(shop, issue_id, Kind::Local, from_local);
        }
        if amount > from_local {
            self.sub(shop, issue_id, Kind::Common, amount - from_local);
        }
        // The fee is on the shop's running total, rounded down once.
        let before = self.cashed_out.get(&(shop, issue_id)).copied().unwrap_or(0);
        let after = before + amount;
        self.cashed_out.insert((shop, issue_id), after);
        let fee = after * bp / 10_000 - before * bp / 10_000;
        *self.fees.entry(issue_id).or_default() += fee;
        *self.pending.entry(issue_id).or_default() += amount - fee;
        self.cash_outs.insert(id, MCashOut { issue: issue_id, net: amount - fee, pending: true });
        None
    }

    pub(crate) fn settle(&mut self, ids: &[TxId]) -> Option<Reason> {
        let distinct: BTreeSet<&TxId> = ids.iter().collect();
        if ids.is_empty() || distinct.len() != ids.len() {
            return Some(Reason::InvalidParameters);
        }
        for id in ids {
            match self.cash_outs.get(id) {
                None => return Some(Reason::UnknownCashOut),
                Some(c) if !c.pending => return Some(Reason::CashOutNotPending),
                Some(_) => {}
            }
        }
        for id in ids {
            let c = self.cash_outs.get_mut(id).expect("checked");
            c.pending = false;
            *self.pending.get_mut(&c.issue).expect("pending") -= c.net;
            *self.paid.entry(c.issue).or_default() += c.net;
        }
        None
    }

    pub(crate) fn expire(&mut self, issue_id: u32, now: u64) -> Option<Reason> {
        let Some(issue) = self.issues.get(&issue_id).cloned() else { return Some(Reason::UnknownIssue) };
        if now <= issue.params.spend_until_ms {
            return Some(Reason::IssueNotEnded);
        }
        let residents = !issue.residents_expired;
        let shops = !issue.shops_expired && now > issue.params.cash_out_deadline_ms;
        if !residents && !shops {
            return Some(Reason::AlreadyExpired);
        }
        let doomed: Vec<(Acct, u32, Kind)> = self
            .balances
            .keys()
            .filter(|(a, i, _)| {
                *i == issue_id
                    && match self.accounts[a].role {
                        MRole::Resident => residents,
                        MRole::Shop(_) => shops,
                        _ => false,
                    }
            })
            .copied()
            .collect();
        for key in doomed {
            let amount = self.balances.remove(&key).expect("listed");
            *self.expired.entry(issue_id).or_default() += amount;
        }
        let issue = self.issues.get_mut(&issue_id).expect("exists");
        issue.residents_expired = true;
        issue.shops_expired |= shops;
        None
    }

    pub(crate) fn replace(&mut self, old: Acct, new: Acct) -> Option<Reason> {
        let Some(account) = self.accounts.get(&old).cloned() else { return Some(Reason::UnknownAccount) };
        if account.role != MRole::Resident {
            return Some(Reason::NotAResident);
        }
        if account.replaced_by.is_some() {
            return Some(Reason::AccountRevoked);
        }
        if self.accounts.contains_key(&new) {
            return Some(Reason::AccountExists);
        }
        let moved: Vec<((Acct, u32, Kind), u64)> =
            self.balances.iter().filter(|((a, _, _), _)| *a == old).map(|(k, v)| (*k, *v)).collect();
        for ((_, issue, kind), amount) in moved {
            self.balances.remove(&(old, issue, kind));
            self.add(new, issue, kind, amount);
        }
        let counts: Vec<((Acct, u32), u32)> =
            self.bought.iter().filter(|((a, _), _)| *a == old).map(|(k, v)| (*k, *v)).collect();
        for ((_, issue), n) in counts {
            self.bought.remove(&(old, issue));
            self.bought.insert((new, issue), n);
        }
        self.accounts.get_mut(&old).expect("exists").replaced_by = Some(new);
        let town_froze = account.town_froze;
        self.accounts.insert(
            new,
            MAccount { role: MRole::Resident, frozen: town_froze, town_froze, replaced_by: None },
        );
        None
    }

    pub(crate) fn set_frozen(&mut self, by_town: bool, target: Acct, frozen: bool) -> Option<Reason> {
        let Some(account) = self.accounts.get_mut(&target) else { return Some(Reason::UnknownAccount) };
        if frozen && by_town && account.town_froze {
            return Some(Reason::NoChange);
        }
        if (!frozen || !by_town) && account.frozen == frozen {
            return Some(Reason::NoChange);
        }
        if !frozen && !by_town && account.town_froze {
            return Some(Reason::FrozenByTown);
        }
        account.frozen = frozen;
        account.town_froze = frozen && by_town;
        None
    }
}
