//! The audit's own count of every lottery: from the chain's applied transactions alone
//! (set, reveals, applications, key replacements, the draw, sales), each draw recomputed
//! with `machi_ledger::lottery::draw` and compared with what the replayed state recorded.
//! A difference fails the audit.

use std::collections::BTreeMap;

use anyhow::bail;
use machi_ledger::lottery::{self, Application, Draw, LotteryParams};
use machi_ledger::{AccountId, Action, Block, Hash32, IssueId, Outcome, State, TxBody};
use serde::{Deserialize, Serialize};

/// One lottery issue in the supply report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotteryAudit {
    pub issue: IssueId,
    /// `None` until drawn.
    pub seed: Option<Hash32>,
    pub applicants: u32,
    pub sets_applied: u64,
    pub sets_won: u32,
    pub winners: u32,
    pub waiting_list: u32,
    /// Parties that did not reveal, in party order.
    pub missing_parties: Vec<AccountId>,
    pub bought_by_winners: u32,
    pub bought_by_waiting_list: u32,
    pub sold_first_come: u32,
}

/// What the audit follows of one lottery.
struct Tracked {
    params: LotteryParams,
    secrets: Vec<Option<Hash32>>,
    applications: BTreeMap<AccountId, u32>,
    draw: Option<Draw>,
    report: LotteryAudit,
}

/// The count of every lottery on the chain, block by block.
#[derive(Default)]
pub(super) struct LotteryRecount {
    total_sets: BTreeMap<IssueId, u32>,
    lotteries: BTreeMap<IssueId, Tracked>,
}

impl LotteryRecount {
    /// Takes a replayed block's applied transactions, in order.
    pub(super) fn observe(&mut self, block: &Block) {
        let now = block.header.timestamp_ms;
        for (tx, outcome) in block.txs.iter().zip(&block.outcomes) {
            if *outcome != Outcome::Applied {
                continue;
            }
            let Ok(body) = TxBody::decode(&tx.body) else { continue };
            match body.action {
                Action::CreateIssue { issue } => {
                    self.total_sets.insert(issue.id, issue.total_sets);
                }
                Action::SetLottery { issue, lottery } => {
                    let parties = lottery.parties.len();
                    let report = LotteryAudit {
                        issue,
                        seed: None,
                        applicants: 0,
                        sets_applied: 0,
                        sets_won: 0,
                        winners: 0,
                        waiting_list: 0,
                        missing_parties: Vec::new(),
                        bought_by_winners: 0,
                        bought_by_waiting_list: 0,
                        sold_first_come: 0,
                    };
                    let tracked = Tracked {
                        params: lottery,
                        secrets: vec![None; parties],
                        applications: BTreeMap::new(),
                        draw: None,
                        report,
                    };
                    self.lotteries.insert(issue, tracked);
                }
                Action::RevealLotterySecret { issue, secret } => {
                    if let Some(t) = self.lotteries.get_mut(&issue) {
                        if let Some(i) = t.params.parties.iter().position(|p| *p == tx.signer) {
                            t.secrets[i] = Some(secret);
                        }
                    }
                }
                Action::ApplyLottery { issue, resident, sets } => {
                    if let Some(t) = self.lotteries.get_mut(&issue) {
                        t.applications.insert(resident, sets);
                    }
                }
                Action::ReplaceKey { old, new } => {
                    for t in self.lotteries.values_mut().filter(|t| t.draw.is_none()) {
                        if let Some(sets) = t.applications.remove(&old) {
                            t.applications.insert(new, sets);
                        }
                    }
                }
                Action::DrawLottery { issue } => {
                    let supply = self.total_sets.get(&issue).copied().unwrap_or(0);
                    if let Some(t) = self.lotteries.get_mut(&issue) {
                        let apps: Vec<Application> = t
                            .applications
                            .iter()
                            .map(|(a, s)| Application { account: *a, sets: *s })
                            .collect();
                        // The state keeps one application per account, and so does this map.
                        let draw = lottery::draw(issue, &t.secrets, &apps, supply).expect("one per account");
                        let r = &mut t.report;
                        r.seed = Some(draw.seed);
                        r.applicants = apps.len() as u32;
                        r.sets_applied = apps.iter().map(|a| u64::from(a.sets)).sum();
                        r.sets_won = draw.sets_won();
                        r.winners = draw.winners.len() as u32;
                        r.waiting_list = draw.waiting.len() as u32;
                        r.missing_parties = t
                            .params
                            .parties
                            .iter()
                            .zip(&t.secrets)
                            .filter(|(_, s)| s.is_none())
                            .map(|(p, _)| *p)
                            .collect();
                        t.draw = Some(draw);
                    }
                }
                Action::SellSets { issue, sets, .. } => {
                    if let Some(t) = self.lotteries.get_mut(&issue) {
                        let r = &mut t.report;
                        if now < t.params.purchase_end_ms {
                            r.bought_by_winners += sets;
                        } else if now < t.params.waiting_end_ms {
                            r.bought_by_waiting_list += sets;
                        } else {
                            r.sold_first_come += sets;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Every lottery's figures, after checking each against the replayed state's record.
    pub(super) fn finish(self, state: &State) -> anyhow::Result<Vec<LotteryAudit>> {
        let mut out = Vec::new();
        for (issue, mut t) in self.lotteries {
            let Some(recorded) = state.lotteries.get(&issue) else {
                bail!("lottery of issue {issue}: set on chain, but the replayed state has none");
            };
            let recorded_draw = recorded.result.as_ref().map(|r| &r.draw);
            if recorded_draw != t.draw.as_ref() {
                bail!(
                    "lottery of issue {issue}: the draw recorded (seed {}) is not the one recomputed from the chain's \
                     transactions (seed {})",
                    recorded_draw.map_or("none".into(), |d| d.seed.to_hex()),
                    t.draw.as_ref().map_or("none".into(), |d| d.seed.to_hex()),
                );
            }
            if t.draw.is_none() {
                t.report.applicants = t.applications.len() as u32;
                t.report.sets_applied = t.applications.values().map(|s| u64::from(*s)).sum();
            }
            let r = &t.report;
            let recorded_missing = recorded.result.as_ref().map(|r| r.missing.clone()).unwrap_or_default();
            let counts = (
                recorded.bought_by_winners.values().sum::<u32>(),
                recorded.bought_by_waiting.values().sum::<u32>(),
                recorded.sold_first_come,
            );
            if recorded_missing != r.missing_parties
                || counts != (r.bought_by_winners, r.bought_by_waiting_list, r.sold_first_come)
            {
                bail!(
                    "lottery of issue {issue}: the state recorded parties not revealing {recorded_missing:?} and \
                     purchases {counts:?} (winners, waiting list, first come); the chain's transactions give \
                     {:?} and {:?}",
                    r.missing_parties,
                    (r.bought_by_winners, r.bought_by_waiting_list, r.sold_first_come)
                );
            }
            out.push(t.report);
        }
        Ok(out)
    }
}

/// The lotteries in the text report: each draw's seed and figures.
pub(super) fn report_text(out: &mut String, lotteries: &[LotteryAudit]) {
    use std::fmt::Write as _;
    if lotteries.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nlotteries (each draw recomputed from the chain's transactions; it matches the record):"
    );
    for l in lotteries {
        let seed = l.seed.map_or("not drawn yet".to_string(), |s| format!("seed {s}"));
        let _ = writeln!(out, "  issue {}  {seed}", l.issue);
        let _ = writeln!(
            out,
            "    {} applicants for {} sets; {} sets won by {} winners; {} on the waiting list",
            l.applicants, l.sets_applied, l.sets_won, l.winners, l.waiting_list
        );
        let _ = writeln!(
            out,
            "    bought: {} by winners, {} by the waiting list, {} first come",
            l.bought_by_winners, l.bought_by_waiting_list, l.sold_first_come
        );
        if l.seed.is_some() {
            let missing = if l.missing_parties.is_empty() {
                "every party revealed".to_string()
            } else {
                let names: Vec<String> = l.missing_parties.iter().map(AccountId::to_hex).collect();
                format!("NOT REVEALED by {}", names.join(", "))
            };
            let _ = writeln!(out, "    {missing}");
        }
    }
}

/// The lottery columns of an issue's CSV row (empty cells for an issue sold first come).
pub(super) fn csv_cells(lotteries: &[LotteryAudit], issue: IssueId) -> String {
    match lotteries.iter().find(|l| l.issue == issue) {
        None => "first_come,,,,,,,,".to_string(),
        Some(l) => format!(
            "lottery,{},{},{},{},{},{},{},{}",
            l.seed.map(|s| s.to_hex()).unwrap_or_default(),
            l.applicants,
            l.sets_applied,
            l.sets_won,
            l.missing_parties.len(),
            l.bought_by_winners,
            l.bought_by_waiting_list,
            l.sold_first_come
        ),
    }
}

#[cfg(test)]
mod tests {
    use machi_ledger::testkit::{standard_issue, DAY_MS};
    use machi_ledger::{decode, genesis, produce, Delegation, IssueParams, SignedTx, SigningKey};

    use super::super::Auditor;
    use super::*;

    const CHAIN: &str = "audit-lottery";
    const T0: u64 = 1_799_074_800_000;

    /// A lottery drawn with one resident, one party besides the town not revealing.
    fn chain() -> Vec<Block> {
        let key = |b: u8| SigningKey::from_bytes(&[b; 32]);
        let (town, producer, operator, bank, resident) = (key(1), key(2), key(3), key(4), key(5));
        let id = |k: &SigningKey| AccountId::of(k);
        let mut nonce = 0;
        let mut tx = |k: &SigningKey, at: u64, action: Action| {
            nonce += 1;
            let body = TxBody { chain_id: CHAIN.into(), created_ms: at, ttl_ms: 60_000, nonce, action };
            decode(CHAIN, SignedTx::sign(CHAIN, k, &body)).unwrap()
        };
        let mut state = State::new(CHAIN);
        let g = genesis(
            &mut state,
            tx(&town, T0, Action::Genesis { town: id(&town), producer: id(&producer) }),
            T0,
            &producer,
        );
        let issue =
            IssueParams { sale_end_ms: T0 + 20 * DAY_MS, ..standard_issue(1, 5, 3, T0 + 10 * DAY_MS) };
        let params = LotteryParams {
            parties: vec![id(&town), id(&bank)],
            commit_deadline_ms: T0 + DAY_MS,
            apply_start_ms: T0 + DAY_MS,
            apply_end_ms: T0 + 2 * DAY_MS,
            reveal_end_ms: T0 + 3 * DAY_MS,
            purchase_end_ms: T0 + 12 * DAY_MS,
            waiting_end_ms: T0 + 15 * DAY_MS,
        };
        let secret = Hash32([7; 32]);
        let delegation = Delegation::LotteryParty;
        let steps: Vec<(u64, Vec<machi_ledger::VerifiedTx>)> = vec![
            (
                T0,
                vec![
                    tx(&town, T0, Action::RegisterOperator { operator: id(&operator), name: "窓口".into() }),
                    tx(
                        &town,
                        T0,
                        Action::RegisterDelegate { delegate: id(&bank), name: "銀行".into(), delegation },
                    ),
                    tx(&town, T0, Action::CreateIssue { issue }),
                    tx(
                        &operator,
                        T0,
                        Action::RegisterResident {
                            resident: id(&resident),
                            resident_hash: Hash32([9; 32]),
                            worker: false,
                        },
                    ),
                    tx(&town, T0, Action::SetLottery { issue: 1, lottery: params }),
                    tx(
                        &town,
                        T0,
                        Action::CommitLotterySecret { issue: 1, commitment: lottery::commitment(&secret) },
                    ),
                    tx(&bank, T0, Action::CommitLotterySecret { issue: 1, commitment: Hash32([8; 32]) }),
                ],
            ),
            (
                T0 + DAY_MS,
                vec![tx(
                    &resident,
                    T0 + DAY_MS,
                    Action::ApplyLottery { issue: 1, resident: id(&resident), sets: 2 },
                )],
            ),
            (
                T0 + 2 * DAY_MS,
                vec![tx(&town, T0 + 2 * DAY_MS, Action::RevealLotterySecret { issue: 1, secret })],
            ),
            (T0 + 3 * DAY_MS, vec![tx(&bank, T0 + 3 * DAY_MS, Action::DrawLottery { issue: 1 })]),
        ];
        let mut blocks = vec![g];
        for (at, txs) in steps {
            let prev = blocks.last().unwrap().header.clone();
            let (block, results) = produce(&mut state, &prev, at, txs, &producer);
            assert!(results.iter().all(|r| *r == Ok(Outcome::Applied)), "{results:?}");
            blocks.push(block);
        }
        blocks
    }

    fn audit(alter: impl Fn(&mut State)) -> anyhow::Result<crate::AuditReport> {
        let mut auditor = Auditor::new();
        for block in chain() {
            auditor.push(block)?;
        }
        auditor.drain()?;
        alter(auditor.state.as_mut().unwrap());
        auditor.finish()
    }

    #[test]
    fn the_audit_recomputes_the_draw_and_fails_when_the_record_differs() {
        let report = audit(|_| {}).unwrap();
        let l = &report.lotteries[0];
        assert_eq!((l.applicants, l.sets_applied, l.sets_won, l.winners), (1, 2, 2, 1));
        assert_eq!(l.missing_parties, vec![AccountId::of(&SigningKey::from_bytes(&[4; 32]))]);

        // The state's record of the draw changed (as a ledger bug would): the audit fails.
        let err = audit(|s| {
            let result = s.lotteries.get_mut(&1).unwrap().result.as_mut().unwrap();
            result.draw.winners[0].won = 1;
        })
        .unwrap_err();
        assert!(err.to_string().contains("is not the one recomputed"), "{err}");
        let err =
            audit(|s| s.lotteries.get_mut(&1).unwrap().result.as_mut().unwrap().missing.clear()).unwrap_err();
        assert!(err.to_string().contains("parties not revealing"), "{err}");
        let err = audit(|s| s.lotteries.get_mut(&1).unwrap().sold_first_come = 1).unwrap_err();
        assert!(err.to_string().contains("purchases"), "{err}");
    }
}
