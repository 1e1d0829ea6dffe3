//! The ledger's state and the pure state transition `State::apply(tx, now)`.
//!
//! Every handler checks everything first and only then mutates, so a rejected
//! transaction leaves the state exactly as it was. Here: the state's types, admission
//! (refusals and roles) and dispatch; the handlers by rule area in `accounts`, `sales`,
//! `payments` and `cash_outs`; the invariants in `checks`. docs/RULES.md states each rule.

mod accounts;
mod cash;
mod cash_outs;
mod checks;
mod lottery;
mod payments;
mod replicas;

pub use cash::{CashClose, CounterDay, Deposit};
pub use lottery::{Lottery, LotteryPhase, LotteryResult};
pub use replicas::address_is_valid;
mod sales;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::hash::{AccountId, Hash32, TxId};
use crate::issue::{IssueId, IssueParams, IssueState, Kind, Supply, NAME_CHARS_MAX};
use crate::limits::{CLOCK_SKEW_MS_MAX, INVOICE_CHARS_MAX, SETTLE_REQUESTS_MAX, TTL_MS_MAX};
use crate::reason::{Outcome, Reason, Refusal};
use crate::signature::check_key;
use crate::tx::{Action, Delegation, Replica, ShopClass, VerifiedTx};
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
    /// A delegated key that may only take part in lottery draws it is named in.
    LotteryParty,
    /// A delegated town key that may only create issues.
    Issuer,
    /// A delegated key that signs nothing: it only reads the node's API, under the
    /// everything scope (docs/RULES.md §5).
    Auditor,
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
            Role::LotteryParty => "lottery_party",
            Role::Issuer => "issuer",
            Role::Auditor => "auditor",
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
    /// The producer genesis names: it signs the genesis block, and every block of a chain
    /// that names no replicas.
    pub producer: Option<AccountId>,
    /// The replicas, sorted by id, once the town named them (`set_replicas`): then a block
    /// must be signed by a voter's producer key.
    pub replicas: Vec<Replica>,
    pub accounts: HashMap<AccountId, Account>,
    pub resident_hashes: HashMap<Hash32, AccountId>,
    pub issues: BTreeMap<IssueId, IssueState>,
    pub payments: HashMap<TxId, Payment>,
    pub cash_outs: HashMap<TxId, CashOut>,
    pub settlements: HashMap<TxId, Settlement>,
    pub txs: HashMap<TxId, TxRecord>,
    /// The lotteries set on issues sold by lottery.
    pub lotteries: BTreeMap<IssueId, Lottery>,
    /// Per operator, per JST day (`YYYY-MM-DD`): the sales at that counter and its close.
    pub counter_days: HashMap<AccountId, BTreeMap<String, CounterDay>>,
    /// Bank deposits of sale days' cash, in the order the town recorded them.
    pub deposits: Vec<Deposit>,
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
                | Action::RegisterDelegate { .. }
                | Action::SetReplicas { .. }
                | Action::RecordDeposit { .. },
                Role::Town,
            ) => true,
            (Action::RegisterShop { .. }, Role::ShopRegistrar) => true,
            (Action::SettleCashOuts { .. }, Role::Settler) => true,
            (Action::CreateIssue { .. }, Role::Issuer) => true,
            (Action::SetLottery { .. }, Role::Town) => true,
            (
                Action::CommitLotterySecret { .. }
                | Action::RevealLotterySecret { .. }
                | Action::DrawLottery { .. },
                Role::Town | Role::LotteryParty,
            ) => true,
            (Action::ApplyLottery { .. }, Role::Resident { .. } | Role::Operator) => true,
            (
                Action::RegisterResident { .. }
                | Action::SellSets { .. }
                | Action::ReplaceKey { .. }
                | Action::CloseDay { .. },
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
                self.counter_is_open(signer, now_ms)?;
                self.sell_sets(*issue, *resident, *sets, *cash_received, now_ms)?;
                self.record_counter_sale(signer, *issue, *sets, *cash_received, now_ms);
                Ok(())
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
            Action::SetReplicas { replicas } => self.set_replicas(replicas),
            Action::SetLottery { issue, lottery } => self.set_lottery(*issue, lottery, now_ms),
            Action::CommitLotterySecret { issue, commitment } => {
                self.commit_lottery_secret(signer, *issue, *commitment, now_ms)
            }
            Action::ApplyLottery { issue, resident, sets } => {
                self.apply_lottery(signer, *issue, *resident, *sets, now_ms)
            }
            Action::RevealLotterySecret { issue, secret } => {
                self.reveal_lottery_secret(signer, *issue, *secret, now_ms)
            }
            Action::DrawLottery { issue } => self.draw_lottery(signer, *issue, now_ms),
            Action::CloseDay { day, sales, expected, counted } => {
                let count = cash::Count { day, sales, expected: *expected, counted: *counted };
                self.close_day(tx.id, signer, count, now_ms)
            }
            Action::RecordDeposit { day, deposited_on, amount, slip_reference } => {
                self.record_deposit(tx.id, day, deposited_on, *amount, slip_reference, now_ms)
            }
            Action::RegisterDelegate { delegate, name, delegation } => {
                let role = match delegation {
                    Delegation::ShopRegistrar => Role::ShopRegistrar,
                    Delegation::Settler => Role::Settler,
                    Delegation::LotteryParty => Role::LotteryParty,
                    Delegation::Issuer => Role::Issuer,
                    Delegation::Auditor => Role::Auditor,
                };
                self.register(*delegate, role, name, None)
            }
        }
    }

    /// Whether `key` may sign the next block: a voter's producer key once the town named
    /// replicas, else the producer genesis named.
    pub fn may_produce(&self, key: &AccountId) -> bool {
        if self.replicas.is_empty() {
            return self.producer.as_ref() == Some(key);
        }
        self.replicas.iter().any(|r| r.voter && r.producer == *key)
    }

    /// The account that now holds a resident's identity, following key replacements.
    pub fn current_key(&self, mut key: AccountId) -> AccountId {
        // Each replacement creates a new account, so the chain is finite and acyclic.
        while let Some(next) = self.accounts.get(&key).and_then(|a| a.replaced_by) {
            key = next;
        }
        key
    }
}
