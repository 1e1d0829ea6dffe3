//! Payments and refunds: spending order by shop class and expiry, refunds bounded by
//! what the payment took.

use super::*;

impl State {
    /// The lots a resident may spend at a shop of `class` now, in spending order: local
    /// value first (local shops only), then common; within a kind the lot that expires
    /// first.
    pub fn spendable_lots(&self, account: &Account, class: ShopClass, now_ms: u64) -> Vec<Lot> {
        let mut lots: Vec<(u8, u64, Lot)> = account
            .lots
            .iter()
            .filter(|lot| class == ShopClass::Local || lot.kind == Kind::Common)
            .filter_map(|lot| {
                let issue = self.issues.get(&lot.issue)?;
                let live = !issue.residents_expired && now_ms <= issue.params.spend_until_ms;
                let kind_rank = if lot.kind == Kind::Local { 0 } else { 1 };
                live.then_some((kind_rank, issue.params.spend_until_ms, *lot))
            })
            .collect();
        lots.sort_by_key(|(rank, until, lot)| (*rank, *until, lot.issue));
        lots.into_iter().map(|(_, _, lot)| lot).collect()
    }

    pub(super) fn pay(
        &mut self,
        id: TxId,
        payer: AccountId,
        shop: AccountId,
        amount: Yen,
        invoice: Option<&str>,
        now_ms: u64,
    ) -> Result<(), Reason> {
        if amount.is_zero() {
            return Err(Reason::ZeroAmount);
        }
        if invoice.is_some_and(|i| i.is_empty() || i.chars().count() > INVOICE_CHARS_MAX) {
            return Err(Reason::InvalidParameters);
        }
        let shop_account = self.accounts.get(&shop).ok_or(Reason::NotAShop)?;
        let Role::Shop(class) = shop_account.role else {
            return Err(Reason::NotAShop);
        };
        if shop_account.frozen {
            return Err(Reason::PayeeFrozen);
        }
        let payer_account = self.accounts.get(&payer).expect("signer admitted");
        let mut takes = Vec::new();
        let mut left = amount;
        for lot in self.spendable_lots(payer_account, class, now_ms) {
            if left.is_zero() {
                break;
            }
            let take = lot.amount.min(left);
            left = left.minus(take);
            takes.push(Lot { amount: take, ..lot });
        }
        if !left.is_zero() {
            return Err(Reason::InsufficientBalance);
        }
        for take in &takes {
            self.move_resident_to_shop(payer, shop, *take);
        }
        let invoice = invoice.map(str::to_string);
        let payment = Payment { payer, shop, amount, takes, refunded: Yen::ZERO, invoice, at_ms: now_ms };
        self.payments.insert(id, payment);
        Ok(())
    }

    pub(super) fn move_resident_to_shop(&mut self, resident: AccountId, shop: AccountId, lot: Lot) {
        self.accounts.get_mut(&resident).expect("resident").debit(lot.issue, lot.kind, lot.amount);
        self.accounts.get_mut(&shop).expect("shop").credit(lot.issue, lot.kind, lot.amount);
        let supply = &mut self.issues.get_mut(&lot.issue).expect("issue").supply;
        *supply.residents_mut(lot.kind) = supply.residents_mut(lot.kind).minus(lot.amount);
        *supply.shops_mut(lot.kind) = supply.shops_mut(lot.kind).plus(lot.amount);
    }

    /// A refund restores value in the reverse order it was spent: the last lot taken is
    /// the first given back.
    pub(super) fn refund(&mut self, shop: AccountId, payment_id: TxId, amount: Yen) -> Result<(), Reason> {
        if amount.is_zero() {
            return Err(Reason::ZeroAmount);
        }
        let payment = self.payments.get(&payment_id).ok_or(Reason::UnknownPayment)?;
        if payment.shop != shop {
            return Err(Reason::NotYourPayment);
        }
        let refundable = payment.amount.minus(payment.refunded);
        if amount > refundable {
            return Err(Reason::RefundExceedsPayment);
        }
        let mut skip = payment.refunded;
        let mut left = amount;
        let mut restores = Vec::new();
        for take in payment.takes.iter().rev() {
            let skipped = take.amount.min(skip);
            skip = skip.minus(skipped);
            let restore = take.amount.minus(skipped).min(left);
            if !restore.is_zero() {
                restores.push(Lot { amount: restore, ..*take });
                left = left.minus(restore);
            }
        }
        assert!(left.is_zero(), "refund within the refundable amount must be restorable");
        let shop_account = self.accounts.get(&shop).expect("signer admitted");
        for lot in &restores {
            if self.issues[&lot.issue].residents_expired {
                return Err(Reason::IssueExpired);
            }
            if shop_account.balance(lot.issue, lot.kind) < lot.amount {
                return Err(Reason::ShopBalanceInsufficient);
            }
        }
        let resident = self.current_key(payment.payer);
        for lot in restores {
            self.accounts.get_mut(&shop).expect("shop").debit(lot.issue, lot.kind, lot.amount);
            self.accounts.get_mut(&resident).expect("payer").credit(lot.issue, lot.kind, lot.amount);
            let supply = &mut self.issues.get_mut(&lot.issue).expect("issue").supply;
            *supply.shops_mut(lot.kind) = supply.shops_mut(lot.kind).minus(lot.amount);
            *supply.residents_mut(lot.kind) = supply.residents_mut(lot.kind).plus(lot.amount);
        }
        let payment = self.payments.get_mut(&payment_id).expect("looked up above");
        payment.refunded = payment.refunded.plus(amount);
        Ok(())
    }
}
