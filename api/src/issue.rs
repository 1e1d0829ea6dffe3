//! `GET /v1/issues`, `GET /v1/issues/{id}` and the supply report of `GET /v1/supply`
//! (also written by `machi-node audit`).

use machi_ledger::{Hash32, IssueId, IssueParams, Supply, Yen};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How an issue's sets are sold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaleMode {
    /// First come, first served, within the per-resident cap.
    FirstCome,
    /// By lottery (`GET /v1/issues/{id}/lottery`), then first come for what is left.
    Lottery,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssueView {
    pub params: IssueParams,
    pub sale_mode: SaleMode,
    pub sets_sold: u32,
    pub sets_left: u32,
    pub on_sale: bool,
    pub residents_expired: bool,
    pub shops_expired: bool,
    pub supply: Supply,
}

/// One issue's figures in the supply report (docs/AUDIT.md defines each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssueSupplyView {
    #[schema(inline)]
    pub issue: IssueId,
    pub name: String,
    pub total_sets: u32,
    pub sets_sold: u32,
    pub sets_left: u32,
    pub cash_received: Yen,
    pub issued_common: Yen,
    pub issued_local: Yen,
    pub issued_total: Yen,
    pub premium_cost: Yen,
    pub residents_common: Yen,
    pub residents_local: Yen,
    pub shops_common: Yen,
    pub shops_local: Yen,
    pub pending_cash_out: Yen,
    pub paid_out: Yen,
    pub fees: Yen,
    pub expired: Yen,
    pub invariant_holds: bool,
}

impl IssueSupplyView {
    pub fn new(params: &IssueParams, s: &Supply) -> IssueSupplyView {
        IssueSupplyView {
            issue: params.id,
            name: params.name.clone(),
            total_sets: params.total_sets,
            sets_sold: s.sets_sold,
            sets_left: params.total_sets - s.sets_sold,
            cash_received: s.cash_received,
            issued_common: s.issued_common,
            issued_local: s.issued_local,
            issued_total: s.issued(),
            premium_cost: s.premium_cost(),
            residents_common: s.residents_common,
            residents_local: s.residents_local,
            shops_common: s.shops_common,
            shops_local: s.shops_local,
            pending_cash_out: s.pending_cash_out,
            paid_out: s.paid_out,
            fees: s.fees,
            expired: s.expired,
            invariant_holds: s.invariant_holds(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SupplyReport {
    pub chain_id: String,
    pub height: u64,
    pub block_hash: Hash32,
    pub issues: Vec<IssueSupplyView>,
    /// The answering replica's signed statement of this very report: its
    /// `supply_digest` is the digest of the fields above (docs/FORMAT.md).
    pub attestation: crate::verifiable::AttestationView,
}

/// Where a lottery stands at a moment (docs/RULES.md, "Lottery sales").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LotteryStage {
    /// Before the commit deadline: the parties commit to their secrets.
    Committing,
    /// The commit deadline passed with a commitment missing: applications never open
    /// (`lottery_not_ready`); the town sets the lottery again.
    NotReady,
    /// Between the commit deadline and the application window.
    WaitingForApplications,
    /// The application window is open.
    Applying,
    /// Applications closed; the parties reveal their secrets.
    Revealing,
    /// Ready to draw (every party revealed, or the reveal period ended); not drawn yet.
    Drawable,
    /// Drawn; winners buy (from the issue's sale start) until `purchase_end_ms`.
    Winners,
    /// The waiting list buys the sets the winners left, until `waiting_end_ms`.
    WaitingList,
    /// Leftover sets sell first come until the issue's sale ends.
    FirstCome,
}

/// One party of a lottery and what it put on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LotteryPartyView {
    pub account: machi_ledger::AccountId,
    /// `SHA-256(secret)`, once committed.
    pub commitment: Option<Hash32>,
    /// The secret, once revealed.
    pub secret: Option<Hash32>,
}

/// The draw as the chain recorded it, and the purchases since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LotteryDrawView {
    pub drawn_ms: u64,
    pub seed: Hash32,
    pub applications_root: Hash32,
    /// The parties that did not reveal (their secrets counted as 32 zero bytes).
    pub missing_parties: Vec<machi_ledger::AccountId>,
    /// In draw order; only the last may have won fewer sets than it applied for. Empty
    /// when `LotteryView::lists_withheld`.
    pub winners: Vec<machi_ledger::lottery::Placed>,
    /// In draw order. Empty when `LotteryView::lists_withheld`.
    pub waiting_list: Vec<machi_ledger::lottery::Placed>,
    /// How many applicants won (the length of `winners`, also when it is withheld).
    #[serde(default)]
    pub winners_count: u32,
    /// How many applicants are on the waiting list (the length of `waiting_list`).
    #[serde(default)]
    pub waiting_list_count: u32,
    pub sets_won: u32,
    /// Once the winners' window closed: the sets the winners left, given down the waiting
    /// list (each `won` is what that applicant may buy in the waiting-list window). Absent
    /// when `LotteryView::lists_withheld`.
    pub waiting_allotment: Option<Vec<machi_ledger::lottery::Placed>>,
    pub bought_by_winners: u32,
    pub bought_by_waiting_list: u32,
    pub sold_first_come: u32,
}

/// `GET /v1/issues/{id}/lottery`: everything needed to check the draw by hand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LotteryView {
    #[schema(inline)]
    pub issue: IssueId,
    pub params: machi_ledger::lottery::LotteryParams,
    pub stage: LotteryStage,
    /// In party order.
    pub parties: Vec<LotteryPartyView>,
    /// The applications in force, sorted by account. Empty when `lists_withheld`.
    pub applications: Vec<machi_ledger::lottery::Application>,
    /// How many residents applied (the length of `applications`, also when it is withheld).
    #[serde(default)]
    pub applicants: u64,
    pub sets_applied: u64,
    pub draw: Option<LotteryDrawView>,
    /// The per-account lists (applications, winners, waiting list, allotment) are given
    /// only to the town, auditors and the town's services (docs/RULES.md §5); for anyone
    /// else they are empty and this is true. The counts, the seed and the applications'
    /// root are always given.
    #[serde(default)]
    pub lists_withheld: bool,
}

impl LotteryView {
    pub fn new(
        issue: &machi_ledger::IssueState,
        lottery: &machi_ledger::Lottery,
        now_ms: u64,
    ) -> LotteryView {
        let p = &lottery.params;
        let all_revealed = lottery.secrets.iter().all(Option::is_some);
        let stage = match &lottery.result {
            Some(_) => match lottery.phase(now_ms) {
                machi_ledger::LotteryPhase::Winners => LotteryStage::Winners,
                machi_ledger::LotteryPhase::Waiting => LotteryStage::WaitingList,
                machi_ledger::LotteryPhase::FirstCome => LotteryStage::FirstCome,
            },
            None if now_ms < p.commit_deadline_ms => LotteryStage::Committing,
            None if !lottery.ready() => LotteryStage::NotReady,
            None if now_ms < p.apply_start_ms => LotteryStage::WaitingForApplications,
            None if now_ms < p.apply_end_ms => LotteryStage::Applying,
            None if now_ms < p.reveal_end_ms && !all_revealed => LotteryStage::Revealing,
            None => LotteryStage::Drawable,
        };
        let parties = p
            .parties
            .iter()
            .zip(lottery.commitments.iter().zip(&lottery.secrets))
            .map(|(account, (commitment, secret))| LotteryPartyView {
                account: *account,
                commitment: *commitment,
                secret: *secret,
            })
            .collect();
        let applications = lottery.application_list();
        let sets_applied = applications.iter().map(|a| u64::from(a.sets)).sum();
        let draw = lottery.result.as_ref().map(|r| LotteryDrawView {
            drawn_ms: r.drawn_ms,
            seed: r.draw.seed,
            applications_root: r.draw.applications_root,
            missing_parties: r.missing.clone(),
            winners: r.draw.winners.clone(),
            waiting_list: r.draw.waiting.clone(),
            winners_count: r.draw.winners.len() as u32,
            waiting_list_count: r.draw.waiting.len() as u32,
            sets_won: r.draw.sets_won(),
            waiting_allotment: (now_ms >= p.purchase_end_ms).then(|| lottery.waiting_allotment()),
            bought_by_winners: lottery.bought_by_winners.values().sum(),
            bought_by_waiting_list: lottery.bought_by_waiting.values().sum(),
            sold_first_come: lottery.sold_first_come,
        });
        LotteryView {
            issue: issue.params.id,
            params: p.clone(),
            stage,
            parties,
            applicants: applications.len() as u64,
            applications,
            sets_applied,
            draw,
            lists_withheld: false,
        }
    }

    /// The view for a reader outside the everything scope: the per-account lists emptied,
    /// the counts kept.
    pub fn withhold_lists(mut self) -> LotteryView {
        self.applications = Vec::new();
        if let Some(draw) = self.draw.as_mut() {
            draw.winners = Vec::new();
            draw.waiting_list = Vec::new();
            draw.waiting_allotment = None;
        }
        self.lists_withheld = true;
        self
    }
}

/// What the lottery holds for one resident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LotteryStatus {
    /// No application from this resident.
    NotApplied,
    /// Applied; not drawn yet.
    Applied,
    /// 当選: won `won_sets`.
    Won,
    /// 補欠: on the waiting list at `waiting_position`.
    Waiting,
}

/// `GET /v1/issues/{id}/lottery/{account}`: one resident's application and result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LotteryEntryView {
    #[schema(inline)]
    pub issue: IssueId,
    /// The account asked about.
    pub account: machi_ledger::AccountId,
    /// The account that applied (another one if the card was replaced after the draw).
    pub applicant: machi_ledger::AccountId,
    pub stage: LotteryStage,
    pub status: LotteryStatus,
    pub applied_sets: Option<u32>,
    /// Winners: the sets won.
    pub won_sets: Option<u32>,
    /// The waiting list: 1 for the first.
    pub waiting_position: Option<u32>,
    /// The waiting list, once the winners' window closed: the sets allotted from what the
    /// winners left (0 if none reached them).
    pub waiting_allotted: Option<u32>,
    /// Sets bought in the winners' or the waiting list's window.
    pub bought: u32,
    /// Sets this resident may buy right now under the lottery's windows (first come: the
    /// cap and the supply decide, shown as `None`).
    pub can_buy_now: Option<u32>,
    /// `SHA-256(seed || applicant)`, the key the draw's order sorts by.
    pub order_key: Option<Hash32>,
    pub seed: Option<Hash32>,
}

impl LotteryEntryView {
    pub fn new(
        issue: &machi_ledger::IssueState,
        lottery: &machi_ledger::Lottery,
        account: machi_ledger::AccountId,
        now_ms: u64,
    ) -> LotteryEntryView {
        let stage = LotteryView::new(issue, lottery, now_ms).stage;
        let applicant = lottery.applicant(&account);
        let applied_sets = lottery.applications.get(&applicant).copied();
        let mut entry = LotteryEntryView {
            issue: issue.params.id,
            account,
            applicant,
            stage,
            status: if applied_sets.is_some() { LotteryStatus::Applied } else { LotteryStatus::NotApplied },
            applied_sets,
            won_sets: None,
            waiting_position: None,
            waiting_allotted: None,
            bought: 0,
            can_buy_now: None,
            order_key: None,
            seed: None,
        };
        let Some(result) = &lottery.result else { return entry };
        entry.seed = Some(result.draw.seed);
        let sale_open = now_ms >= issue.params.sale_start_ms && now_ms < issue.params.sale_end_ms;
        if let Some(w) = result.draw.winners.iter().find(|w| w.account == applicant) {
            entry.status = LotteryStatus::Won;
            entry.won_sets = Some(w.won);
            entry.order_key = Some(w.key);
            entry.bought = lottery.bought_by_winners.get(&applicant).copied().unwrap_or(0);
            entry.can_buy_now = match stage {
                LotteryStage::Winners if sale_open => Some(w.won - entry.bought),
                LotteryStage::FirstCome => None,
                _ => Some(0),
            };
        } else if let Some(pos) = result.draw.waiting.iter().position(|w| w.account == applicant) {
            entry.status = LotteryStatus::Waiting;
            entry.waiting_position = Some(pos as u32 + 1);
            entry.order_key = Some(result.draw.waiting[pos].key);
            entry.bought = lottery.bought_by_waiting.get(&applicant).copied().unwrap_or(0);
            if now_ms >= lottery.params.purchase_end_ms {
                let allotted =
                    lottery.waiting_allotment().iter().find(|a| a.account == applicant).map_or(0, |a| a.won);
                entry.waiting_allotted = Some(allotted);
            }
            entry.can_buy_now = match stage {
                LotteryStage::WaitingList if sale_open => {
                    Some(entry.waiting_allotted.unwrap_or(0) - entry.bought)
                }
                LotteryStage::FirstCome => None,
                _ => Some(0),
            };
        }
        entry
    }
}
