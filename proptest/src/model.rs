//! A plain reference model of the money rules: maps of balances and counters, written
//! from docs/RULES.md without reusing the ledger's code. The state-machine test
//! (`crate::machine`) compares every outcome and every balance of the real ledger with it.
//!
//! Accounts are numbered keys (`Acct`); payments and cash-outs are named by the nonce of
//! the transaction that made them (`Ref`), so a test sequence can say "refund payment 17"
//! before anything is signed.

use std::collections::{BTreeMap, BTreeSet};

use machi_ledger::{sha256, IssueParams, Kind, Reason, Refusal, ShopClass, NAME_CHARS_MAX};

/// A key, by number: the test's key table turns it into an account id.
pub type Acct = usize;

/// A transaction by its nonce (unique within a test sequence).
pub type Ref = u64;

/// Longest invoice a payment may carry, in characters (docs/RULES.md, "pay").
const INVOICE_CHARS_MAX: usize = 64;
/// Most cash-outs one settlement may mark paid.
const SETTLE_REQUESTS_MAX: usize = 1_000;
/// The largest cash-out fee: 100%, in basis points.
const FEE_BP_MAX: u64 = 10_000;
/// Most cash a close or a deposit may state (docs/RULES.md, "close day").
pub const CASH_MAX: u64 = 10_000_000_000;
/// Japan's offset from UTC, and a day, in milliseconds.
const JST_MS: u64 = 9 * 60 * 60 * 1000;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// A JST calendar day, as days since 1970-01-01.
pub type Day = u64;

/// The JST day of a block time.
pub fn jst_day(now: u64) -> Day {
    (now + JST_MS) / DAY_MS
}

/// One issue's sales at a counter on a day: (issue, sets, cash), as a close states them.
pub type DaySale = (u32, u32, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MRole {
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
    /// A delegated key that may only take part in the lotteries it is named in.
    LotteryParty,
}

#[derive(Clone, Debug)]
pub struct MAccount {
    pub role: MRole,
    pub frozen: bool,
    /// Frozen by the town: only the town lifts it, and a new card keeps it.
    pub town_froze: bool,
    pub replaced_by: Option<Acct>,
}

impl MAccount {
    pub fn new(role: MRole) -> MAccount {
        MAccount { role, frozen: false, town_froze: false, replaced_by: None }
    }
}

#[derive(Clone, Debug)]
pub struct MIssue {
    pub params: IssueParams,
    pub sold: u32,
    pub residents_expired: bool,
    pub shops_expired: bool,
}

#[derive(Clone, Debug)]
pub struct MPayment {
    pub payer: Acct,
    pub shop: Acct,
    pub amount: u64,
    pub takes: Vec<(u32, Kind, u64)>,
    pub refunded: u64,
}

#[derive(Clone, Debug)]
pub struct MCashOut {
    pub issue: u32,
    pub net: u64,
    pub pending: bool,
}

/// The part of a transaction around its action: one defect each, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    Fresh,
    /// Created more than its time-to-live before the block.
    Stale,
    /// Created further ahead of the block than the clock skew allows.
    Early,
    /// A time-to-live over 24 h.
    LongTtl,
    /// Names another chain.
    OtherChain,
}

/// The invoice a payment carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invoice {
    None,
    Good,
    Empty,
    TooLong,
}

impl Invoice {
    /// The text the test signs, and whether the rules accept it.
    pub fn text(self) -> (Option<String>, bool) {
        match self {
            Invoice::None => (None, true),
            Invoice::Good => (Some("inv-0001".into()), true),
            Invoice::Empty => (Some(String::new()), false),
            Invoice::TooLong => (Some("x".repeat(INVOICE_CHARS_MAX + 1)), false),
        }
    }
}

/// What a transaction asks, in the model's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MAction {
    Sell {
        issue: u32,
        resident: Acct,
        sets: u32,
        cash: u64,
    },
    Pay {
        shop: Acct,
        amount: u64,
        invoice: Invoice,
    },
    Refund {
        payment: Ref,
        amount: u64,
    },
    CashOut {
        issue: u32,
        amount: u64,
    },
    /// `real_date`: the transfer date is a day of the calendar.
    Settle {
        cash_outs: Vec<Ref>,
        real_date: bool,
    },
    Expire {
        issue: u32,
    },
    Freeze {
        account: Acct,
    },
    Unfreeze {
        account: Acct,
    },
    ReplaceKey {
        old: Acct,
        new: Acct,
    },
    /// `number`: the resident number, as the test's stand-in for its keyed hash.
    RegisterResident {
        resident: Acct,
        number: u8,
        worker: bool,
    },
    /// `named`: the shop has a name (a blank name is refused).
    RegisterShop {
        shop: Acct,
        class: ShopClass,
        named: bool,
    },
    CreateIssue {
        issue: IssueParams,
    },
    /// `day: None` is a date that is not one (2027-02-30).
    CloseDay {
        day: Option<Day>,
        sales: Vec<DaySale>,
        expected: u64,
        counted: u64,
    },
    /// `slip: None` is a blank slip reference; `Some(n)` the slip numbered n.
    RecordDeposit {
        day: Option<Day>,
        deposited_on: Option<Day>,
        amount: u64,
        slip: Option<u8>,
    },
    /// `times`: commit deadline, application start and end, reveal end, winners' end,
    /// waiting list's end.
    SetLottery {
        issue: u32,
        parties: Vec<Acct>,
        times: [u64; 6],
    },
    /// The secret is 32 bytes of `secret`; the commitment its SHA-256.
    CommitSecret {
        issue: u32,
        secret: u8,
    },
    ApplyLottery {
        issue: u32,
        resident: Acct,
        sets: u32,
    },
    RevealSecret {
        issue: u32,
        secret: u8,
    },
    Draw {
        issue: u32,
    },
}

/// Applicants in draw order with sets: the winners' won, the waiting list's applied for.
pub type Drawn = (Vec<(Acct, u32)>, Vec<(Acct, u32)>);

/// A lottery on an issue (docs/RULES.md, "Lottery sales").
#[derive(Clone, Debug)]
pub struct MLottery {
    pub parties: Vec<Acct>,
    pub times: [u64; 6],
    pub committed: Vec<Option<u8>>,
    pub revealed: Vec<bool>,
    /// Sets applied for, by the key that holds the application.
    pub apps: BTreeMap<Acct, u32>,
    /// Once drawn: the winners with the sets they won, then the waiting list with the
    /// sets they applied for, each in draw order.
    pub drawn: Option<Drawn>,
    /// After the draw, a new card → the key that applied.
    pub holders: BTreeMap<Acct, Acct>,
    pub bought_winners: BTreeMap<Acct, u32>,
    pub bought_waiting: BTreeMap<Acct, u32>,
    pub first_come: u32,
}

impl MLottery {
    fn ready(&self) -> bool {
        self.committed.iter().all(Option::is_some)
    }

    /// The waiting list's allotment of the sets the winners left: each what they asked,
    /// the last the remainder.
    pub fn waiting_allotment(&self) -> Vec<(Acct, u32)> {
        let Some((winners, waiting)) = &self.drawn else { return Vec::new() };
        let won: u32 = winners.iter().map(|w| w.1).sum();
        let mut left = won - self.bought_winners.values().sum::<u32>();
        let mut out = Vec::new();
        for &(acct, applied) in waiting {
            if left == 0 {
                break;
            }
            let give = applied.min(left);
            left -= give;
            out.push((acct, give));
        }
        out
    }
}

/// RFC 6962's tree hash over byte leaves.
fn tree_hash(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves {
        [] => sha256(&[]).0,
        [leaf] => sha256(&[&[0u8][..], leaf].concat()).0,
        _ => {
            let mut k = 1;
            while k * 2 < leaves.len() {
                k *= 2;
            }
            let (l, r) = (tree_hash(&leaves[..k]), tree_hash(&leaves[k..]));
            sha256(&[&[1u8][..], &l, &r].concat()).0
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MTx {
    pub nonce: Ref,
    pub signer: Acct,
    pub envelope: Envelope,
    pub action: MAction,
}

/// What the model expects of one transaction: refused, or in a block applied (`None`)
/// or rejected with a reason.
pub type Expect = Result<Option<Reason>, Refusal>;

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub accounts: BTreeMap<Acct, MAccount>,
    pub balances: BTreeMap<(Acct, u32, Kind), u64>,
    pub bought: BTreeMap<(Acct, u32), u32>,
    pub resident_numbers: BTreeSet<u8>,
    pub issues: BTreeMap<u32, MIssue>,
    pub payments: BTreeMap<Ref, MPayment>,
    pub cash_outs: BTreeMap<Ref, MCashOut>,
    pub expired: BTreeMap<u32, u64>,
    pub fees: BTreeMap<u32, u64>,
    /// Everything each shop asked to cash out, per issue: the fee is on this total.
    pub cashed_out: BTreeMap<(Acct, u32), u64>,
    pub pending: BTreeMap<u32, u64>,
    pub paid: BTreeMap<u32, u64>,
    /// Each counter's applied sales per day, by issue: (sets, cash).
    pub counter_sales: BTreeMap<(Acct, Day), BTreeMap<u32, (u32, u64)>>,
    /// Each counter's close of a day: (expected, counted).
    pub closes: BTreeMap<(Acct, Day), (u64, u64)>,
    /// Deposits per sale day: their count and sum.
    pub deposits: BTreeMap<Day, (usize, u64)>,
    pub slips: BTreeSet<u8>,
    pub lotteries: BTreeMap<u32, MLottery>,
    /// Each key's account id, for the draw's hashes.
    pub ids: Vec<[u8; 32]>,
}

/// Whether `role` may sign `action` (docs/RULES.md §1). `target` is the role of the
/// account a freeze names, if it has one; `signer` and `town` say whether a freeze names
/// the town.
fn may_sign(role: MRole, action: &MAction, target: Option<MRole>, names_town: bool) -> bool {
    match action {
        MAction::CreateIssue { .. } | MAction::Expire { .. } => role == MRole::Town,
        MAction::RegisterShop { .. } => matches!(role, MRole::Town | MRole::ShopRegistrar),
        MAction::Settle { .. } => matches!(role, MRole::Town | MRole::Settler),
        MAction::RegisterResident { .. }
        | MAction::Sell { .. }
        | MAction::ReplaceKey { .. }
        | MAction::CloseDay { .. } => role == MRole::Operator,
        MAction::RecordDeposit { .. } | MAction::SetLottery { .. } => role == MRole::Town,
        MAction::CommitSecret { .. } | MAction::RevealSecret { .. } | MAction::Draw { .. } => {
            matches!(role, MRole::Town | MRole::LotteryParty)
        }
        MAction::ApplyLottery { .. } => matches!(role, MRole::Resident { .. } | MRole::Operator),
        MAction::Pay { .. } => matches!(role, MRole::Resident { .. }),
        MAction::Refund { .. } | MAction::CashOut { .. } => matches!(role, MRole::Shop(_)),
        MAction::Freeze { .. } | MAction::Unfreeze { .. } => match role {
            MRole::Town => !names_town,
            MRole::Operator => matches!(target, Some(MRole::Resident { .. })),
            _ => false,
        },
    }
}

/// The coherence rules for an issue (docs/RULES.md §2).
fn coherent(p: &IssueParams) -> bool {
    let Some(face) = p.common_per_set.0.checked_add(p.local_per_set.0) else { return false };
    let name_chars = p.name.chars().count();
    !p.name.trim().is_empty()
        && name_chars <= NAME_CHARS_MAX
        && p.price.0 > 0
        && face > 0
        && p.total_sets > 0
        && p.max_sets_per_resident > 0
        && p.max_sets_per_resident <= p.total_sets
        && p.sale_start_ms < p.sale_end_ms
        && p.sale_end_ms <= p.spend_until_ms
        && p.spend_until_ms <= p.cash_out_deadline_ms
        && u64::from(p.cash_out_fee.0) <= FEE_BP_MAX
        && face.checked_mul(u64::from(p.total_sets)).is_some()
        && p.price.0.checked_mul(u64::from(p.total_sets)).is_some()
}

impl Model {
    pub fn balance(&self, acct: Acct, issue: u32, kind: Kind) -> u64 {
        self.balances.get(&(acct, issue, kind)).copied().unwrap_or(0)
    }

    fn add(&mut self, acct: Acct, issue: u32, kind: Kind, amount: u64) {
        if amount > 0 {
            *self.balances.entry((acct, issue, kind)).or_default() += amount;
        }
    }

    fn sub(&mut self, acct: Acct, issue: u32, kind: Kind, amount: u64) {
        let entry = self.balances.get_mut(&(acct, issue, kind)).expect("model: debit of an empty balance");
        *entry -= amount;
        if *entry == 0 {
            self.balances.remove(&(acct, issue, kind));
        }
    }

    pub fn frozen(&self, acct: Acct) -> bool {
        self.accounts.get(&acct).is_some_and(|a| a.frozen)
    }

    /// Every account of a role matching `role`, revoked ones included.
    pub fn with_role(&self, role: impl Fn(MRole) -> bool) -> Vec<Acct> {
        self.accounts.iter().filter(|(_, a)| role(a.role)).map(|(k, _)| *k).collect()
    }

    /// The whole of one transaction: refusals in the ledger's order, then the frozen
    /// signer, then the action's own rules. Changes the model only when it applies.
    pub fn expect(&mut self, tx: &MTx, now: u64) -> Expect {
        match tx.envelope {
            Envelope::Fresh => {}
            Envelope::OtherChain => return Err(Refusal::WrongChain),
            Envelope::LongTtl => return Err(Refusal::TtlTooLong),
            Envelope::Early => return Err(Refusal::NotYetValid),
            Envelope::Stale => return Err(Refusal::TtlExpired),
        }
        let account = self.accounts.get(&tx.signer).ok_or(Refusal::UnknownSigner)?;
        if account.replaced_by.is_some() {
            return Err(Refusal::KeyRevoked);
        }
        let (target, names_town) = match tx.action {
            MAction::Freeze { account } | MAction::Unfreeze { account } => {
                (self.accounts.get(&account).map(|a| a.role), self.town() == Some(account))
            }
            _ => (None, false),
        };
        if !may_sign(account.role, &tx.action, target, names_town) {
            return Err(Refusal::WrongRole);
        }
        if account.frozen {
            return Ok(Some(Reason::AccountFrozen));
        }
        let by_town = account.role == MRole::Town;
        Ok(self.rule(tx, by_town, now).err())
    }

    fn town(&self) -> Option<Acct> {
        self.accounts.iter().find(|(_, a)| a.role == MRole::Town).map(|(k, _)| *k)
    }

    fn rule(&mut self, tx: &MTx, by_town: bool, now: u64) -> Result<(), Reason> {
        let signer = tx.signer;
        match &tx.action {
            MAction::Sell { issue, resident, sets, cash } => {
                if self.closes.contains_key(&(signer, jst_day(now))) {
                    return Err(Reason::CounterClosed);
                }
                self.sell(*resident, *issue, *sets, *cash, now)?;
                let sale =
                    self.counter_sales.entry((signer, jst_day(now))).or_default().entry(*issue).or_default();
                sale.0 += *sets;
                sale.1 += *cash;
                Ok(())
            }
            MAction::Pay { shop, amount, invoice } => {
                self.pay(tx.nonce, signer, *shop, *amount, *invoice, now)
            }
            MAction::Refund { payment, amount } => self.refund(signer, *payment, *amount),
            MAction::CashOut { issue, amount } => self.cash_out(tx.nonce, signer, *issue, *amount, now),
            MAction::Settle { cash_outs, real_date } => self.settle(cash_outs, *real_date),
            MAction::Expire { issue } => self.expire(*issue, now),
            MAction::Freeze { account } => self.set_frozen(by_town, *account, true),
            MAction::Unfreeze { account } => self.set_frozen(by_town, *account, false),
            MAction::ReplaceKey { old, new } => self.replace(*old, *new),
            MAction::RegisterResident { resident, number, worker } => {
                self.register_resident(*resident, *number, *worker)
            }
            MAction::RegisterShop { shop, class, named } => self.register_shop(*shop, *class, *named),
            MAction::CreateIssue { issue } => self.create_issue(issue),
            MAction::CloseDay { day, sales, expected, counted } => {
                self.close_day(signer, *day, sales, *expected, *counted, now)
            }
            MAction::RecordDeposit { day, deposited_on, amount, slip } => {
                self.record_deposit(*day, *deposited_on, *amount, *slip, now)
            }
            MAction::SetLottery { issue, parties, times } => self.set_lottery(*issue, parties, *times, now),
            MAction::CommitSecret { issue, secret } => {
                let (l, party) = self.lottery_party(*issue, signer)?;
                if now >= l.times[0] {
                    return Err(Reason::CommitClosed);
                }
                if l.committed[party].is_some() {
                    return Err(Reason::AlreadyCommitted);
                }
                self.lotteries.get_mut(issue).expect("exists").committed[party] = Some(*secret);
                Ok(())
            }
            MAction::ApplyLottery { issue, resident, sets } => {
                self.apply_lottery(signer, *issue, *resident, *sets, now)
            }
            MAction::RevealSecret { issue, secret } => {
                let (l, party) = self.lottery_party(*issue, signer)?;
                if now < l.times[2] || now >= l.times[3] {
                    return Err(Reason::RevealNotOpen);
                }
                if !l.ready() {
                    return Err(Reason::LotteryNotReady);
                }
                if l.revealed[party] {
                    return Err(Reason::AlreadyRevealed);
                }
                if l.committed[party] != Some(*secret) {
                    return Err(Reason::RevealMismatch);
                }
                self.lotteries.get_mut(issue).expect("exists").revealed[party] = true;
                Ok(())
            }
            MAction::Draw { issue } => self.draw(signer, by_town, *issue, now),
        }
    }

    fn lottery(&self, issue: u32) -> Result<&MLottery, Reason> {
        if !self.issues.contains_key(&issue) {
            return Err(Reason::UnknownIssue);
        }
        self.lotteries.get(&issue).ok_or(Reason::NotALottery)
    }

    fn lottery_party(&self, issue: u32, signer: Acct) -> Result<(&MLottery, usize), Reason> {
        let l = self.lottery(issue)?;
        let party = l.parties.iter().position(|p| *p == signer).ok_or(Reason::NotALotteryParty)?;
        Ok((l, party))
    }

    fn set_lottery(&mut self, issue: u32, parties: &[Acct], t: [u64; 6], now: u64) -> Result<(), Reason> {
        let p = self.issues.get(&issue).ok_or(Reason::UnknownIssue)?.params.clone();
        if now >= p.sale_start_ms
            || self.lotteries.get(&issue).is_some_and(|l| !l.apps.is_empty() || l.drawn.is_some())
        {
            return Err(Reason::LotteryLocked);
        }
        let distinct: BTreeSet<&Acct> = parties.iter().collect();
        let in_order = now < t[0]
            && t[0] <= t[1]
            && t[1] < t[2]
            && t[2] < t[3]
            && t[3] < t[4]
            && p.sale_start_ms < t[4]
            && t[4] < t[5]
            && t[5] <= p.sale_end_ms;
        let fit = parties.iter().all(|a| {
            self.accounts.get(a).is_some_and(|a| {
                matches!(a.role, MRole::Town | MRole::LotteryParty) && a.replaced_by.is_none()
            })
        });
        if parties.is_empty() || parties.len() > 8 || distinct.len() != parties.len() || !in_order || !fit {
            return Err(Reason::InvalidParameters);
        }
        let n = parties.len();
        let lottery = MLottery {
            parties: parties.to_vec(),
            times: t,
            committed: vec![None; n],
            revealed: vec![false; n],
            apps: BTreeMap::new(),
            drawn: None,
            holders: BTreeMap::new(),
            bought_winners: BTreeMap::new(),
            bought_waiting: BTreeMap::new(),
            first_come: 0,
        };
        self.lotteries.insert(issue, lottery);
        Ok(())
    }

    fn apply_lottery(
        &mut self,
        signer: Acct,
        issue: u32,
        resident: Acct,
        sets: u32,
        now: u64,
    ) -> Result<(), Reason> {
        let l = self.lottery(issue)?;
        if matches!(self.accounts[&signer].role, MRole::Resident { .. }) && signer != resident {
            return Err(Reason::InvalidParameters);
        }
        if now < l.times[1] || now >= l.times[2] {
            return Err(Reason::ApplicationsNotOpen);
        }
        if !l.ready() {
            return Err(Reason::LotteryNotReady);
        }
        let p = &self.issues[&issue].params;
        let account = self.accounts.get(&resident).ok_or(Reason::UnknownAccount)?;
        let MRole::Resident { worker } = account.role else { return Err(Reason::NotAResident) };
        if account.replaced_by.is_some() {
            return Err(Reason::AccountRevoked);
        }
        if account.frozen {
            return Err(Reason::AccountFrozen);
        }
        if worker && !p.workers_may_buy {
            return Err(Reason::WorkersNotEligible);
        }
        if sets == 0 {
            return Err(Reason::InvalidParameters);
        }
        if sets > p.max_sets_per_resident {
            return Err(Reason::OverCap);
        }
        self.lotteries.get_mut(&issue).expect("exists").apps.insert(resident, sets);
        Ok(())
    }

    fn draw(&mut self, signer: Acct, by_town: bool, issue: u32, now: u64) -> Result<(), Reason> {
        let l = self.lottery(issue)?;
        if !by_town && !l.parties.contains(&signer) {
            return Err(Reason::NotALotteryParty);
        }
        if l.drawn.is_some() {
            return Err(Reason::AlreadyDrawn);
        }
        if !l.ready() {
            return Err(Reason::LotteryNotReady);
        }
        if now < l.times[2] || (now < l.times[3] && !l.revealed.iter().all(|r| *r)) {
            return Err(Reason::DrawTooEarly);
        }
        // FORMAT.md, "Lottery draw", restated.
        let mut apps: Vec<([u8; 32], Acct, u32)> =
            l.apps.iter().map(|(a, s)| (self.ids[*a], *a, *s)).collect();
        apps.sort();
        let leaves: Vec<Vec<u8>> =
            apps.iter().map(|(id, _, s)| [&id[..], &s.to_be_bytes()].concat()).collect();
        let mut seed_input = b"machi.lottery.v1\0".to_vec();
        seed_input.extend_from_slice(&issue.to_be_bytes());
        for (committed, revealed) in l.committed.iter().zip(&l.revealed) {
            let secret = if *revealed { [committed.expect("revealed"); 32] } else { [0; 32] };
            seed_input.extend_from_slice(&secret);
        }
        seed_input.extend_from_slice(&tree_hash(&leaves));
        let seed = sha256(&seed_input).0;
        let mut order: Vec<([u8; 32], Acct, u32)> =
            apps.iter().map(|(id, a, s)| (sha256(&[&seed[..], id].concat()).0, *a, *s)).collect();
        order.sort();
        let mut left = self.issues[&issue].params.total_sets;
        let (mut winners, mut waiting) = (Vec::new(), Vec::new());
        for (_, acct, sets) in order {
            if left == 0 {
                waiting.push((acct, sets));
            } else {
                let won = sets.min(left);
                left -= won;
                winners.push((acct, won));
            }
        }
        self.lotteries.get_mut(&issue).expect("exists").drawn = Some((winners, waiting));
        Ok(())
    }

    /// A sale's lottery rules: which window (0 winners, 1 waiting list, 2 first come).
    fn lottery_window(&self, issue: u32, resident: Acct, sets: u32, now: u64) -> Result<Option<u8>, Reason> {
        let Some(l) = self.lotteries.get(&issue) else { return Ok(None) };
        let Some((winners, _)) = &l.drawn else { return Err(Reason::LotteryNotDrawn) };
        let applicant = l.holders.get(&resident).copied().unwrap_or(resident);
        let (window, allotted, bought) = if now < l.times[4] {
            (0, winners.iter().find(|w| w.0 == applicant).map(|w| w.1), l.bought_winners.get(&applicant))
        } else if now < l.times[5] {
            let allotment = l.waiting_allotment();
            (1, allotment.iter().find(|w| w.0 == applicant).map(|w| w.1), l.bought_waiting.get(&applicant))
        } else {
            return Ok(Some(2));
        };
        let allotted = allotted.ok_or(Reason::NotAllotted)?;
        if sets > allotted - bought.copied().unwrap_or(0) {
            return Err(Reason::OverAllotment);
        }
        Ok(Some(window))
    }

    /// A counter's sales on a day as a close must state them.
    pub fn day_sales(&self, counter: Acct, day: Day) -> Vec<DaySale> {
        self.counter_sales
            .get(&(counter, day))
            .map(|sales| sales.iter().map(|(issue, (sets, cash))| (*issue, *sets, *cash)).collect())
            .unwrap_or_default()
    }

    fn close_day(
        &mut self,
        counter: Acct,
        day: Option<Day>,
        sales: &[DaySale],
        expected: u64,
        counted: u64,
        now: u64,
    ) -> Result<(), Reason> {
        let Some(day) = day.filter(|_| counted <= CASH_MAX) else { return Err(Reason::InvalidParameters) };
        if day > jst_day(now) {
            return Err(Reason::DayNotStarted);
        }
        if self.closes.contains_key(&(counter, day)) {
            return Err(Reason::DayAlreadyClosed);
        }
        let recorded = self.day_sales(counter, day);
        if sales != recorded.as_slice() || expected != recorded.iter().map(|s| s.2).sum::<u64>() {
            return Err(Reason::CloseMismatch);
        }
        self.closes.insert((counter, day), (expected, counted));
        Ok(())
    }

    fn record_deposit(
        &mut self,
        day: Option<Day>,
        deposited_on: Option<Day>,
        amount: u64,
        slip: Option<u8>,
        now: u64,
    ) -> Result<(), Reason> {
        if amount == 0 {
            return Err(Reason::ZeroAmount);
        }
        let (Some(day), Some(on), Some(slip)) = (day, deposited_on, slip) else {
            return Err(Reason::InvalidParameters);
        };
        if on < day || amount > CASH_MAX {
            return Err(Reason::InvalidParameters);
        }
        if on > jst_day(now) {
            return Err(Reason::DayNotStarted);
        }
        if !self.slips.insert(slip) {
            return Err(Reason::SlipAlreadyRecorded);
        }
        let entry = self.deposits.entry(day).or_default();
        entry.0 += 1;
        entry.1 += amount;
        Ok(())
    }

    fn register_resident(&mut self, resident: Acct, number: u8, worker: bool) -> Result<(), Reason> {
        if self.accounts.contains_key(&resident) {
            return Err(Reason::AccountExists);
        }
        if !self.resident_numbers.insert(number) {
            return Err(Reason::ResidentAlreadyRegistered);
        }
        self.accounts.insert(resident, MAccount::new(MRole::Resident { worker }));
        Ok(())
    }

    fn register_shop(&mut self, shop: Acct, class: ShopClass, named: bool) -> Result<(), Reason> {
        if !named {
            return Err(Reason::InvalidParameters);
        }
        if self.accounts.contains_key(&shop) {
            return Err(Reason::AccountExists);
        }
        self.accounts.insert(shop, MAccount::new(MRole::Shop(class)));
        Ok(())
    }

    fn create_issue(&mut self, params: &IssueParams) -> Result<(), Reason> {
        if !coherent(params) {
            return Err(Reason::InvalidParameters);
        }
        if self.issues.contains_key(&params.id) {
            return Err(Reason::IssueExists);
        }
        let issue =
            MIssue { params: params.clone(), sold: 0, residents_expired: false, shops_expired: false };
        self.issues.insert(params.id, issue);
        Ok(())
    }

    fn sell(&mut self, resident: Acct, issue_id: u32, sets: u32, cash: u64, now: u64) -> Result<(), Reason> {
        let issue = self.issues.get(&issue_id).ok_or(Reason::UnknownIssue)?;
        let p = issue.params.clone();
        if now < p.sale_start_ms || now >= p.sale_end_ms {
            return Err(Reason::SaleNotOpen);
        }
        let account = self.accounts.get(&resident).ok_or(Reason::UnknownAccount)?;
        let MRole::Resident { worker } = account.role else { return Err(Reason::NotAResident) };
        if account.replaced_by.is_some() {
            return Err(Reason::AccountRevoked);
        }
        if account.frozen {
            return Err(Reason::AccountFrozen);
        }
        if worker && !p.workers_may_buy {
            return Err(Reason::WorkersNotEligible);
        }
        if sets == 0 {
            return Err(Reason::InvalidParameters);
        }
        let window = self.lottery_window(issue_id, resident, sets, now)?;
        let left = p.total_sets - issue.sold;
        if left == 0 {
            return Err(Reason::SoldOut);
        }
        if sets > left {
            return Err(Reason::NotEnoughSetsLeft);
        }
        let bought = self.bought.get(&(resident, issue_id)).copied().unwrap_or(0);
        if bought + sets > p.max_sets_per_resident {
            return Err(Reason::OverCap);
        }
        if cash != p.price.0 * u64::from(sets) {
            return Err(Reason::CashMismatch);
        }
        self.issues.get_mut(&issue_id).expect("exists").sold += sets;
        *self.bought.entry((resident, issue_id)).or_default() += sets;
        if let Some(window) = window {
            let l = self.lotteries.get_mut(&issue_id).expect("a lottery issue");
            let applicant = l.holders.get(&resident).copied().unwrap_or(resident);
            match window {
                0 => *l.bought_winners.entry(applicant).or_default() += sets,
                1 => *l.bought_waiting.entry(applicant).or_default() += sets,
                _ => l.first_come += sets,
            }
        }
        self.add(resident, issue_id, Kind::Common, p.common_per_set.0 * u64::from(sets));
        self.add(resident, issue_id, Kind::Local, p.local_per_set.0 * u64::from(sets));
        Ok(())
    }

    fn pay(
        &mut self,
        id: Ref,
        payer: Acct,
        shop: Acct,
        amount: u64,
        invoice: Invoice,
        now: u64,
    ) -> Result<(), Reason> {
        if amount == 0 {
            return Err(Reason::ZeroAmount);
        }
        if !invoice.text().1 {
            return Err(Reason::InvalidParameters);
        }
        let Some(MRole::Shop(class)) = self.accounts.get(&shop).map(|a| a.role) else {
            return Err(Reason::NotAShop);
        };
        if self.frozen(shop) {
            return Err(Reason::PayeeFrozen);
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
            return Err(Reason::InsufficientBalance);
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
        Ok(())
    }

    pub fn current(&self, mut acct: Acct) -> Acct {
        while let Some(next) = self.accounts.get(&acct).and_then(|a| a.replaced_by) {
            acct = next;
        }
        acct
    }

    fn refund(&mut self, shop: Acct, payment: Ref, amount: u64) -> Result<(), Reason> {
        if amount == 0 {
            return Err(Reason::ZeroAmount);
        }
        let p = self.payments.get(&payment).cloned().ok_or(Reason::UnknownPayment)?;
        if p.shop != shop {
            return Err(Reason::NotYourPayment);
        }
        if amount > p.amount - p.refunded {
            return Err(Reason::RefundExceedsPayment);
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
                return Err(Reason::IssueExpired);
            }
            if self.balance(shop, issue, kind) < give {
                return Err(Reason::ShopBalanceInsufficient);
            }
        }
        let resident = self.current(p.payer);
        for (issue, kind, give) in restores {
            self.sub(shop, issue, kind, give);
            self.add(resident, issue, kind, give);
        }
        self.payments.get_mut(&payment).expect("exists").refunded += amount;
        Ok(())
    }

    fn cash_out(&mut self, id: Ref, shop: Acct, issue_id: u32, amount: u64, now: u64) -> Result<(), Reason> {
        if amount == 0 {
            return Err(Reason::ZeroAmount);
        }
        let issue = self.issues.get(&issue_id).ok_or(Reason::UnknownIssue)?;
        if now > issue.params.cash_out_deadline_ms || issue.shops_expired {
            return Err(Reason::CashOutDeadlinePassed);
        }
        let bp = u64::from(issue.params.cash_out_fee.0);
        let local = self.balance(shop, issue_id, Kind::Local);
        let common = self.balance(shop, issue_id, Kind::Common);
        if local + common < amount {
            return Err(Reason::InsufficientBalance);
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
        let fee = after * bp / FEE_BP_MAX - before * bp / FEE_BP_MAX;
        *self.fees.entry(issue_id).or_default() += fee;
        *self.pending.entry(issue_id).or_default() += amount - fee;
        self.cash_outs.insert(id, MCashOut { issue: issue_id, net: amount - fee, pending: true });
        Ok(())
    }

    fn settle(&mut self, ids: &[Ref], real_date: bool) -> Result<(), Reason> {
        let distinct: BTreeSet<&Ref> = ids.iter().collect();
        if ids.is_empty() || ids.len() > SETTLE_REQUESTS_MAX || distinct.len() != ids.len() || !real_date {
            return Err(Reason::InvalidParameters);
        }
        for id in ids {
            match self.cash_outs.get(id) {
                None => return Err(Reason::UnknownCashOut),
                Some(c) if !c.pending => return Err(Reason::CashOutNotPending),
                Some(_) => {}
            }
        }
        for id in ids {
            let c = self.cash_outs.get_mut(id).expect("checked");
            c.pending = false;
            *self.pending.get_mut(&c.issue).expect("pending") -= c.net;
            *self.paid.entry(c.issue).or_default() += c.net;
        }
        Ok(())
    }

    fn expire(&mut self, issue_id: u32, now: u64) -> Result<(), Reason> {
        let issue = self.issues.get(&issue_id).cloned().ok_or(Reason::UnknownIssue)?;
        if now <= issue.params.spend_until_ms {
            return Err(Reason::IssueNotEnded);
        }
        let residents = !issue.residents_expired;
        let shops = !issue.shops_expired && now > issue.params.cash_out_deadline_ms;
        if !residents && !shops {
            return Err(Reason::AlreadyExpired);
        }
        let doomed: Vec<(Acct, u32, Kind)> = self
            .balances
            .keys()
            .filter(|(a, i, _)| {
                *i == issue_id
                    && match self.accounts[a].role {
                        MRole::Resident { .. } => residents,
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
        Ok(())
    }

    fn replace(&mut self, old: Acct, new: Acct) -> Result<(), Reason> {
        let account = self.accounts.get(&old).cloned().ok_or(Reason::UnknownAccount)?;
        let MRole::Resident { worker } = account.role else { return Err(Reason::NotAResident) };
        if account.replaced_by.is_some() {
            return Err(Reason::AccountRevoked);
        }
        if self.accounts.contains_key(&new) {
            return Err(Reason::AccountExists);
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
        for l in self.lotteries.values_mut() {
            if l.drawn.is_none() {
                if let Some(sets) = l.apps.remove(&old) {
                    l.apps.insert(new, sets);
                }
            } else {
                let applicant = l.holders.remove(&old).unwrap_or(old);
                if l.apps.contains_key(&applicant) {
                    l.holders.insert(new, applicant);
                }
            }
        }
        let town_froze = account.town_froze;
        let role = MRole::Resident { worker };
        self.accounts.insert(new, MAccount { role, frozen: town_froze, town_froze, replaced_by: None });
        Ok(())
    }

    fn set_frozen(&mut self, by_town: bool, target: Acct, frozen: bool) -> Result<(), Reason> {
        let account = self.accounts.get_mut(&target).ok_or(Reason::UnknownAccount)?;
        if frozen && by_town && account.town_froze {
            return Err(Reason::NoChange);
        }
        if (!frozen || !by_town) && account.frozen == frozen {
            return Err(Reason::NoChange);
        }
        if !frozen && !by_town && account.town_froze {
            return Err(Reason::FrozenByTown);
        }
        account.frozen = frozen;
        account.town_froze = frozen && by_town;
        Ok(())
    }
}
