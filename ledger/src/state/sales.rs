//! Issues and their sale: creating an issue, selling sets within the cap and the supply.

use super::*;

impl State {
    pub(super) fn create_issue(&mut self, params: &IssueParams) -> Result<(), Reason> {
        if !params.is_valid() {
            return Err(Reason::InvalidParameters);
        }
        if self.issues.contains_key(&params.id) {
            return Err(Reason::IssueExists);
        }
        let state = IssueState {
            params: params.clone(),
            supply: Supply::default(),
            residents_expired: false,
            shops_expired: false,
        };
        self.issues.insert(params.id, state);
        Ok(())
    }

    /// Who may buy (or apply for) `sets` of an issue: a registered resident, not replaced,
    /// not frozen, a worker only where the issue allows, at least one set: one rule for a
    /// sale and a lottery application. The buyer's account.
    pub(super) fn check_buyer(
        &self,
        params: &IssueParams,
        resident: &AccountId,
        sets: u32,
    ) -> Result<&Account, Reason> {
        let account = self.accounts.get(resident).ok_or(Reason::UnknownAccount)?;
        let Role::Resident { worker } = account.role else {
            return Err(Reason::NotAResident);
        };
        if account.replaced_by.is_some() {
            return Err(Reason::AccountRevoked);
        }
        if account.frozen {
            return Err(Reason::AccountFrozen);
        }
        if worker && !params.workers_may_buy {
            return Err(Reason::WorkersNotEligible);
        }
        if sets == 0 {
            return Err(Reason::InvalidParameters);
        }
        Ok(account)
    }

    pub(super) fn sell_sets(
        &mut self,
        issue_id: IssueId,
        resident: AccountId,
        sets: u32,
        cash: Yen,
        now_ms: u64,
    ) -> Result<(), Reason> {
        let issue = self.issues.get(&issue_id).ok_or(Reason::UnknownIssue)?;
        let params = &issue.params;
        if now_ms < params.sale_start_ms || now_ms >= params.sale_end_ms {
            return Err(Reason::SaleNotOpen);
        }
        let account = self.check_buyer(params, &resident, sets)?;
        let phase = self.lottery_sale_phase(issue_id, &resident, sets, now_ms)?;
        if issue.sets_left() == 0 {
            return Err(Reason::SoldOut);
        }
        if sets > issue.sets_left() {
            return Err(Reason::NotEnoughSetsLeft);
        }
        let bought = account.sets_bought(issue_id);
        if bought.checked_add(sets).is_none_or(|total| total > params.max_sets_per_resident) {
            return Err(Reason::OverCap);
        }
        // Sets are bounded by total_sets, for which is_valid checked every product fits.
        let price = params.price.checked_mul(u64::from(sets)).expect("checked at create");
        if cash != price {
            return Err(Reason::CashMismatch);
        }
        let common = params.common_per_set.checked_mul(u64::from(sets)).expect("checked");
        let local = params.local_per_set.checked_mul(u64::from(sets)).expect("checked");

        let issue = self.issues.get_mut(&issue_id).expect("looked up above");
        let supply = &mut issue.supply;
        supply.sets_sold += sets;
        supply.cash_received = supply.cash_received.plus(cash);
        supply.issued_common = supply.issued_common.plus(common);
        supply.issued_local = supply.issued_local.plus(local);
        supply.residents_common = supply.residents_common.plus(common);
        supply.residents_local = supply.residents_local.plus(local);
        let account = self.accounts.get_mut(&resident).expect("looked up above");
        account.credit(issue_id, Kind::Common, common);
        account.credit(issue_id, Kind::Local, local);
        match account.bought.iter_mut().find(|(i, _)| *i == issue_id) {
            Some((_, n)) => *n += sets,
            None => account.bought.push((issue_id, sets)),
        }
        if let Some(phase) = phase {
            self.record_lottery_sale(issue_id, &resident, sets, phase);
        }
        Ok(())
    }
}
