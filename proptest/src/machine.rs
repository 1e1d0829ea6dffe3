//! The state-machine property test: the reference model (`crate::model`) is the reference
//! state machine, the real ledger (`State` + `produce`) the system under test.
//!
//! Transitions are every transaction kind, valid and not, from many signers over several
//! issues, with time moving forward, replays, transactions with a bad envelope (stale,
//! early, over-long time-to-live, another chain), a delegated settler and shop registrar,
//! and freezes by the town and by operators. After every step the ledger's result must be
//! the model's and every balance, purchase count, account flag and supply figure must
//! agree; at the end the blocks are replayed with every check and produced again from
//! the same transactions, byte for byte. proptest shrinks a failure to a short sequence.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

use machi_ledger::{
    decode, genesis, lottery::LotteryParams, produce, replay, AccountId, Action, Block, BlockHeader,
    DaySales, Delegation, Hash32, IssueParams, Outcome, RateBp, Reason, Refusal, Role, ShopClass,
    SignatureCheck, SignedTx, SigningKey, State, TxBody, TxId, VerifiedTx, Yen, CLOCK_SKEW_MS_MAX,
    TTL_MS_MAX,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::Union;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use crate::model::{
    jst_day, Acct, Day, DaySale, Envelope, Expect, Invoice, MAccount, MAction, MIssue, MRole, MTx, Model,
    Ref, CASH_MAX,
};

/// The test chain's id.
pub const CHAIN: &str = "model-town";
const OTHER_CHAIN: &str = "other-town";
const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// The first block's time: 2027-01-04 00:00 JST.
const T0: u64 = 1_799_074_800_000;
/// Every transaction's time-to-live unless its envelope says otherwise.
const TTL_MS: u32 = 60_000;

const TOWN: Acct = 0;
const OPERATORS: [Acct; 2] = [1, 2];
/// Shop 3 is large, 4 and 5 are local.
const SHOPS: [Acct; 3] = [3, 4, 5];
const RESIDENTS: std::ops::Range<Acct> = 6..12;
const WORKERS: std::ops::Range<Acct> = 12..14;
/// Never registered at the start: unknown signers, new keys for lost cards, new residents
/// and shops.
const STRANGERS: std::ops::Range<Acct> = 14..34;
/// The town's delegated keys.
const SETTLER: Acct = 34;
const REGISTRAR: Acct = 35;
/// The lottery's parties beside the town (the bank, the auditor).
const PARTIES: [Acct; 2] = [36, 37];
const KEYS: usize = 38;
/// Issue ids up to this may be created during a sequence; 99 never exists.
const ISSUE_IDS_MAX: u32 = 5;
const NO_ISSUE: u32 = 99;
/// A payment or cash-out reference that names no transaction.
const NO_TX: Ref = u64::MAX;
/// Nonces of the setup transactions, apart from the sequence's own (1, 2, ...).
const SETUP_NONCE: u64 = 1 << 48;

/// One step of a test sequence.
#[derive(Clone, Debug)]
pub enum Step {
    /// Time moves forward.
    Wait {
        ms: u64,
    },
    Submit(MTx),
    /// A transaction already on the chain, sent again.
    Replay {
        nonce: Ref,
    },
}

/// The reference state: the model, the clock and what the last step should have done.
#[derive(Clone)]
pub struct Town {
    pub model: Model,
    pub now: u64,
    /// The last nonce used.
    pub nonce: Ref,
    /// Nonces of the transactions in blocks, for replays.
    pub entered: Vec<Ref>,
    /// The model's answer for the last step's transaction.
    pub last: Option<Expect>,
    /// The issue sold by lottery: the last one at the start.
    pub lottery_issue: u32,
}

impl fmt::Debug for Town {
    /// The accounts at the start are always the same: the issues are what varies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issues: Vec<String> = self
            .model
            .issues
            .values()
            .map(|i| {
                let p = &i.params;
                format!(
                    "#{} ¥{} = {}+{} × {} (cap {}, workers {}), sale +{}..+{} ms, spend +{}, cash-out +{}, fee {} bp",
                    p.id,
                    p.price.0,
                    p.common_per_set.0,
                    p.local_per_set.0,
                    p.total_sets,
                    p.max_sets_per_resident,
                    p.workers_may_buy,
                    p.sale_start_ms - T0,
                    p.sale_end_ms - T0,
                    p.spend_until_ms - T0,
                    p.cash_out_deadline_ms - T0,
                    p.cash_out_fee.0
                )
            })
            .collect();
        f.debug_struct("Town").field("issues", &issues).finish()
    }
}

impl Town {
    /// The town at the start: operators, shops, residents and workers, the two delegated
    /// keys, and `issues` (numbered from 1).
    fn new(issues: Vec<IssueParams>) -> Town {
        let mut model = Model::default();
        model.accounts.insert(TOWN, MAccount::new(MRole::Town));
        for op in OPERATORS {
            model.accounts.insert(op, MAccount::new(MRole::Operator));
        }
        for (i, shop) in SHOPS.into_iter().enumerate() {
            let class = if i == 0 { ShopClass::Large } else { ShopClass::Local };
            model.accounts.insert(shop, MAccount::new(MRole::Shop(class)));
        }
        for r in RESIDENTS.chain(WORKERS) {
            let worker = WORKERS.contains(&r);
            model.accounts.insert(r, MAccount::new(MRole::Resident { worker }));
            model.resident_numbers.insert(r as u8);
        }
        model.accounts.insert(SETTLER, MAccount::new(MRole::Settler));
        model.accounts.insert(REGISTRAR, MAccount::new(MRole::ShopRegistrar));
        for party in PARTIES {
            model.accounts.insert(party, MAccount::new(MRole::LotteryParty));
        }
        model.ids = (0..KEYS).map(|i| key(i).verifying_key().to_bytes()).collect();
        for (i, mut params) in issues.into_iter().enumerate() {
            params.id = i as u32 + 1;
            params.name = format!("issue {}", params.id);
            let issue = MIssue { params, sold: 0, residents_expired: false, shops_expired: false };
            model.issues.insert(issue.params.id, issue);
        }
        let lottery_issue = model.issues.len() as u32;
        Town { model, now: T0, nonce: 0, entered: Vec::new(), last: None, lottery_issue }
    }
}

/// The key of account number `acct`.
fn key(acct: Acct) -> SigningKey {
    SigningKey::from_bytes(&[acct as u8 + 1; 32])
}

/// Coherent issue parameters whose sale opens within three hours of `now`.
fn issue_params(now: u64) -> impl Strategy<Value = IssueParams> {
    let times = (0..DAY_MS / 8, DAY_MS..4 * DAY_MS, 0..10 * DAY_MS, 0..5 * DAY_MS);
    let money = (1..=10u64, 0..=8u64, 0..=8u64, 0..=300u32);
    let sets = (3..=12u32, 1..=4u32, prop::bool::weighted(0.3));
    (times, money, sets).prop_map(move |(times, money, sets)| {
        let (start, sale, spend, cash_out) = times;
        let (price, common, local, fee) = money;
        let (total_sets, cap, workers_may_buy) = sets;
        let sale_start_ms = now + start;
        let sale_end_ms = sale_start_ms + sale;
        let spend_until_ms = sale_end_ms + spend;
        IssueParams {
            id: 0,
            name: String::new(),
            price: Yen(price * 1_000),
            common_per_set: Yen(common * 1_000 + 250),
            local_per_set: Yen(local * 1_000),
            total_sets,
            max_sets_per_resident: cap.min(total_sets),
            workers_may_buy,
            sale_start_ms,
            sale_end_ms,
            spend_until_ms,
            cash_out_deadline_ms: spend_until_ms + cash_out,
            cash_out_fee: RateBp(fee),
        }
    })
}

/// The issue a sequence sells by lottery (the last one at the start): few sets for the
/// residents, so that there is a waiting list; on sale from the second day for five days,
/// so the town can set its lottery first.
fn lottery_issue(p: IssueParams) -> IssueParams {
    let sale_start_ms = T0 + DAY_MS;
    let sale_end_ms = sale_start_ms + 5 * DAY_MS;
    IssueParams {
        total_sets: 4,
        max_sets_per_resident: 3,
        sale_start_ms,
        sale_end_ms,
        spend_until_ms: sale_end_ms + 5 * DAY_MS,
        cash_out_deadline_ms: sale_end_ms + 10 * DAY_MS,
        ..p
    }
}

/// The lottery's transactions, weighted by where the lottery stands: setting it while
/// none is set, committing before the deadline, applying in the window, revealing,
/// drawing, and buying once drawn; sometimes by the wrong key, at the wrong time, with
/// the wrong secret.
fn lottery_actions(town: &Town) -> Vec<(u32, BoxedStrategy<(Acct, MAction)>)> {
    let m = &town.model;
    let now = town.now;
    let target = town.lottery_issue;
    let issue = prop_oneof![9 => Just(target), 1 => prop_oneof![Just(1u32), Just(NO_ISSUE)]].boxed();
    let all_parties = vec![TOWN, PARTIES[0], PARTIES[1]];
    let lottery = m.lotteries.get(&target);
    let mut arms = Vec::new();

    let sale_start = m.issues[&target].params.sale_start_ms;
    let parties = prop_oneof![
        8 => Just(all_parties.clone()),
        1 => Just(vec![TOWN, PARTIES[1]]),
        1 => prop_oneof![Just(vec![]), Just(vec![TOWN, TOWN]), Just(vec![TOWN, OPERATORS[0]])],
    ];
    let hour = DAY_MS / 24;
    let times = (
        hour..6 * hour,
        0..hour,
        2 * hour..10 * hour,
        hour..5 * hour,
        4 * hour..24 * hour,
        4 * hour..24 * hour,
        0..12u8,
    );
    let set = (mostly(vec![TOWN], 9, 1), issue.clone(), parties, times).prop_map(
        move |(signer, issue, parties, (d0, d1, d2, d3, d4, d5, defect))| {
            let t0 = now + d0;
            let t1 = t0 + d1;
            let t2 = t1 + d2;
            let t3 = t2 + d3;
            let t4 = t3.max(sale_start) + d4;
            let t5 = t4 + d5;
            let mut times = [t0, t1, t2, t3, t4, t5];
            match defect {
                0 => times[2] = times[1],
                1 => times[0] = now,
                _ => {}
            }
            (signer, MAction::SetLottery { issue, parties, times })
        },
    );
    arms.push((if lottery.is_none() && now < sale_start { 40 } else { 1 }, set.boxed()));
    let Some(l) = lottery else { return arms };

    let parties = if l.parties.is_empty() { all_parties.clone() } else { l.parties.clone() };
    let party = prop_oneof![9 => select(parties), 1 => any_key()].boxed();
    let committing = now < l.times[0] && l.committed.iter().any(Option::is_none);
    let commit = (party, issue.clone(), prop::bool::weighted(0.9)).prop_map(|(signer, issue, usual)| {
        let secret = if usual { signer as u8 } else { 200 };
        (signer, MAction::CommitSecret { issue, secret })
    });
    arms.push((if committing { 40 } else { 1 }, commit.boxed()));

    let residents = m.with_role(|r| matches!(r, MRole::Resident { .. }));
    let resident =
        prop_oneof![17 => select(residents.clone()), 1 => STRANGERS, 1 => select(SHOPS.to_vec())].boxed();
    let applying = now >= l.times[1] && now < l.times[2];
    let who = (prop::bool::weighted(0.7), mostly(OPERATORS.to_vec(), 9, 1), prop::bool::weighted(0.05));
    let apply = (resident, who, issue.clone(), 0..=4u32).prop_map(
        |(resident, (own, operator, other), issue, sets)| {
            let signer = match (own, other) {
                (true, false) => resident,
                (true, true) => RESIDENTS.start + (resident + 1) % RESIDENTS.len(),
                (false, _) => operator,
            };
            (signer, MAction::ApplyLottery { issue, resident, sets })
        },
    );
    arms.push((if applying { 40 } else { 2 }, apply.boxed()));

    let committed: Vec<(Acct, u8)> =
        l.parties.iter().zip(&l.committed).map(|(p, c)| (*p, c.unwrap_or(*p as u8))).collect();
    let committed = if committed.is_empty() { vec![(TOWN, 0)] } else { committed };
    let revealing = now >= l.times[2] && now < l.times[3] && l.revealed.iter().any(|r| !r);
    let reveal =
        (select(committed), prop::bool::weighted(0.9), any_key(), prop::bool::weighted(0.05), issue.clone())
            .prop_map(|((signer, secret), right, stranger, by_stranger, issue)| {
                let signer = if by_stranger { stranger } else { signer };
                let secret = if right { secret } else { secret.wrapping_add(1) };
                (signer, MAction::RevealSecret { issue, secret })
            });
    arms.push((if revealing { 30 } else { 1 }, reveal.boxed()));

    let drawer = prop_oneof![
        4 => Just(TOWN),
        4 => select(PARTIES.to_vec()),
        1 => select(OPERATORS.to_vec()),
        1 => any_key()
    ];
    let drawable = l.drawn.is_none() && now >= l.times[2];
    let draw = (drawer, issue).prop_map(|(signer, issue)| (signer, MAction::Draw { issue }));
    arms.push((if drawable { 20 } else { 1 }, draw.boxed()));

    if let Some((winners, waiting)) = &l.drawn {
        let applicants: Vec<Acct> = winners.iter().chain(waiting).map(|w| m.current(w.0)).collect();
        let price = m.issues[&target].params.price.0;
        let buyer = if applicants.is_empty() {
            select(residents).boxed()
        } else {
            prop_oneof![9 => select(applicants), 1 => select(residents)].boxed()
        };
        let sell =
            (mostly(OPERATORS.to_vec(), 9, 1), buyer, 1..=3u32).prop_map(move |(signer, resident, sets)| {
                (signer, MAction::Sell { issue: target, resident, sets, cash: price * u64::from(sets) })
            });
        arms.push((15, sell.boxed()));
    }
    arms
}

/// An issue the town creates during a sequence: mostly coherent, sometimes with one rule
/// of docs/RULES.md §2 broken.
fn new_issue(now: u64) -> impl Strategy<Value = IssueParams> {
    (1..=ISSUE_IDS_MAX, issue_params(now), prop_oneof![9 => Just(None), 1 => (0..6u8).prop_map(Some)])
        .prop_map(|(id, mut p, defect)| {
            p.id = id;
            p.name = format!("issue {id}");
            match defect {
                Some(0) => p.max_sets_per_resident = p.total_sets + 1,
                Some(1) => p.sale_end_ms = p.sale_start_ms,
                Some(2) => p.price = Yen(0),
                Some(3) => p.name = " ".into(),
                Some(4) => p.cash_out_fee = RateBp(10_001),
                Some(_) => p.cash_out_deadline_ms = p.spend_until_ms - 1,
                None => {}
            }
            p
        })
}

fn any_key() -> BoxedStrategy<Acct> {
    (0..KEYS).boxed()
}

/// Mostly one of `usual`, sometimes any key at all.
fn mostly(usual: Vec<Acct>, usual_weight: u32, other_weight: u32) -> BoxedStrategy<Acct> {
    prop_oneof![usual_weight => select(usual), other_weight => any_key()].boxed()
}

fn envelope() -> impl Strategy<Value = Envelope> {
    prop_oneof![
        96 => Just(Envelope::Fresh),
        1 => Just(Envelope::Stale),
        1 => Just(Envelope::Early),
        1 => Just(Envelope::LongTtl),
        1 => Just(Envelope::OtherChain),
    ]
}

/// The transactions one state makes likely: mostly by the right signer with plausible
/// amounts, sometimes by anyone with anything.
fn actions(town: &Town) -> BoxedStrategy<(Acct, MAction)> {
    let m = &town.model;
    let residents = m.with_role(|r| matches!(r, MRole::Resident { .. }));
    let shops = m.with_role(|r| matches!(r, MRole::Shop(_)));
    let issue_ids: Vec<u32> = m.issues.keys().copied().collect();
    let issue = prop_oneof![19 => select(issue_ids), 1 => Just(NO_ISSUE)].boxed();
    let resident = prop_oneof![17 => select(residents.clone()), 3 => STRANGERS].boxed();
    let operator = mostly(OPERATORS.to_vec(), 9, 1);

    let prices: BTreeMap<u32, u64> = m.issues.iter().map(|(id, i)| (*id, i.params.price.0)).collect();
    let sell = (operator.clone(), resident.clone(), issue.clone(), 0..=3u32, prop::bool::weighted(0.05))
        .prop_map(move |(signer, resident, issue, sets, off)| {
            let price = prices.get(&issue).copied().unwrap_or(10_000);
            let cash = price * u64::from(sets) + u64::from(off);
            (signer, MAction::Sell { issue, resident, sets, cash })
        });

    let invoice = prop_oneof![
        90 => Just(Invoice::None),
        8 => Just(Invoice::Good),
        1 => Just(Invoice::Empty),
        1 => Just(Invoice::TooLong),
    ];
    let payer = prop_oneof![9 => resident.clone(), 1 => any_key()];
    let amount = prop_oneof![0..3_000u64, 0..40_000u64];
    let pay = (payer, mostly(shops.clone(), 9, 1), amount, invoice)
        .prop_map(|(signer, shop, amount, invoice)| (signer, MAction::Pay { shop, amount, invoice }));

    let held: BTreeMap<(Acct, u32), u64> = m.balances.iter().fold(BTreeMap::new(), |mut held, (k, v)| {
        *held.entry((k.0, k.1)).or_default() += v;
        held
    });
    let cash_out = (mostly(shops.clone(), 9, 1), issue.clone()).prop_flat_map(move |(shop, issue)| {
        let held = held.get(&(shop, issue)).copied().unwrap_or(0);
        (0..=held + 1).prop_map(move |amount| (shop, MAction::CashOut { issue, amount }))
    });

    let all_cash_outs: Vec<Ref> = m.cash_outs.keys().copied().collect();
    let count = all_cash_outs.len();
    let settler = prop_oneof![6 => Just(TOWN), 3 => Just(SETTLER), 1 => any_key()];
    let settle = (
        settler,
        subsequence(all_cash_outs, 0..=count),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.97),
    )
        .prop_map(|(signer, mut cash_outs, unknown, real_date)| {
            if unknown {
                cash_outs.push(NO_TX);
            }
            (signer, MAction::Settle { cash_outs, real_date })
        });

    let expire = (mostly(vec![TOWN], 9, 1), issue.clone())
        .prop_map(|(signer, issue)| (signer, MAction::Expire { issue }));

    let freezer = prop_oneof![5 => Just(TOWN), 4 => select(OPERATORS.to_vec()), 1 => any_key()];
    let freeze = (freezer, any_key(), prop::bool::weighted(0.6)).prop_map(|(signer, account, freeze)| {
        let action = if freeze { MAction::Freeze { account } } else { MAction::Unfreeze { account } };
        (signer, action)
    });

    let replace = (operator.clone(), resident.clone(), STRANGERS.start..KEYS)
        .prop_map(|(signer, old, new)| (signer, MAction::ReplaceKey { old, new }));

    let register_resident = (operator, mostly(STRANGERS.collect(), 4, 1), 0..24u8, prop::bool::weighted(0.3))
        .prop_map(|(signer, resident, number, worker)| {
            (signer, MAction::RegisterResident { resident, number, worker })
        });

    let registrar = prop_oneof![4 => Just(TOWN), 4 => Just(REGISTRAR), 2 => any_key()];
    let class = prop_oneof![Just(ShopClass::Local), Just(ShopClass::Large)];
    let register_shop = (registrar, mostly(STRANGERS.collect(), 4, 1), class, prop::bool::weighted(0.9))
        .prop_map(|(signer, shop, class, named)| (signer, MAction::RegisterShop { shop, class, named }));

    let create_issue = (mostly(vec![TOWN], 9, 1), new_issue(town.now))
        .prop_map(|(signer, issue)| (signer, MAction::CreateIssue { issue }));

    let today = jst_day(town.now);
    let counter_days: BTreeMap<(Acct, Day), Vec<DaySale>> =
        m.counter_sales.keys().map(|&(op, day)| ((op, day), m.day_sales(op, day))).collect();
    let day = prop_oneof![
        2 => Just(Some(today.saturating_sub(1))),
        6 => Just(Some(today)),
        1 => Just(Some(today + 1)),
        1 => Just(None)
    ];
    let close = (mostly(OPERATORS.to_vec(), 9, 1), day, 0..10u8, -2_000..=2_000i64).prop_map(
        move |(signer, day, defect, off)| {
            let mut sales = day.and_then(|d| counter_days.get(&(signer, d))).cloned().unwrap_or_default();
            match (defect, sales.last_mut()) {
                (0, Some(last)) => last.1 += 1,
                (1, Some(_)) => {
                    sales.pop();
                }
                (2, None) => sales.push((1, 1, 1_000)),
                _ => {}
            }
            let stated: u64 = sales.iter().map(|s| s.2).sum();
            let expected = if defect == 3 { stated + 1 } else { stated };
            let counted = if defect == 4 { CASH_MAX + 1 } else { expected.saturating_add_signed(off) };
            (signer, MAction::CloseDay { day, sales, expected, counted })
        },
    );
    let deposit_day =
        prop_oneof![9 => (0..3u64).prop_map(move |back| Some(today.saturating_sub(back))), 1 => Just(None)];
    let deposit = (mostly(vec![TOWN], 9, 1), deposit_day, 0..12u8, 0..60_000u64, 0..8u8).prop_map(
        move |(signer, day, defect, amount, slip)| {
            let deposited_on = match (defect, day) {
                (0, _) => None,
                (1, Some(d)) => Some(d.saturating_sub(1)),
                (2, Some(_)) => Some(today + 1),
                (_, d) => d.map(|d| d + 1).map(|d| d.min(today)),
            };
            let amount = match defect {
                3 => 0,
                4 => CASH_MAX + 1,
                _ => amount,
            };
            let slip = if defect == 5 { None } else { Some(slip) };
            (signer, MAction::RecordDeposit { day, deposited_on, amount, slip })
        },
    );

    let mut arms: Vec<(u32, BoxedStrategy<(Acct, MAction)>)> = vec![
        (20, sell.boxed()),
        (2, close.boxed()),
        (2, deposit.boxed()),
        (25, pay.boxed()),
        (10, cash_out.boxed()),
        (5, settle.boxed()),
        (5, expire.boxed()),
        (5, freeze.boxed()),
        (4, replace.boxed()),
        (2, register_resident.boxed()),
        (1, register_shop.boxed()),
        (1, create_issue.boxed()),
    ];
    arms.extend(lottery_actions(town));
    let payments: Vec<(Ref, Acct, u64)> =
        m.payments.iter().map(|(id, p)| (*id, p.shop, p.amount - p.refunded)).collect();
    if !payments.is_empty() {
        let payment = prop_oneof![97 => select(payments), 3 => Just((NO_TX, SHOPS[0], 100))];
        let refund = payment.prop_flat_map(move |(payment, shop, left)| {
            let signer = prop_oneof![85 => Just(shop), 15 => select(SHOPS.to_vec())];
            (signer, 0..=left + 1)
                .prop_map(move |(signer, amount)| (signer, MAction::Refund { payment, amount }))
        });
        arms.push((10, refund.boxed()));
    }
    Union::new_weighted(arms).boxed()
}

/// The reference state machine: the model.
pub struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Town;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Town> {
        (prop::collection::vec(issue_params(T0), 2..=3), issue_params(T0))
            .prop_map(|(mut issues, lottery)| {
                issues.push(lottery_issue(lottery));
                Town::new(issues)
            })
            .boxed()
    }

    fn transitions(town: &Town) -> BoxedStrategy<Step> {
        let nonce = town.nonce + 1;
        let submit = (actions(town), envelope()).prop_map(move |((signer, action), envelope)| {
            Step::Submit(MTx { nonce, signer, envelope, action })
        });
        let mut arms =
            vec![(10, (0..DAY_MS / 3).prop_map(|ms| Step::Wait { ms }).boxed()), (86, submit.boxed())];
        if !town.entered.is_empty() {
            let replay = select(town.entered.clone()).prop_map(|nonce| Step::Replay { nonce });
            arms.push((4, replay.boxed()));
        }
        Union::new_weighted(arms).boxed()
    }

    /// Shrinking may remove the transaction a replay sends again: then the replay goes too.
    fn preconditions(town: &Town, step: &Step) -> bool {
        match step {
            Step::Replay { nonce } => town.entered.contains(nonce),
            Step::Submit(tx) => tx.nonce > town.nonce,
            Step::Wait { .. } => true,
        }
    }

    fn apply(mut town: Town, step: &Step) -> Town {
        town.last = match step {
            Step::Wait { ms } => {
                town.now += ms;
                None
            }
            Step::Submit(tx) => {
                town.nonce = tx.nonce;
                let expect = town.model.expect(tx, town.now);
                if expect.is_ok() {
                    town.entered.push(tx.nonce);
                }
                Some(expect)
            }
            Step::Replay { .. } => Some(Err(Refusal::Duplicate)),
        };
        town
    }
}

/// What the test runs did, for the reliability report.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub cases: u64,
    pub transactions: u64,
    pub applied: u64,
    pub rejected: u64,
    pub refused: u64,
    pub reasons: BTreeMap<&'static str, u64>,
}

static STATS: Mutex<Option<Stats>> = Mutex::new(None);

/// Everything counted since the last call, and the count starts again.
pub fn take_stats() -> Stats {
    STATS.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default()
}

fn count(f: impl FnOnce(&mut Stats)) {
    f(STATS.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Stats::default));
}

/// The system under test: the real ledger producing a block per transaction.
pub struct Ledger {
    keys: Vec<SigningKey>,
    index: HashMap<AccountId, Acct>,
    producer: SigningKey,
    state: State,
    blocks: Vec<Block>,
    /// Every transaction in a block, with its block time (for producing the chain again).
    entered: Vec<(u64, VerifiedTx)>,
    /// Every transaction sent, by nonce: replays and references to payments and
    /// cash-outs look here.
    sent: HashMap<Ref, VerifiedTx>,
    now: u64,
    setup_nonce: u64,
}

impl Ledger {
    fn new(town: &Town) -> Ledger {
        let keys: Vec<SigningKey> = (0..KEYS).map(key).collect();
        let index = keys.iter().enumerate().map(|(i, k)| (AccountId::of(k), i)).collect();
        let mut ledger = Ledger {
            keys,
            index,
            producer: SigningKey::from_bytes(&[200; 32]),
            state: State::new(CHAIN),
            blocks: Vec::new(),
            entered: Vec::new(),
            sent: HashMap::new(),
            now: town.now,
            setup_nonce: SETUP_NONCE,
        };
        let genesis_tx = ledger.setup_tx(
            TOWN,
            Action::Genesis { town: ledger.id(TOWN), producer: AccountId::of(&ledger.producer) },
        );
        let block = genesis(&mut ledger.state, genesis_tx.clone(), ledger.now, &ledger.producer);
        ledger.blocks.push(block);
        ledger.entered.push((ledger.now, genesis_tx));
        for (&acct, account) in &town.model.accounts {
            let action = match account.role {
                MRole::Town => continue,
                MRole::Operator => {
                    Action::RegisterOperator { operator: ledger.id(acct), name: format!("op{acct}") }
                }
                MRole::Shop(class) => {
                    Action::RegisterShop { shop: ledger.id(acct), name: format!("shop{acct}"), class }
                }
                MRole::Resident { worker } => Action::RegisterResident {
                    resident: ledger.id(acct),
                    resident_hash: Hash32([acct as u8; 32]),
                    worker,
                },
                MRole::LotteryParty => Action::RegisterDelegate {
                    delegate: ledger.id(acct),
                    name: format!("party{acct}"),
                    delegation: Delegation::LotteryParty,
                },
                MRole::Settler | MRole::ShopRegistrar => Action::RegisterDelegate {
                    delegate: ledger.id(acct),
                    name: format!("delegate{acct}"),
                    delegation: if account.role == MRole::Settler {
                        Delegation::Settler
                    } else {
                        Delegation::ShopRegistrar
                    },
                },
            };
            let signer =
                if matches!(account.role, MRole::Resident { .. }) { OPERATORS[acct % 2] } else { TOWN };
            ledger.setup(signer, action);
        }
        for issue in town.model.issues.values() {
            ledger.setup(TOWN, Action::CreateIssue { issue: issue.params.clone() });
        }
        ledger
    }

    fn id(&self, acct: Acct) -> AccountId {
        AccountId::of(&self.keys[acct])
    }

    fn setup_tx(&mut self, signer: Acct, action: Action) -> VerifiedTx {
        self.setup_nonce += 1;
        let body = TxBody {
            chain_id: CHAIN.into(),
            created_ms: self.now,
            ttl_ms: TTL_MS,
            nonce: self.setup_nonce,
            action,
        };
        decode(CHAIN, SignedTx::sign(CHAIN, &self.keys[signer], &body)).expect("own transaction decodes")
    }

    fn setup(&mut self, signer: Acct, action: Action) {
        let tx = self.setup_tx(signer, action);
        self.submit(tx, &Ok(None), false);
    }

    /// The id of the transaction a reference names; one that names nothing gets an id no
    /// transaction has.
    fn tx_id(&self, r: Ref) -> TxId {
        self.sent.get(&r).map_or_else(
            || {
                let mut id = [0xee; 32];
                id[..8].copy_from_slice(&r.to_be_bytes());
                TxId(id)
            },
            |tx| tx.id,
        )
    }

    fn action(&self, action: &MAction) -> Action {
        match action {
            MAction::Sell { issue, resident, sets, cash } => Action::SellSets {
                issue: *issue,
                resident: self.id(*resident),
                sets: *sets,
                cash_received: Yen(*cash),
            },
            MAction::Pay { shop, amount, invoice } => {
                Action::Pay { shop: self.id(*shop), amount: Yen(*amount), invoice: invoice.text().0 }
            }
            MAction::Refund { payment, amount } => {
                Action::Refund { payment: self.tx_id(*payment), amount: Yen(*amount) }
            }
            MAction::CashOut { issue, amount } => {
                Action::RequestCashOut { issue: *issue, amount: Yen(*amount) }
            }
            MAction::Settle { cash_outs, real_date } => Action::SettleCashOuts {
                cash_outs: cash_outs.iter().map(|r| self.tx_id(*r)).collect(),
                transfer_date: if *real_date { "2027-03-01" } else { "2027-02-30" }.into(),
                file_sha256: Hash32([1; 32]),
            },
            MAction::Expire { issue } => Action::ExpireIssue { issue: *issue },
            MAction::Freeze { account } => Action::Freeze { account: self.id(*account) },
            MAction::Unfreeze { account } => Action::Unfreeze { account: self.id(*account) },
            MAction::ReplaceKey { old, new } => Action::ReplaceKey { old: self.id(*old), new: self.id(*new) },
            MAction::RegisterResident { resident, number, worker } => Action::RegisterResident {
                resident: self.id(*resident),
                resident_hash: Hash32([*number; 32]),
                worker: *worker,
            },
            MAction::RegisterShop { shop, class, named } => Action::RegisterShop {
                shop: self.id(*shop),
                name: if *named { format!("shop{shop}") } else { " ".into() },
                class: *class,
            },
            MAction::CreateIssue { issue } => Action::CreateIssue { issue: issue.clone() },
            MAction::CloseDay { day, sales, expected, counted } => Action::CloseDay {
                day: date(*day),
                sales: sales
                    .iter()
                    .map(|&(issue, sets, cash)| DaySales { issue, sets, cash: Yen(cash) })
                    .collect(),
                expected: Yen(*expected),
                counted: Yen(*counted),
            },
            MAction::RecordDeposit { day, deposited_on, amount, slip } => Action::RecordDeposit {
                day: date(*day),
                deposited_on: date(*deposited_on),
                amount: Yen(*amount),
                slip_reference: slip.map_or_else(String::new, |n| format!("slip-{n}")),
            },
            MAction::SetLottery { issue, parties, times } => Action::SetLottery {
                issue: *issue,
                lottery: LotteryParams {
                    parties: parties.iter().map(|a| self.id(*a)).collect(),
                    commit_deadline_ms: times[0],
                    apply_start_ms: times[1],
                    apply_end_ms: times[2],
                    reveal_end_ms: times[3],
                    purchase_end_ms: times[4],
                    waiting_end_ms: times[5],
                },
            },
            MAction::CommitSecret { issue, secret } => Action::CommitLotterySecret {
                issue: *issue,
                commitment: machi_ledger::sha256(&[*secret; 32]),
            },
            MAction::ApplyLottery { issue, resident, sets } => {
                Action::ApplyLottery { issue: *issue, resident: self.id(*resident), sets: *sets }
            }
            MAction::RevealSecret { issue, secret } => {
                Action::RevealLotterySecret { issue: *issue, secret: Hash32([*secret; 32]) }
            }
            MAction::Draw { issue } => Action::DrawLottery { issue: *issue },
        }
    }

    fn sign(&self, tx: &MTx) -> VerifiedTx {
        let (chain_id, created_ms, ttl_ms) = match tx.envelope {
            Envelope::Fresh => (CHAIN, self.now, TTL_MS),
            Envelope::Stale => (CHAIN, self.now.saturating_sub(u64::from(TTL_MS) + 1_000), TTL_MS),
            Envelope::Early => (CHAIN, self.now + CLOCK_SKEW_MS_MAX + 1, TTL_MS),
            Envelope::LongTtl => (CHAIN, self.now, TTL_MS_MAX + 1),
            Envelope::OtherChain => (OTHER_CHAIN, self.now, TTL_MS),
        };
        let body = TxBody {
            chain_id: chain_id.into(),
            created_ms,
            ttl_ms,
            nonce: tx.nonce,
            action: self.action(&tx.action),
        };
        decode(CHAIN, SignedTx::sign(CHAIN, &self.keys[tx.signer], &body)).expect("own transaction decodes")
    }

    /// Produces a block holding `tx` and checks the ledger's result against `expect`.
    fn submit(&mut self, tx: VerifiedTx, expect: &Expect, counted: bool) {
        let prev: BlockHeader = self.blocks.last().expect("genesis").header.clone();
        let (block, results) = produce(&mut self.state, &prev, self.now, vec![tx.clone()], &self.producer);
        let got: Expect = match results[0] {
            Ok(Outcome::Applied) => Ok(None),
            Ok(Outcome::Rejected(reason)) => Ok(Some(reason)),
            Err(refusal) => Err(refusal),
        };
        assert_eq!(
            &got,
            expect,
            "{:?} by key {}: the ledger's result (left) is not the model's (right)",
            tx.body.action,
            self.index.get(&tx.signed.signer).map_or(usize::MAX, |a| *a)
        );
        if counted {
            count(|s| {
                s.transactions += 1;
                match got {
                    Ok(None) => s.applied += 1,
                    Ok(Some(r)) => {
                        s.rejected += 1;
                        *s.reasons.entry(r.name()).or_default() += 1;
                    }
                    Err(r) => {
                        s.refused += 1;
                        *s.reasons.entry(r.name()).or_default() += 1;
                    }
                }
            });
        }
        if block.txs.is_empty() {
            return;
        }
        self.entered.push((block.header.timestamp_ms, tx));
        self.blocks.push(block);
    }

    /// Every account, balance, purchase count and supply figure agrees with the model,
    /// and the ledger's own invariants hold.
    fn compare(&self, model: &Model) -> Result<(), String> {
        self.state.check_full()?;
        if self.state.accounts.len() != model.accounts.len() {
            return Err(format!(
                "ledger has {} accounts, model {}",
                self.state.accounts.len(),
                model.accounts.len()
            ));
        }
        for (&acct, m) in &model.accounts {
            let Some(account) = self.state.accounts.get(&self.id(acct)) else {
                return Err(format!("key {acct} is in the model, not in the ledger"));
            };
            let role = match m.role {
                MRole::Town => Role::Town,
                MRole::Operator => Role::Operator,
                MRole::Shop(class) => Role::Shop(class),
                MRole::Resident { worker } => Role::Resident { worker },
                MRole::ShopRegistrar => Role::ShopRegistrar,
                MRole::Settler => Role::Settler,
                MRole::LotteryParty => Role::LotteryParty,
            };
            let flags = (account.role, account.frozen, account.frozen_by_town, account.replaced_by);
            let expected = (role, m.frozen, m.town_froze, m.replaced_by.map(|a| self.id(a)));
            if flags != expected {
                return Err(format!("key {acct}: ledger {flags:?}, model {expected:?}"));
            }
        }
        for (key, account) in &self.state.accounts {
            let acct = self.index[key];
            for lot in &account.lots {
                let model = model.balance(acct, lot.issue, lot.kind);
                if model != lot.amount.0 {
                    return Err(format!(
                        "key {acct} issue {} {:?}: ledger {} model {model}",
                        lot.issue, lot.kind, lot.amount.0
                    ));
                }
            }
            for (issue, sets) in &account.bought {
                let model = model.bought.get(&(acct, *issue)).copied().unwrap_or(0);
                if model != *sets {
                    return Err(format!("key {acct} bought {sets} of issue {issue}, model {model}"));
                }
            }
        }
        for (&(acct, issue, kind), &amount) in &model.balances {
            let ledger = self.state.accounts.get(&self.id(acct)).map_or(0, |a| a.balance(issue, kind).0);
            if ledger != amount {
                return Err(format!("key {acct} issue {issue} {kind:?}: model {amount}, ledger {ledger}"));
            }
        }
        if self.state.issues.len() != model.issues.len() {
            return Err(format!(
                "ledger has {} issues, model {}",
                self.state.issues.len(),
                model.issues.len()
            ));
        }
        for (id, issue) in &self.state.issues {
            let Some(m_issue) = model.issues.get(id) else {
                return Err(format!("issue {id} is not in the model"));
            };
            let s = &issue.supply;
            let pairs = [
                ("sets_sold", u64::from(s.sets_sold), u64::from(m_issue.sold)),
                ("expired", s.expired.0, model.expired.get(id).copied().unwrap_or(0)),
                ("fees", s.fees.0, model.fees.get(id).copied().unwrap_or(0)),
                ("pending", s.pending_cash_out.0, model.pending.get(id).copied().unwrap_or(0)),
                ("paid", s.paid_out.0, model.paid.get(id).copied().unwrap_or(0)),
            ];
            for (name, ledger, model) in pairs {
                if ledger != model {
                    return Err(format!("issue {id} {name}: ledger {ledger}, model {model}"));
                }
            }
            if !s.invariant_holds() || s.sets_sold > issue.params.total_sets {
                return Err(format!("issue {id}: supply invariant broken: {s:?}"));
            }
        }
        compare_cash(self, model)?;
        compare_lotteries(self, model)
    }

    /// Replays the chain with every check, and produces it again from the same
    /// transactions: the blocks must be byte-identical.
    fn finish(&self) -> Result<(), String> {
        let mut replayed = State::new(CHAIN);
        let mut prev: Option<&BlockHeader> = None;
        for block in &self.blocks {
            replay(&mut replayed, prev, block, SignatureCheck::All).map_err(|e| e.to_string())?;
            prev = Some(&block.header);
        }
        let mut again = State::new(CHAIN);
        let (first_time, first) = &self.entered[0];
        let mut blocks = vec![genesis(&mut again, first.clone(), *first_time, &self.producer)];
        for (time, tx) in &self.entered[1..] {
            let prev = blocks.last().expect("genesis").header.clone();
            let (block, _) = produce(&mut again, &prev, *time, vec![tx.clone()], &self.producer);
            blocks.push(block);
        }
        if blocks.len() != self.blocks.len()
            || blocks.iter().zip(&self.blocks).any(|(a, b)| a.encode() != b.encode())
        {
            return Err("producing the same transactions again gave different blocks".into());
        }
        let totals = |s: &State| s.issues.values().map(|i| i.supply.clone()).collect::<Vec<_>>();
        if totals(&replayed) != totals(&self.state) || totals(&again) != totals(&self.state) {
            return Err("replay reached a different state".into());
        }
        Ok(())
    }
}

/// A JST day as the ledger writes it; `None` as a date that is not one.
fn date(day: Option<Day>) -> String {
    day.map_or_else(|| "2027-02-30".into(), |d| machi_ledger::time::format_jst_date(d * DAY_MS))
}

/// The counters' sales and closes and the deposits agree with the model.
fn compare_cash(ledger: &Ledger, model: &Model) -> Result<(), String> {
    let mut days = 0;
    for (operator, counter_days) in &ledger.state.counter_days {
        let acct = ledger.index[operator];
        for (day, counter) in counter_days {
            days += 1;
            let d = model
                .counter_sales
                .keys()
                .chain(model.closes.keys())
                .map(|k| k.1)
                .find(|d| date(Some(*d)) == *day)
                .ok_or_else(|| format!("counter {acct} {day} is not in the model"))?;
            let sales: Vec<(u32, u32, u64)> =
                counter.sales.iter().map(|s| (s.issue, s.sets, s.cash.0)).collect();
            let close = counter.close.as_ref().map(|c| (c.expected.0, c.counted.0));
            let expected = (model.day_sales(acct, d), model.closes.get(&(acct, d)).copied());
            if (sales.clone(), close) != expected {
                return Err(format!("counter {acct} {day}: ledger {sales:?} {close:?}, model {expected:?}"));
            }
        }
    }
    let model_days: std::collections::BTreeSet<(Acct, Day)> =
        model.counter_sales.keys().chain(model.closes.keys()).copied().collect();
    if days != model_days.len() {
        return Err(format!("ledger has {days} counter days, model {}", model_days.len()));
    }
    let mut deposits: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for d in &ledger.state.deposits {
        let entry = deposits.entry(d.day.clone()).or_default();
        entry.0 += 1;
        entry.1 += d.amount.0;
    }
    let model_deposits: BTreeMap<String, (usize, u64)> =
        model.deposits.iter().map(|(d, v)| (date(Some(*d)), *v)).collect();
    if deposits != model_deposits {
        return Err(format!("deposits: ledger {deposits:?}, model {model_deposits:?}"));
    }
    Ok(())
}

/// Every lottery agrees with the model: commitments, reveals, applications, the draw and
/// the purchases in each window.
fn compare_lotteries(ledger: &Ledger, model: &Model) -> Result<(), String> {
    let lotteries = &ledger.state.lotteries;
    if lotteries.len() != model.lotteries.len() {
        return Err(format!("ledger has {} lotteries, model {}", lotteries.len(), model.lotteries.len()));
    }
    let acct = |id: &AccountId| ledger.index[id];
    for (issue, m) in &model.lotteries {
        let l = lotteries.get(issue).ok_or_else(|| format!("lottery {issue} is not in the ledger"))?;
        let ledger_view = (
            l.params.parties.iter().map(acct).collect::<Vec<_>>(),
            l.commitments.iter().map(Option::is_some).collect::<Vec<_>>(),
            l.secrets.iter().map(Option::is_some).collect::<Vec<_>>(),
            l.applications.iter().map(|(a, s)| (acct(a), *s)).collect::<BTreeMap<_, _>>(),
        );
        let model_view = (
            m.parties.clone(),
            m.committed.iter().map(Option::is_some).collect::<Vec<_>>(),
            m.revealed.clone(),
            m.apps.clone(),
        );
        if ledger_view != model_view {
            return Err(format!("lottery {issue}: ledger {ledger_view:?}, model {model_view:?}"));
        }
        let drawn = l.result.as_ref().map(|r| {
            (
                r.draw.winners.iter().map(|w| (acct(&w.account), w.won)).collect::<Vec<_>>(),
                r.draw.waiting.iter().map(|w| (acct(&w.account), w.applied)).collect::<Vec<_>>(),
            )
        });
        if drawn != m.drawn {
            return Err(format!("lottery {issue} drawn: ledger {drawn:?}, model {:?}", m.drawn));
        }
        let bought = |map: &BTreeMap<AccountId, u32>| {
            map.iter().map(|(a, n)| (acct(a), *n)).collect::<BTreeMap<_, _>>()
        };
        let ledger_bought = (bought(&l.bought_by_winners), bought(&l.bought_by_waiting), l.sold_first_come);
        let model_bought = (m.bought_winners.clone(), m.bought_waiting.clone(), m.first_come);
        if ledger_bought != model_bought {
            return Err(format!(
                "lottery {issue} purchases: ledger {ledger_bought:?}, model {model_bought:?}"
            ));
        }
    }
    Ok(())
}

/// The state-machine test: the ledger against the reference model.
pub struct LedgerAgainstModel;

impl StateMachineTest for LedgerAgainstModel {
    type SystemUnderTest = Ledger;
    type Reference = Reference;

    fn init_test(town: &Town) -> Ledger {
        Ledger::new(town)
    }

    fn apply(mut ledger: Ledger, town: &Town, step: Step) -> Ledger {
        match step {
            Step::Wait { ms } => ledger.now += ms,
            Step::Submit(tx) => {
                let signed = ledger.sign(&tx);
                ledger.sent.insert(tx.nonce, signed.clone());
                ledger.submit(signed, town.last.as_ref().expect("a transaction's step"), true);
            }
            Step::Replay { nonce } => {
                let tx = ledger.sent.get(&nonce).expect("replays name a transaction sent before").clone();
                ledger.submit(tx, town.last.as_ref().expect("a transaction's step"), true);
            }
        }
        ledger
    }

    fn check_invariants(ledger: &Ledger, town: &Town) {
        if let Err(message) = ledger.compare(&town.model) {
            panic!("the ledger and the model disagree: {message}");
        }
    }

    fn teardown(ledger: Ledger, _town: Town) {
        if let Err(message) = ledger.finish() {
            panic!("at the end of the sequence: {message}");
        }
        count(|s| s.cases += 1);
    }
}

/// The reasons and refusals a sequence can reach: all but `no_genesis`, which needs a
/// chain without its genesis block.
pub fn reachable() -> Vec<&'static str> {
    let refusals = [
        Refusal::UnknownSigner,
        Refusal::WrongRole,
        Refusal::KeyRevoked,
        Refusal::TtlExpired,
        Refusal::NotYetValid,
        Refusal::TtlTooLong,
        Refusal::WrongChain,
        Refusal::Duplicate,
    ];
    Reason::ALL.iter().map(|r| r.name()).chain(refusals.iter().map(|r| r.name())).collect()
}
