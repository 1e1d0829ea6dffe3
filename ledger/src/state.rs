//! The ledger's state and the pure state transition `State::apply(tx, now)`.
//!
//! Every handler checks everything first and only then mutates, so a rejected
//! transaction leaves the state exactly as it was.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::hash::{AccountId, Hash32, TxId};
use crate::issue::{IssueParams, IssueState, Supply};
use crate::reason::{Outcome, Reason, Refusal};
use crate::signature::check_key;
use crate::tx::{
    Action, Delegation, IssueId, Kind, ShopClass, VerifiedTx, CLOCK_SKEW_MS_MAX, INVOICE_CHARS_MAX,
    NAME_CHARS_MAX, SETTLE_REQUESTS_MAX, TTL_MS_MAX,
};
use crate::yen::Yen;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Town,
    Operator,
    Shop(ShopClass),
    Resident {
        worker: bool,
    },
    /// A delegated town key that may only register shops.
    ShopRegistrar,
    /// A delegated town key that may only settle cash-outs.
    Settler,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Town => "town",
            Role::Operator => "operator",
            Role::Shop(ShopClass::Large) => "shop_large",
            Role::Shop(ShopClass::Local) => "shop_local",
            Role::Resident { worker: false } => "resident",
            Role::Resident { worker: true } => "worker",
            Role::ShopRegistrar => "shop_registrar",
            Role::Settler => "settler",
        }
    }
}

/// Value of one issue and kind held by one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub issue: IssueId,
    pub kind: Kind,
    pub amount: Yen,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub role: Role,
    pub name: String,
    pub frozen: bool,
    /// The town froze it (not an operator): only the town may unfreeze it, and a key
    /// replacement carries the freeze over.
    pub frozen_by_town: bool,
    /// Set when an operator replaced this (lost) key; the account is then revoked.
    pub replaced_by: Option<AccountId>,
    /// Residents: spendable value. Shops: value received and not yet cashed out.
    pub lots: Vec<Lot>,
    /// Residents: sets bought per issue.
    pub bought: Vec<(IssueId, u32)>,
    pub resident_hash: Option<Hash32>,
    /// Shops: everything requested for cash-out per issue, on which the fee is charged.
    pub cashed_out: Vec<(IssueId, Yen)>,
}

impl Account {
    fn new(role: Role, name: String) -> Account {
        Account {
            role,
            name,
            frozen: false,
            frozen_by_town: false,
            replaced_by: None,
            lots: Vec::new(),
            bought: Vec::new(),
            resident_hash: None,
            cashed_out: Vec::new(),
        }
    }

    pub fn balance(&self, issue: IssueId, kind: Kind) -> Yen {
        self.lots
            .iter()
            .filter(|l| l.issue == issue && l.kind == kind)
            .fold(Yen::ZERO, |sum, l| sum.plus(l.amount))
    }

    pub fn total(&self) -> Yen {
        self.lots.iter().fold(Yen::ZERO, |sum, l| sum.plus(l.amount))
    }

    pub fn sets_bought(&self, issue: IssueId) -> u32 {
        self.bought.iter().find(|(i, _)| *i == issue).map_or(0, |(_, n)| *n)
    }

    pub fn cashed_out(&self, issue: IssueId) -> Yen {
        self.cashed_out.iter().find(|(i, _)| *i == issue).map_or(Yen::ZERO, |(_, y)| *y)
    }

    fn credit(&mut self, issue: IssueId, kind: Kind, amount: Yen) {
        if amount.is_zero() {
            return;
        }
        match self.lots.iter_mut().find(|l| l.issue == issue && l.kind == kind) {
            Some(lot) => lot.amount = lot.amount.plus(amount),
            None => self.lots.push(Lot { issue, kind, amount }),
        }
    }

    fn debit(&mut self, issue: IssueId, kind: Kind, amount: Yen) {
        let index = self
            .lots
            .iter()
            .position(|l| l.issue == issue && l.kind == kind)
            .expect("debit of a lot the account does not hold");
        let lot = &mut self.lots[index];
        lot.amount = lot.amount.minus(amount);
        if lot.amount.is_zero() {
            self.lots.remove(index);
        }
    }
}

/// A payment as the ledger remembers it, so refunds can restore what it took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub payer: AccountId,
    pub shop: AccountId,
    pub amount: Yen,
    /// In the order they were spent.
    pub takes: Vec<Lot>,
    pub refunded: Yen,
    pub invoice: Option<String>,
    pub at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CashOutStatus {
    Pending,
    Paid { settlement: TxId, transfer_date: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashOut {
    pub shop: AccountId,
    pub issue: IssueId,
    pub amount: Yen,
    pub fee: Yen,
    pub net: Yen,
    pub requested_ms: u64,
    pub status: CashOutStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub cash_outs: Vec<TxId>,
    pub transfer_date: String,
    pub file_sha256: Hash32,
    pub total: Yen,
}

/// Where a committed transaction is, and what happened to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    pub height: u64,
    pub index: u32,
    pub outcome: Outcome,
}

/// Everything the chain implies, rebuilt by replaying blocks from genesis.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub chain_id: String,
    pub town: Option<AccountId>,
    pub producer: Option<AccountId>,
    pub accounts: HashMap<AccountId, Account>,
    pub resident_hashes: HashMap<Hash32, AccountId>,
    pub issues: BTreeMap<IssueId, IssueState>,
    pub payments: HashMap<TxId, Payment>,
    pub cash_outs: HashMap<TxId, CashOut>,
    pub settlements: HashMap<TxId, Settlement>,
    pub txs: HashMap<TxId, TxRecord>,
}

/// Where in the chain a transaction is being applied.
#[derive(Clone, Copy, Debug)]
pub struct ApplyAt {
    pub now_ms: u64,
    pub height: u64,
    pub index: u32,
}

impl State {
    pub fn new(chain_id: &str) -> State {
        assert!(crate::hash::chain_id_is_valid(chain_id), "unchecked chain id {chain_id:?}");
        State { chain_id: chain_id.to_string(), ..State::default() }
    }

    /// Applies one verified transaction at block time `at.now_ms`. `Err` means refused:
    /// the transaction must not enter a block and nothing changed. `Ok` means it enters
    /// the block with this outcome; a rejection changed nothing but the record of it.
    pub fn apply(&mut self, tx: &VerifiedTx, at: ApplyAt) -> Result<Outcome, Refusal> {
        if self.txs.contains_key(&tx.id) {
            // A replay is never applied twice; callers answer with the first outcome.
            return Err(Refusal::Duplicate);
        }
        self.admit(tx, at.now_ms)?;
        let outcome = match self.execute(tx, at.now_ms) {
            Ok(()) => Outcome::Applied,
            Err(reason) => Outcome::Rejected(reason),
        };
        let record = TxRecord { height: at.height, index: at.index, outcome };
        self.txs.insert(tx.id, record);
        Ok(outcome)
    }

    /// Checks that refuse a transaction outright: chain, time-to-live, signer and role.
    fn admit(&mut self, tx: &VerifiedTx, now_ms: u64) -> Result<(), Refusal> {
        let body = &tx.body;
        if body.chain_id != self.chain_id {
            return Err(Refusal::WrongChain);
        }
        if body.ttl_ms > TTL_MS_MAX {
            return Err(Refusal::TtlTooLong);
        }
        if body.created_ms > now_ms.saturating_add(CLOCK_SKEW_MS_MAX) {
            return Err(Refusal::NotYetValid);
        }
        if now_ms > body.created_ms.saturating_add(u64::from(body.ttl_ms)) {
            return Err(Refusal::TtlExpired);
        }
        let signer = tx.signed.signer;
        let Some(town) = self.town else {
            return match body.action {
                Action::Genesis { town, .. } if town == signer => Ok(()),
                _ => Err(Refusal::NoGenesis),
            };
        };
        let account = self.accounts.get(&signer).ok_or(Refusal::UnknownSigner)?;
        if account.replaced_by.is_some() {
            return Err(Refusal::KeyRevoked);
        }
        let allowed = match (&body.action, account.role) {
            (Action::Genesis { .. }, _) => false,
            (
                Action::RegisterOperator { .. }
                | Action::RegisterShop { .. }
                | Action::CreateIssue { .. }
                | Action::SettleCashOuts { .. }
                | Action::ExpireIssue { .. }
                | Action::RegisterDelegate { .. },
                Role::Town,
            ) => true,
            (Action::RegisterShop { .. }, Role::ShopRegistrar) => true,
            (Action::SettleCashOuts { .. }, Role::Settler) => true,
            (
                Action::RegisterResident { .. } | Action::SellSets { .. } | Action::ReplaceKey { .. },
                Role::Operator,
            ) => true,
            (Action::Pay { .. }, Role::Resident { .. }) => true,
            (Action::Refund { .. } | Action::RequestCashOut { .. }, Role::Shop(_)) => true,
            (Action::Freeze { account } | Action::Unfreeze { account }, role) => {
                self.may_freeze(role, account, town)
            }
            _ => false,
        };
        if !allowed {
            return Err(Refusal::WrongRole);
        }
        Ok(())
    }

    /// The town may freeze anyone but itself (a frozen delegate key is a revoked one); an
    /// operator may freeze residents (a lost card) and lift such a freeze, but not the
    /// town's (`set_frozen`).
    fn may_freeze(&self, role: Role, target: &AccountId, town: AccountId) -> bool {
        match role {
            Role::Town => *target != town,
            Role::Operator => {
                matches!(self.accounts.get(target).map(|a| a.role), Some(Role::Resident { .. }))
            }
            _ => false,
        }
    }

    fn execute(&mut self, tx: &VerifiedTx, now_ms: u64) -> Result<(), Reason> {
        let signer = tx.signed.signer;
        if self.accounts.get(&signer).is_some_and(|a| a.frozen) {
            // Unfreezing is the way out of a frozen state and is done by others.
            return Err(Reason::AccountFrozen);
        }
        match &tx.body.action {
            Action::Genesis { town, producer } => {
                self.town = Some(*town);
                self.producer = Some(*producer);
                self.accounts.insert(*town, Account::new(Role::Town, "town".into()));
                Ok(())
            }
            Action::RegisterOperator { operator, name } => {
                self.register(*operator, Role::Operator, name, None)
            }
            Action::RegisterShop { shop, name, class } => {
                self.register(*shop, Role::Shop(*class), name, None)
            }
            Action::RegisterResident { resident, resident_hash, worker } => {
                let role = Role::Resident { worker: *worker };
                self.register(*resident, role, "", Some(*resident_hash))
            }
            Action::CreateIssue { issue } => self.create_issue(issue),
            Action::SellSets { issue, resident, sets, cash_received } => {
                self.sell_sets(*issue, *resident, *sets, *cash_received, now_ms)
            }
            Action::Pay { shop, amount, invoice } => {
                self.pay(tx.id, signer, *shop, *amount, invoice.as_deref(), now_ms)
            }
            Action::Refund { payment, amount } => self.refund(signer, *payment, *amount),
            Action::RequestCashOut { issue, amount } => {
                self.request_cash_out(tx.id, signer, *issue, *amount, now_ms)
            }
            Action::SettleCashOuts { cash_outs, transfer_date, file_sha256 } => {
                self.settle(tx.id, cash_outs, transfer_date, *file_sha256)
            }
            Action::ExpireIssue { issue } => self.expire(*issue, now_ms),
            Action::ReplaceKey { old, new } => self.replace_key(*old, *new),
            Action::Freeze { account } => self.set_frozen(signer, *account, true),
            Action::Unfreeze { account } => self.set_frozen(signer, *account, false),
            Action::RegisterDelegate { delegate, name, delegation } => {
                let role = match delegation {
                    Delegation::ShopRegistrar => Role::ShopRegistrar,
                    Delegation::Settler => Role::Settler,
                };
                self.register(*delegate, role, name, None)
            }
        }
    }

    fn register(
        &mut self,
        key: AccountId,
        role: Role,
        name: &str,
        resident_hash: Option<Hash32>,
    ) -> Result<(), Reason> {
        let is_resident = matches!(role, Role::Resident { .. });
        if !is_resident && (name.trim().is_empty() || name.chars().count() > NAME_CHARS_MAX) {
            return Err(Reason::InvalidParameters);
        }
        if check_key(&key).is_err() {
            return Err(Reason::InvalidParameters);
        }
        if self.accounts.contains_key(&key) {
            return Err(Reason::AccountExists);
        }
        if let Some(hash) = resident_hash {
            if self.resident_hashes.contains_key(&hash) {
                return Err(Reason::ResidentAlreadyRegistered);
            }
            self.resident_hashes.insert(hash, key);
        }
        let mut account = Account::new(role, name.to_string());
        account.resident_hash = resident_hash;
        self.accounts.insert(key, account);
        Ok(())
    }

    fn create_issue(&mut self, params: &IssueParams) -> Result<(), Reason> {
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

    fn sell_sets(
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
        let account = self.accounts.get(&resident).ok_or(Reason::UnknownAccount)?;
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
        Ok(())
    }

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

    fn pay(
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

    fn move_resident_to_shop(&mut self, resident: AccountId, shop: AccountId, lot: Lot) {
        self.accounts.get_mut(&resident).expect("resident").debit(lot.issue, lot.kind, lot.amount);
        self.accounts.get_mut(&shop).expect("shop").credit(lot.issue, lot.kind, lot.amount);
        let supply = &mut self.issues.get_mut(&lot.issue).expect("issue").supply;
        *supply.residents_mut(lot.kind) = supply.residents_mut(lot.kind).minus(lot.amount);
        *supply.shops_mut(lot.kind) = supply.shops_mut(lot.kind).plus(lot.amount);
    }

    /// The account that now holds a resident's identity, following key replacements.
    pub fn current_key(&self, mut key: AccountId) -> AccountId {
        // Each replacement creates a new account, so the chain is finite and acyclic.
        while let Some(next) = self.accounts.get(&key).and_then(|a| a.replaced_by) {
            key = next;
        }
        key
    }

    /// A refund restores value in the reverse order it was spent: the last lot taken is
    /// the first given back.
    fn refund(&mut self, shop: AccountId, payment_id: TxId, amount: Yen) -> Result<(), Reason> {
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

    /// Moves `amount` of the shop's value in `issue` (local first, then common) to
    /// pending cash-out, less the issue's fee. The fee is charged on everything the shop
    /// has cashed out of the issue so far, rounded down to the yen once: this request pays
    /// `fee(total after) - fee(total before)`. So many small cash-outs pay exactly what one
    /// large one would (rounding per request would let ¥199 at 0.5% go free).
    fn request_cash_out(
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

    fn settle(
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
    fn expire(&mut self, issue_id: IssueId, now_ms: u64) -> Result<(), Reason> {
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

    /// A lost card: the resident's identity, value and purchase counts move to a new key,
    /// and the old key is revoked.
    fn replace_key(&mut self, old: AccountId, new: AccountId) -> Result<(), Reason> {
        let account = self.accounts.get(&old).ok_or(Reason::UnknownAccount)?;
        if !matches!(account.role, Role::Resident { .. }) {
            return Err(Reason::NotAResident);
        }
        if account.replaced_by.is_some() {
            return Err(Reason::AccountRevoked);
        }
        if self.accounts.contains_key(&new) || check_key(&new).is_err() {
            return Err(Reason::AccountExists);
        }
        let old_account = self.accounts.get_mut(&old).expect("looked up above");
        let mut moved = old_account.clone();
        old_account.replaced_by = Some(new);
        old_account.lots.clear();
        old_account.bought.clear();
        // A new card lifts an operator's freeze (the lost card), never the town's.
        moved.frozen = moved.frozen_by_town;
        if let Some(hash) = moved.resident_hash {
            self.resident_hashes.insert(hash, new);
        }
        self.accounts.insert(new, moved);
        Ok(())
    }

    /// A town freeze marks the account so that only the town lifts it; the town may also
    /// turn an operator's freeze into its own.
    fn set_frozen(&mut self, signer: AccountId, key: AccountId, frozen: bool) -> Result<(), Reason> {
        let by_town = self.town == Some(signer);
        let account = self.accounts.get_mut(&key).ok_or(Reason::UnknownAccount)?;
        match (frozen, by_town) {
            (true, true) if account.frozen_by_town => Err(Reason::NoChange),
            (true, false) | (false, _) if account.frozen == frozen => Err(Reason::NoChange),
            (false, false) if account.frozen_by_town => Err(Reason::FrozenByTown),
            _ => {
                account.frozen = frozen;
                account.frozen_by_town = frozen && by_town;
                Ok(())
            }
        }
    }

    /// The per-issue supply invariant, from the running totals. Cheap: run after every
    /// block. A failure is a bug in the ledger, never bad input.
    pub fn assert_supply_invariant(&self) {
        for (id, issue) in &self.issues {
            let s = &issue.supply;
            assert!(
                s.invariant_holds(),
                "supply invariant broken for issue {id}: issued {} != accounted {}",
                s.issued(),
                s.accounted()
            );
            assert!(s.sets_sold <= issue.params.total_sets, "issue {id} sold beyond its cap");
            let price = issue.params.price.checked_mul(u64::from(s.sets_sold)).expect("checked");
            assert_eq!(s.cash_received, price, "issue {id}: cash received != sets sold x price");
        }
    }

    /// Recomputes every issue's holdings from the accounts themselves and compares them
    /// with the running totals, and checks each resident's cap. O(accounts): for tests
    /// and audits.
    pub fn check_full(&self) -> Result<(), String> {
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
