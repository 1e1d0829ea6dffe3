//! Shops' value leaving circulation: cash-outs with their fee, settlements, expiry.

use super::*;

impl State {
    /// Moves `amount` of the shop's value in `issue` (local first, then common) to
    /// pending cash-out, less the issue's fee. The fee is charged on everything the shop
    /// has cashed out of the issue so far, rounded down to the yen once: this request pays
    /// `fee(total after) - fee(total before)`. So many small cash-outs pay exactly what one
    /// large one would (rounding per request would let ¥199 at 0.5% go free).
    pub(super) fn request_cash_out(
        &mut self,
        id: TxId,
        shop: AccountId,
        issue_id: IssueId,
        amount: Yen,
        now_ms: u64,
    ) -> Result<(), Reason> {
        if amount.is_zero() {
            return Err(Reason::ZeroAmount);
        }
        let issue = self.issues.get(&issue_id).ok_or(Reason::UnknownIssue)?;
        if now_ms > issue.params.cash_out_deadline_ms || issue.shops_expired {
            return Err(Reason::CashOutDeadlinePassed);
        }
        let account = &self.accounts[&shop];
        let before = account.cashed_out(issue_id);
        let after = before.checked_add(amount).ok_or(Reason::InsufficientBalance)?;
        let rate = issue.params.cash_out_fee;
        let fee = rate.fee_on(after).minus(rate.fee_on(before));
        let local = account.balance(issue_id, Kind::Local);
        let common = account.balance(issue_id, Kind::Common);
        if local.plus(common) < amount {
            return Err(Reason::InsufficientBalance);
        }
        let from_local = local.min(amount);
        let from_common = amount.minus(from_local);
        let account = self.accounts.get_mut(&shop).expect("signer admitted");
        if !from_local.is_zero() {
            account.debit(issue_id, Kind::Local, from_local);
        }
        if !from_common.is_zero() {
            account.debit(issue_id, Kind::Common, from_common);
        }
        match account.cashed_out.iter_mut().find(|(i, _)| *i == issue_id) {
            Some((_, total)) => *total = after,
            None => account.cashed_out.push((issue_id, after)),
        }
        let net = amount.minus(fee);
        let supply = &mut self.issues.get_mut(&issue_id).expect("issue").supply;
        supply.shops_local = supply.shops_local.minus(from_local);
        supply.shops_common = supply.shops_common.minus(from_common);
        supply.fees = supply.fees.plus(fee);
        supply.pending_cash_out = supply.pending_cash_out.plus(net);
        let cash_out = CashOut {
            shop,
            issue: issue_id,
            amount,
            fee,
            net,
            requested_ms: now_ms,
            status: CashOutStatus::Pending,
        };
        self.cash_outs.insert(id, cash_out);
        Ok(())
    }

    pub(super) fn settle(
        &mut self,
        id: TxId,
        cash_outs: &[TxId],
        transfer_date: &str,
        file_sha256: Hash32,
    ) -> Result<(), Reason> {
        if cash_outs.is_empty() || cash_outs.len() > SETTLE_REQUESTS_MAX {
            return Err(Reason::InvalidParameters);
        }
        if crate::time::parse_date(transfer_date).is_none() {
            return Err(Reason::InvalidParameters);
        }
        let mut sorted = cash_outs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != cash_outs.len() {
            return Err(Reason::InvalidParameters);
        }
        let mut total = Yen::ZERO;
        for cash_out_id in cash_outs {
            let cash_out = self.cash_outs.get(cash_out_id).ok_or(Reason::UnknownCashOut)?;
            if cash_out.status != CashOutStatus::Pending {
                return Err(Reason::CashOutNotPending);
            }
            total = total.plus(cash_out.net);
        }
        for cash_out_id in cash_outs {
            let cash_out = self.cash_outs.get_mut(cash_out_id).expect("checked above");
            cash_out.status =
                CashOutStatus::Paid { settlement: id, transfer_date: transfer_date.to_string() };
            let supply = &mut self.issues.get_mut(&cash_out.issue).expect("issue").supply;
            supply.pending_cash_out = supply.pending_cash_out.minus(cash_out.net);
            supply.paid_out = supply.paid_out.plus(cash_out.net);
        }
        let settlement = Settlement {
            cash_outs: cash_outs.to_vec(),
            transfer_date: transfer_date.to_string(),
            file_sha256,
            total,
        };
        self.settlements.insert(id, settlement);
        Ok(())
    }

    /// After spend-until, residents' unspent value expires; after the cash-out deadline,
    /// so does what shops did not cash out.
    pub(super) fn expire(&mut self, issue_id: IssueId, now_ms: u64) -> Result<(), Reason> {
        let issue = self.issues.get(&issue_id).ok_or(Reason::UnknownIssue)?;
        if now_ms <= issue.params.spend_until_ms {
            return Err(Reason::IssueNotEnded);
        }
        let residents = !issue.residents_expired;
        let shops = !issue.shops_expired && now_ms > issue.params.cash_out_deadline_ms;
        if !residents && !shops {
            return Err(Reason::AlreadyExpired);
        }
        let mut expired = Supply::default();
        for account in self.accounts.values_mut() {
            let is_shop = matches!(account.role, Role::Shop(_));
            let is_resident = matches!(account.role, Role::Resident { .. });
            if !((is_resident && residents) || (is_shop && shops)) {
                continue;
            }
            account.lots.retain(|lot| {
                if lot.issue != issue_id {
                    return true;
                }
                let bucket =
                    if is_shop { expired.shops_mut(lot.kind) } else { expired.residents_mut(lot.kind) };
                *bucket = bucket.plus(lot.amount);
                false
            });
        }
        let issue = self.issues.get_mut(&issue_id).expect("looked up above");
        let supply = &mut issue.supply;
        for kind in [Kind::Common, Kind::Local] {
            *supply.residents_mut(kind) = supply.residents_mut(kind).minus(*expired.residents_mut(kind));
            *supply.shops_mut(kind) = supply.shops_mut(kind).minus(*expired.shops_mut(kind));
            supply.expired = supply.expired.plus(*expired.residents_mut(kind)).plus(*expired.shops_mut(kind));
        }
        issue.residents_expired = true;
        issue.shops_expired |= shops;
        Ok(())
    }
}
