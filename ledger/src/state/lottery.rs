//! Lottery sales (抽選): the town sets a lottery on an issue, its parties commit to secrets,
//! residents apply, the parties reveal, anyone named draws (`crate::lottery::draw`), and
//! `sell_sets` then enforces the lottery's windows. docs/RULES.md, "Lottery sales".

use super::*;
use crate::lottery::{self, Application, Draw, LotteryParams, Placed};

/// A lottery set on an issue, and everything recorded for it since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lottery {
    pub params: LotteryParams,
    /// `SHA-256(secret)` per party, in party order, once committed.
    pub commitments: Vec<Option<Hash32>>,
    /// Each party's secret, once revealed.
    pub secrets: Vec<Option<Hash32>>,
    /// Sets asked for, by the account that applied (after a key replacement before the
    /// draw: the account that now holds the resident's identity).
    pub applications: BTreeMap<AccountId, u32>,
    pub result: Option<LotteryResult>,
    /// After the draw, key replacements: the account now holding an applicant's identity
    /// → the account that applied.
    pub holders: BTreeMap<AccountId, AccountId>,
    /// Sets bought in the winners' window, by the account that applied.
    pub bought_by_winners: BTreeMap<AccountId, u32>,
    /// Sets bought in the waiting list's window, by the account that applied.
    pub bought_by_waiting: BTreeMap<AccountId, u32>,
    /// Sets sold first come after the waiting list's window.
    pub sold_first_come: u32,
}

/// The draw as recorded on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotteryResult {
    /// The block time of the draw.
    pub drawn_ms: u64,
    /// The parties that did not reveal, in party order (their secrets counted as zeros).
    pub missing: Vec<AccountId>,
    pub draw: Draw,
}

/// Which of a drawn lottery's windows a sale falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LotteryPhase {
    /// Winners buy up to what they won.
    Winners,
    /// The waiting list buys the sets the winners left.
    Waiting,
    /// Anyone, first come.
    FirstCome,
}

impl Lottery {
    fn new(params: LotteryParams) -> Lottery {
        let parties = params.parties.len();
        Lottery {
            params,
            commitments: vec![None; parties],
            secrets: vec![None; parties],
            applications: BTreeMap::new(),
            result: None,
            holders: BTreeMap::new(),
            bought_by_winners: BTreeMap::new(),
            bought_by_waiting: BTreeMap::new(),
            sold_first_come: 0,
        }
    }

    /// Every party committed.
    pub fn ready(&self) -> bool {
        self.commitments.iter().all(Option::is_some)
    }

    /// The applications as the draw takes them (sorted by account).
    pub fn application_list(&self) -> Vec<Application> {
        self.applications
            .iter()
            .map(|(account, sets)| Application { account: *account, sets: *sets })
            .collect()
    }

    /// The window a sale at `now_ms` falls in, once drawn.
    pub fn phase(&self, now_ms: u64) -> LotteryPhase {
        if now_ms < self.params.purchase_end_ms {
            LotteryPhase::Winners
        } else if now_ms < self.params.waiting_end_ms {
            LotteryPhase::Waiting
        } else {
            LotteryPhase::FirstCome
        }
    }

    /// The account that applied, for the account that now holds its identity.
    pub fn applicant(&self, holder: &AccountId) -> AccountId {
        *self.holders.get(holder).unwrap_or(holder)
    }

    /// The sets the winners did not buy in their window, given down the waiting list in
    /// order: each what they asked for, the one at the boundary the remainder. Fixed once
    /// the winners' window closed (no winner buys after it).
    pub fn waiting_allotment(&self) -> Vec<Placed> {
        let Some(result) = &self.result else { return Vec::new() };
        let bought: u32 = self.bought_by_winners.values().sum();
        let unclaimed = result.draw.sets_won().saturating_sub(bought);
        lottery::allot(result.draw.waiting.clone(), unclaimed).0
    }

    /// What `applicant` may still buy in `phase` (`None`: nothing allotted to them).
    fn allotted_left(&self, phase: LotteryPhase, applicant: &AccountId) -> Option<u32> {
        let result = self.result.as_ref()?;
        let (allotted, bought) = match phase {
            LotteryPhase::Winners => (
                result.draw.winners.iter().find(|w| w.account == *applicant)?.won,
                self.bought_by_winners.get(applicant),
            ),
            LotteryPhase::Waiting => (
                self.waiting_allotment().iter().find(|w| w.account == *applicant)?.won,
                self.bought_by_waiting.get(applicant),
            ),
            LotteryPhase::FirstCome => return None,
        };
        Some(allotted - bought.copied().unwrap_or(0))
    }
}

impl State {
    fn lottery_of(&self, issue: IssueId) -> Result<&Lottery, Reason> {
        if !self.issues.contains_key(&issue) {
            return Err(Reason::UnknownIssue);
        }
        self.lotteries.get(&issue).ok_or(Reason::NotALottery)
    }

    /// The index of `signer` among the lottery's parties.
    fn party_index(lottery: &Lottery, signer: &AccountId) -> Result<usize, Reason> {
        lottery.params.parties.iter().position(|p| p == signer).ok_or(Reason::NotALotteryParty)
    }

    pub(super) fn set_lottery(
        &mut self,
        issue_id: IssueId,
        params: &LotteryParams,
        now_ms: u64,
    ) -> Result<(), Reason> {
        let issue = self.issues.get(&issue_id).ok_or(Reason::UnknownIssue)?;
        let existing = self.lotteries.get(&issue_id);
        if now_ms >= issue.params.sale_start_ms
            || existing.is_some_and(|l| !l.applications.is_empty() || l.result.is_some())
        {
            return Err(Reason::LotteryLocked);
        }
        if !params.is_coherent(now_ms, issue.params.sale_start_ms, issue.params.sale_end_ms) {
            return Err(Reason::InvalidParameters);
        }
        let party_role = |p: &AccountId| {
            self.accounts
                .get(p)
                .is_some_and(|a| matches!(a.role, Role::Town | Role::LotteryParty) && a.replaced_by.is_none())
        };
        if !params.parties.iter().all(party_role) {
            return Err(Reason::InvalidParameters);
        }
        self.lotteries.insert(issue_id, Lottery::new(params.clone()));
        Ok(())
    }

    pub(super) fn commit_lottery_secret(
        &mut self,
        signer: AccountId,
        issue: IssueId,
        commitment: Hash32,
        now_ms: u64,
    ) -> Result<(), Reason> {
        let lottery = self.lottery_of(issue)?;
        let party = Self::party_index(lottery, &signer)?;
        if now_ms >= lottery.params.commit_deadline_ms {
            return Err(Reason::CommitClosed);
        }
        if lottery.commitments[party].is_some() {
            return Err(Reason::AlreadyCommitted);
        }
        self.lotteries.get_mut(&issue).expect("looked up above").commitments[party] = Some(commitment);
        Ok(())
    }

    pub(super) fn apply_lottery(
        &mut self,
        signer: AccountId,
        issue_id: IssueId,
        resident: AccountId,
        sets: u32,
        now_ms: u64,
    ) -> Result<(), Reason> {
        let lottery = self.lottery_of(issue_id)?;
        let signer_role = self.accounts.get(&signer).map(|a| a.role);
        if matches!(signer_role, Some(Role::Resident { .. })) && signer != resident {
            // A resident applies for themself; a family member's card goes through the counter.
            return Err(Reason::InvalidParameters);
        }
        if now_ms < lottery.params.apply_start_ms || now_ms >= lottery.params.apply_end_ms {
            return Err(Reason::ApplicationsNotOpen);
        }
        if !lottery.ready() {
            return Err(Reason::LotteryNotReady);
        }
        let params = &self.issues[&issue_id].params;
        self.check_buyer(params, &resident, sets)?;
        if sets > params.max_sets_per_resident {
            return Err(Reason::OverCap);
        }
        let lottery = self.lotteries.get_mut(&issue_id).expect("looked up above");
        lottery.applications.insert(resident, sets);
        Ok(())
    }

    pub(super) fn reveal_lottery_secret(
        &mut self,
        signer: AccountId,
        issue: IssueId,
        secret: Hash32,
        now_ms: u64,
    ) -> Result<(), Reason> {
        let lottery = self.lottery_of(issue)?;
        let party = Self::party_index(lottery, &signer)?;
        if now_ms < lottery.params.apply_end_ms || now_ms >= lottery.params.reveal_end_ms {
            return Err(Reason::RevealNotOpen);
        }
        if !lottery.ready() {
            return Err(Reason::LotteryNotReady);
        }
        if lottery.secrets[party].is_some() {
            return Err(Reason::AlreadyRevealed);
        }
        if lottery.commitments[party] != Some(lottery::commitment(&secret)) {
            return Err(Reason::RevealMismatch);
        }
        self.lotteries.get_mut(&issue).expect("looked up above").secrets[party] = Some(secret);
        Ok(())
    }

    pub(super) fn draw_lottery(
        &mut self,
        signer: AccountId,
        issue_id: IssueId,
        now_ms: u64,
    ) -> Result<(), Reason> {
        let lottery = self.lottery_of(issue_id)?;
        if self.town != Some(signer) {
            Self::party_index(lottery, &signer)?;
        }
        if lottery.result.is_some() {
            return Err(Reason::AlreadyDrawn);
        }
        if !lottery.ready() {
            return Err(Reason::LotteryNotReady);
        }
        let all_revealed = lottery.secrets.iter().all(Option::is_some);
        if now_ms < lottery.params.apply_end_ms || (now_ms < lottery.params.reveal_end_ms && !all_revealed) {
            return Err(Reason::DrawTooEarly);
        }
        let supply = self.issues[&issue_id].params.total_sets;
        let draw = lottery::draw(issue_id, &lottery.secrets, &lottery.application_list(), supply)
            .expect("applications are kept one per account");
        let missing = lottery
            .params
            .parties
            .iter()
            .zip(&lottery.secrets)
            .filter(|(_, s)| s.is_none())
            .map(|(p, _)| *p)
            .collect();
        let lottery = self.lotteries.get_mut(&issue_id).expect("looked up above");
        lottery.result = Some(LotteryResult { drawn_ms: now_ms, missing, draw });
        Ok(())
    }

    /// `sell_sets`' lottery rules, checked after the buyer and before the supply: nothing
    /// is sold before the draw; in the winners' window only winners buy, in the waiting
    /// list's window only those allotted the winners' leftovers, each up to what is left of
    /// their allotment. `None` for an issue sold first come.
    pub(super) fn lottery_sale_phase(
        &self,
        issue: IssueId,
        resident: &AccountId,
        sets: u32,
        now_ms: u64,
    ) -> Result<Option<LotteryPhase>, Reason> {
        let Some(lottery) = self.lotteries.get(&issue) else { return Ok(None) };
        if lottery.result.is_none() {
            return Err(Reason::LotteryNotDrawn);
        }
        let phase = lottery.phase(now_ms);
        if phase != LotteryPhase::FirstCome {
            let left =
                lottery.allotted_left(phase, &lottery.applicant(resident)).ok_or(Reason::NotAllotted)?;
            if sets > left {
                return Err(Reason::OverAllotment);
            }
        }
        Ok(Some(phase))
    }

    /// Counts a sale `lottery_sale_phase` allowed.
    pub(super) fn record_lottery_sale(
        &mut self,
        issue: IssueId,
        resident: &AccountId,
        sets: u32,
        phase: LotteryPhase,
    ) {
        let lottery = self.lotteries.get_mut(&issue).expect("checked by lottery_sale_phase");
        let applicant = lottery.applicant(resident);
        match phase {
            LotteryPhase::Winners => *lottery.bought_by_winners.entry(applicant).or_default() += sets,
            LotteryPhase::Waiting => *lottery.bought_by_waiting.entry(applicant).or_default() += sets,
            LotteryPhase::FirstCome => lottery.sold_first_come += sets,
        }
    }

    /// A resident's key was replaced: before a draw their application moves to the new
    /// key; after it, the new key buys what the old one was allotted.
    pub(super) fn lotteries_follow_key(&mut self, old: AccountId, new: AccountId) {
        for lottery in self.lotteries.values_mut() {
            if lottery.result.is_none() {
                if let Some(sets) = lottery.applications.remove(&old) {
                    lottery.applications.insert(new, sets);
                }
            } else {
                let applicant = lottery.holders.remove(&old).unwrap_or(old);
                if lottery.applications.contains_key(&applicant) {
                    lottery.holders.insert(new, applicant);
                }
            }
        }
    }
}
