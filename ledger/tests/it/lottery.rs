//! Lottery sales (docs/RULES.md, "Lottery sales"): one test per rule, each failing if its
//! rule is removed; the draw's vectors of docs/FORMAT.md ("Lottery draw"); and the draw's
//! properties.

use machi_ledger::lottery::{self, Application, LotteryParams};
use machi_ledger::{Action, Delegation, Hash32, IssueParams, Outcome, Reason, Refusal, SigningKey, Yen};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

use crate::town::{id, issue_params, key, Town, DAY_MS, T0};

const APPLIED: Result<Outcome, Refusal> = Ok(Outcome::Applied);
const ISSUE: u32 = 2;
/// Issue 2's supply; its per-resident cap is 3.
const SETS: u32 = 10;

fn rejected(reason: Reason) -> Result<Outcome, Refusal> {
    Ok(Outcome::Rejected(reason))
}

fn secret(party: u8) -> Hash32 {
    Hash32([party; 32])
}

/// Issue 2 (10 sets, cap 3) on sale from day 10 to day 20; the lottery's schedule in days
/// from T0: commitments until 1, applications 1-3, reveals 3-4, winners 10-12, the
/// waiting list 12-15, then first come.
fn schedule(parties: Vec<machi_ledger::AccountId>) -> LotteryParams {
    LotteryParams {
        parties,
        commit_deadline_ms: T0 + DAY_MS,
        apply_start_ms: T0 + DAY_MS,
        apply_end_ms: T0 + 3 * DAY_MS,
        reveal_end_ms: T0 + 4 * DAY_MS,
        purchase_end_ms: T0 + 12 * DAY_MS,
        waiting_end_ms: T0 + 15 * DAY_MS,
    }
}

struct Lot {
    town: Town,
    /// The bank and the auditor: lottery parties beside the town.
    bank: SigningKey,
    auditor: SigningKey,
}

impl Lot {
    /// A town with `residents` residents, issue 2, and the bank and auditor as lottery
    /// parties; no lottery set yet.
    fn new(residents: u8) -> Lot {
        let mut town = Town::new(residents);
        let t = town.town.clone();
        let issue = IssueParams {
            total_sets: SETS,
            max_sets_per_resident: 3,
            sale_start_ms: T0 + 10 * DAY_MS,
            sale_end_ms: T0 + 20 * DAY_MS,
            ..issue_params(ISSUE)
        };
        town.ok(&t, Action::CreateIssue { issue });
        let (bank, auditor) = (key(50), key(51));
        for (k, name) in [(&bank, "銀行"), (&auditor, "監査")] {
            town.ok(
                &t,
                Action::RegisterDelegate {
                    delegate: id(k),
                    name: name.into(),
                    delegation: Delegation::LotteryParty,
                },
            );
        }
        Lot { town, bank, auditor }
    }

    fn parties(&self) -> Vec<SigningKey> {
        vec![self.town.town.clone(), self.bank.clone(), self.auditor.clone()]
    }

    fn set(&mut self) -> Result<Outcome, Refusal> {
        let parties = self.parties().iter().map(id).collect();
        let t = self.town.town.clone();
        self.town.run(&t, Action::SetLottery { issue: ISSUE, lottery: schedule(parties) })
    }

    fn commit(&mut self, party: usize) -> Result<Outcome, Refusal> {
        let k = self.parties()[party].clone();
        let commitment = lottery::commitment(&secret(party as u8 + 1));
        self.town.run(&k, Action::CommitLotterySecret { issue: ISSUE, commitment })
    }

    /// Resident `i` applies for `sets`, signing themself.
    fn apply(&mut self, i: usize, sets: u32) -> Result<Outcome, Refusal> {
        let k = self.town.residents[i].clone();
        self.town.run(&k, Action::ApplyLottery { issue: ISSUE, resident: id(&k), sets })
    }

    fn reveal(&mut self, party: usize) -> Result<Outcome, Refusal> {
        let k = self.parties()[party].clone();
        self.town.run(&k, Action::RevealLotterySecret { issue: ISSUE, secret: secret(party as u8 + 1) })
    }

    fn draw(&mut self) -> Result<Outcome, Refusal> {
        let t = self.town.town.clone();
        self.town.run(&t, Action::DrawLottery { issue: ISSUE })
    }

    /// Set, every party committed, the window open.
    fn open(residents: u8) -> Lot {
        let mut lot = Lot::new(residents);
        assert_eq!(lot.set(), APPLIED);
        for p in 0..3 {
            assert_eq!(lot.commit(p), APPLIED);
        }
        lot.town.now = T0 + DAY_MS;
        lot
    }

    fn sell(&mut self, i: usize, sets: u32) -> Result<Outcome, Refusal> {
        self.town.sell_issue(ISSUE, i, sets)
    }

    fn result(&self) -> &machi_ledger::LotteryResult {
        self.town.state.lotteries[&ISSUE].result.as_ref().expect("drawn")
    }

    /// The index of the resident with this account.
    fn resident(&self, account: &machi_ledger::AccountId) -> usize {
        self.town.residents.iter().position(|k| id(k) == *account).expect("a resident")
    }
}

#[test]
fn only_the_town_sets_a_lottery_before_the_sale_and_before_any_application() {
    let mut lot = Lot::new(2);
    let parties: Vec<_> = lot.parties().iter().map(id).collect();
    let op = lot.town.operator.clone();
    let t = lot.town.town.clone();
    let set = |lottery| Action::SetLottery { issue: ISSUE, lottery };
    assert_eq!(lot.town.run(&op, set(schedule(parties.clone()))), Err(Refusal::WrongRole));
    let unknown = Action::SetLottery { issue: 9, lottery: schedule(parties.clone()) };
    assert_eq!(lot.town.run(&t, unknown), rejected(Reason::UnknownIssue));
    // Out of order, repeated or unfit parties, a schedule past the sale's end.
    let bad = [
        LotteryParams { apply_end_ms: T0 + DAY_MS, ..schedule(parties.clone()) },
        LotteryParams { commit_deadline_ms: T0, ..schedule(parties.clone()) },
        LotteryParams { waiting_end_ms: T0 + 21 * DAY_MS, ..schedule(parties.clone()) },
        schedule(vec![parties[0], parties[0]]),
        schedule(vec![]),
        schedule(vec![parties[0], id(&op)]),
    ];
    for lottery in bad {
        assert_eq!(
            lot.town.run(&t, set(lottery.clone())),
            rejected(Reason::InvalidParameters),
            "{lottery:?}"
        );
    }
    assert_eq!(lot.set(), APPLIED);
    assert_eq!(lot.commit(0), APPLIED);
    // Set again before any application: the commitments start over.
    assert_eq!(lot.set(), APPLIED);
    assert_eq!(lot.town.state.lotteries[&ISSUE].commitments, vec![None, None, None]);
    for p in 0..3 {
        assert_eq!(lot.commit(p), APPLIED);
    }
    lot.town.now = T0 + DAY_MS;
    assert_eq!(lot.apply(0, 1), APPLIED);
    assert_eq!(lot.set(), rejected(Reason::LotteryLocked));
    // Not on an issue whose sale started (issue 1 is on sale from T0).
    let mut other = Lot::new(1);
    let lottery = schedule(other.parties().iter().map(id).collect());
    let t = other.town.town.clone();
    assert_eq!(other.town.run(&t, Action::SetLottery { issue: 1, lottery }), rejected(Reason::LotteryLocked));
}

#[test]
fn named_parties_commit_once_before_the_deadline() {
    let mut lot = Lot::new(1);
    assert_eq!(lot.commit(1), rejected(Reason::NotALottery));
    assert_eq!(lot.set(), APPLIED);
    // A lottery party not named on this lottery.
    let stranger = key(52);
    let t = lot.town.town.clone();
    let delegation = Delegation::LotteryParty;
    lot.town.ok(&t, Action::RegisterDelegate { delegate: id(&stranger), name: "他".into(), delegation });
    let commit = Action::CommitLotterySecret { issue: ISSUE, commitment: Hash32([7; 32]) };
    assert_eq!(lot.town.run(&stranger, commit.clone()), rejected(Reason::NotALotteryParty));
    // Residents and operators never commit.
    let op = lot.town.operator.clone();
    assert_eq!(lot.town.run(&op, commit), Err(Refusal::WrongRole));
    assert_eq!(lot.commit(1), APPLIED);
    assert_eq!(lot.commit(1), rejected(Reason::AlreadyCommitted));
    lot.town.now = T0 + DAY_MS;
    assert_eq!(lot.commit(2), rejected(Reason::CommitClosed));
}

#[test]
fn applications_wait_for_every_commitment_and_keep_the_window() {
    let mut lot = Lot::new(2);
    assert_eq!(lot.set(), APPLIED);
    assert_eq!(lot.commit(0), APPLIED);
    assert_eq!(lot.commit(1), APPLIED);
    lot.town.now = T0 + DAY_MS;
    // The auditor did not commit by the deadline: the window never opens.
    assert_eq!(lot.apply(0, 1), rejected(Reason::LotteryNotReady));
    assert_eq!(lot.town.state.lotteries[&ISSUE].applications.len(), 0);

    let mut lot = Lot::open(2);
    lot.town.now = T0 + DAY_MS - 1;
    assert_eq!(lot.apply(0, 1), rejected(Reason::ApplicationsNotOpen));
    lot.town.now = T0 + 3 * DAY_MS;
    assert_eq!(lot.apply(0, 1), rejected(Reason::ApplicationsNotOpen));
    lot.town.now = T0 + 3 * DAY_MS - 1;
    assert_eq!(lot.apply(0, 1), APPLIED);
}

#[test]
fn a_resident_applies_once_within_the_cap_for_themself_or_at_the_counter() {
    let mut lot = Lot::open(3);
    assert_eq!(lot.apply(0, 0), rejected(Reason::InvalidParameters));
    assert_eq!(lot.apply(0, 4), rejected(Reason::OverCap));
    // Not for another resident with one's own card...
    let (r0, r1) = (lot.town.residents[0].clone(), id(&lot.town.residents[1]));
    let for_other = Action::ApplyLottery { issue: ISSUE, resident: r1, sets: 1 };
    assert_eq!(lot.town.run(&r0, for_other.clone()), rejected(Reason::InvalidParameters));
    // ...but the counter may, for a family member.
    let op = lot.town.operator.clone();
    assert_eq!(lot.town.run(&op, for_other), APPLIED);
    // Only residents apply.
    let shop = id(&lot.town.large);
    let for_shop = Action::ApplyLottery { issue: ISSUE, resident: shop, sets: 1 };
    assert_eq!(lot.town.run(&op, for_shop), rejected(Reason::NotAResident));
    // A second application replaces the first.
    assert_eq!(lot.apply(0, 3), APPLIED);
    assert_eq!(lot.apply(0, 2), APPLIED);
    let apps = &lot.town.state.lotteries[&ISSUE].applications;
    assert_eq!(apps.get(&id(&r0)), Some(&2));
    assert_eq!(apps.len(), 2);
    // Workers only where the issue takes them (issue 2 does not).
    lot.town.residents.push(key(130));
    lot.town.register_resident(3, true);
    assert_eq!(lot.apply(3, 1), rejected(Reason::WorkersNotEligible));
    // An issue sold first come has no applications.
    let k = lot.town.residents[2].clone();
    let first_come = Action::ApplyLottery { issue: 1, resident: id(&k), sets: 1 };
    assert_eq!(lot.town.run(&k, first_come), rejected(Reason::NotALottery));
}

#[test]
fn secrets_are_revealed_after_the_window_and_must_match() {
    let mut lot = Lot::open(1);
    assert_eq!(lot.apply(0, 1), APPLIED);
    assert_eq!(lot.reveal(0), rejected(Reason::RevealNotOpen));
    lot.town.now = T0 + 3 * DAY_MS;
    let bank = lot.bank.clone();
    let wrong = Action::RevealLotterySecret { issue: ISSUE, secret: secret(9) };
    assert_eq!(lot.town.run(&bank, wrong), rejected(Reason::RevealMismatch));
    assert_eq!(lot.reveal(1), APPLIED);
    assert_eq!(lot.reveal(1), rejected(Reason::AlreadyRevealed));
    lot.town.now = T0 + 4 * DAY_MS;
    assert_eq!(lot.reveal(0), rejected(Reason::RevealNotOpen));
}

#[test]
fn the_draw_is_once_after_the_reveals_and_names_who_did_not_reveal() {
    let mut lot = Lot::open(4);
    for i in 0..4 {
        assert_eq!(lot.apply(i, 3), APPLIED);
    }
    lot.town.now = T0 + 3 * DAY_MS;
    assert_eq!(lot.reveal(0), APPLIED);
    assert_eq!(lot.reveal(1), APPLIED);
    // The auditor has not revealed and the period is still running.
    assert_eq!(lot.draw(), rejected(Reason::DrawTooEarly));
    let op = lot.town.operator.clone();
    assert_eq!(lot.town.run(&op, Action::DrawLottery { issue: ISSUE }), Err(Refusal::WrongRole));
    lot.town.now = T0 + 4 * DAY_MS;
    // Any party may draw.
    let bank = lot.bank.clone();
    assert_eq!(lot.town.run(&bank, Action::DrawLottery { issue: ISSUE }), APPLIED);
    assert_eq!(lot.draw(), rejected(Reason::AlreadyDrawn));
    let result = lot.result().clone();
    assert_eq!(result.missing, vec![id(&lot.auditor)]);
    let apps: Vec<Application> =
        lot.town.residents.iter().map(|k| Application { account: id(k), sets: 3 }).collect();
    let expected = lottery::draw(ISSUE, &[Some(secret(1)), Some(secret(2)), None], &apps, SETS).unwrap();
    assert_eq!(result.draw, expected);
    assert_eq!(result.draw.sets_won(), SETS);
    assert_eq!(result.draw.winners.iter().map(|w| w.won).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
}

#[test]
fn everyone_revealed_draws_at_once() {
    let mut lot = Lot::open(1);
    assert_eq!(lot.apply(0, 1), APPLIED);
    lot.town.now = T0 + 3 * DAY_MS;
    for p in 0..2 {
        assert_eq!(lot.reveal(p), APPLIED);
    }
    assert_eq!(lot.draw(), rejected(Reason::DrawTooEarly));
    assert_eq!(lot.reveal(2), APPLIED);
    assert_eq!(lot.draw(), APPLIED);
    assert!(lot.result().missing.is_empty());
}

#[test]
fn winners_buy_what_they_won_then_the_waiting_list_then_first_come() {
    // Six residents ask for 3 each: 10 sets give four winners 3, 3, 3 and 1 (the one at
    // the boundary), and a waiting list of two.
    let mut lot = Lot::open(6);
    for i in 0..6 {
        assert_eq!(lot.apply(i, 3), APPLIED);
    }
    lot.town.now = T0 + 3 * DAY_MS;
    for p in 0..3 {
        assert_eq!(lot.reveal(p), APPLIED);
    }
    lot.town.now = T0 + 10 * DAY_MS;
    assert_eq!(lot.sell(0, 1), rejected(Reason::LotteryNotDrawn));
    assert_eq!(lot.draw(), APPLIED);
    let result = lot.result().clone();
    let winners: Vec<usize> = result.draw.winners.iter().map(|w| lot.resident(&w.account)).collect();
    let waiting: Vec<usize> = result.draw.waiting.iter().map(|w| lot.resident(&w.account)).collect();
    assert_eq!(result.draw.winners.iter().map(|w| w.won).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
    assert_eq!(waiting.len(), 2);

    // The winners' window: only winners, up to what they won.
    assert_eq!(lot.sell(waiting[0], 1), rejected(Reason::NotAllotted));
    assert_eq!(lot.sell(winners[3], 2), rejected(Reason::OverAllotment));
    assert_eq!(lot.sell(winners[3], 1), APPLIED);
    assert_eq!(lot.sell(winners[3], 1), rejected(Reason::OverAllotment));
    assert_eq!(lot.sell(winners[0], 3), APPLIED);
    assert_eq!(lot.sell(winners[1], 2), APPLIED);
    // winners[1] leaves 1 and winners[2] 3: 4 unclaimed sets go down the waiting list,
    // 3 to the first, the remainder 1 to the second.
    lot.town.now = T0 + 12 * DAY_MS;
    assert_eq!(lot.sell(winners[2], 1), rejected(Reason::NotAllotted));
    let allotment = lot.town.state.lotteries[&ISSUE].waiting_allotment();
    let allotted: Vec<(usize, u32)> = allotment.iter().map(|a| (lot.resident(&a.account), a.won)).collect();
    assert_eq!(allotted, vec![(waiting[0], 3), (waiting[1], 1)]);
    assert_eq!(lot.sell(waiting[1], 2), rejected(Reason::OverAllotment));
    assert_eq!(lot.sell(waiting[1], 1), APPLIED);
    assert_eq!(lot.sell(waiting[0], 2), APPLIED);
    // First come after the waiting list's window, within the cap: the one set left.
    lot.town.now = T0 + 15 * DAY_MS;
    assert_eq!(lot.sell(winners[1], 2), rejected(Reason::NotEnoughSetsLeft));
    assert_eq!(lot.sell(winners[2], 1), APPLIED);
    assert_eq!(lot.sell(winners[1], 1), rejected(Reason::SoldOut));
    let state = &lot.town.state.lotteries[&ISSUE];
    assert_eq!(state.bought_by_winners.values().sum::<u32>(), 6);
    assert_eq!(state.bought_by_waiting.values().sum::<u32>(), 3);
    assert_eq!(state.sold_first_come, 1);
    assert_eq!(lot.town.state.issues[&ISSUE].supply.sets_sold, SETS);
}

#[test]
fn a_replaced_card_keeps_its_application_and_its_win() {
    let mut lot = Lot::open(2);
    assert_eq!(lot.apply(0, 2), APPLIED);
    // Lost before the draw: the application moves to the new card.
    let op = lot.town.operator.clone();
    let (old, new) = (id(&lot.town.residents[0]), key(140));
    lot.town.ok(&op, Action::ReplaceKey { old, new: id(&new) });
    assert_eq!(lot.town.state.lotteries[&ISSUE].applications.get(&id(&new)), Some(&2));
    assert!(!lot.town.state.lotteries[&ISSUE].applications.contains_key(&old));
    lot.town.residents[0] = new;
    lot.town.now = T0 + 3 * DAY_MS;
    for p in 0..3 {
        assert_eq!(lot.reveal(p), APPLIED);
    }
    assert_eq!(lot.draw(), APPLIED);
    // Lost after the draw: the newest card buys what was won.
    let (old, newer) = (id(&lot.town.residents[0]), key(141));
    lot.town.ok(&op, Action::ReplaceKey { old, new: id(&newer) });
    lot.town.residents[0] = newer;
    lot.town.now = T0 + 10 * DAY_MS;
    assert_eq!(lot.sell(0, 2), APPLIED);
    assert_eq!(lot.town.state.lotteries[&ISSUE].bought_by_winners.get(&old), Some(&2));
}

#[test]
fn issues_sold_first_come_are_unchanged() {
    let mut town = Town::new(1);
    assert_eq!(town.sell(0, 2), APPLIED);
    assert_eq!(town.state.issues[&1].supply.cash_received, Yen(20_000));
    assert!(town.state.lotteries.is_empty());
}

// --- docs/FORMAT.md's draw vectors ---------------------------------------------------

const FORMAT_MD: &str = include_str!("../../../docs/FORMAT.md");

/// One ```lottery block of FORMAT.md: inputs (`issue`, `supply`, `secret`, `application`)
/// and the expected lines (`=> ...`), recomputed.
#[test]
fn format_md_draw_vectors_hold() {
    let mut blocks = 0;
    let mut rest = FORMAT_MD;
    while let Some(start) = rest.find("```lottery\n") {
        let body = &rest[start + "```lottery\n".len()..];
        let end = body.find("```").expect("closed block");
        check_vector(&body[..end]);
        blocks += 1;
        rest = &body[end..];
    }
    assert!(blocks >= 2, "FORMAT.md carries the draw's vectors ({blocks} found)");
}

fn check_vector(text: &str) {
    let h32 = |t: &str| Hash32::from_hex(t).unwrap_or_else(|| panic!("64 hex digits: {t}"));
    let (mut issue, mut supply, mut secrets, mut apps) = (0, 0, Vec::new(), Vec::new());
    let mut expected = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["issue", n] => issue = n.parse().unwrap(),
            ["supply", n] => supply = n.parse().unwrap(),
            ["secret", "-"] => secrets.push(None),
            ["secret", s] => secrets.push(Some(h32(s))),
            ["application", a, sets] => apps.push(Application {
                account: machi_ledger::AccountId(h32(a).0),
                sets: sets.parse().unwrap(),
            }),
            ["=>", ..] => expected.push(line.to_string()),
            _ => panic!("FORMAT.md: unknown lottery vector line {line:?}"),
        }
    }
    let draw = lottery::draw(issue, &secrets, &apps, supply).unwrap();
    let mut got =
        vec![format!("=> applications_root {}", draw.applications_root), format!("=> seed {}", draw.seed)];
    for w in &draw.winners {
        got.push(format!("=> winner {} {} {} {}", w.key, w.account, w.applied, w.won));
    }
    for w in &draw.waiting {
        got.push(format!("=> waiting {} {} {}", w.key, w.account, w.applied));
    }
    assert_eq!(expected, got, "FORMAT.md lottery vector:\n{text}");
    // Listed in another order, the applications draw the same.
    apps.reverse();
    assert_eq!(lottery::draw(issue, &secrets, &apps, supply).unwrap(), draw);
}

// --- properties of the draw ------------------------------------------------------------

fn config() -> ProptestConfig {
    let cases = std::env::var("MACHI_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512);
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x6d61_6368_692d_6c74),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/regressions/lottery.txt"
        )))),
        ..ProptestConfig::default()
    }
}

/// Up to 60 applications from distinct accounts, 1-5 sets each.
fn applications() -> impl Strategy<Value = Vec<Application>> {
    prop::collection::btree_map(any::<[u8; 32]>(), 1u32..=5, 0..60).prop_map(|apps| {
        apps.into_iter().map(|(a, sets)| Application { account: machi_ledger::AccountId(a), sets }).collect()
    })
}

fn secrets() -> impl Strategy<Value = Vec<Option<Hash32>>> {
    prop::collection::vec(prop::option::of(any::<[u8; 32]>().prop_map(Hash32)), 1..4)
}

proptest! {
    #![proptest_config(config())]

    /// The supply is never exceeded, nobody gets more than they asked for, and everyone
    /// who applied is a winner or on the waiting list exactly once; only the last winner
    /// gets less than asked, and only if the supply ran out there.
    #[test]
    fn the_draw_gives_no_more_than_the_supply_nor_than_asked(
        issue in any::<u32>(), secrets in secrets(), apps in applications(), supply in 0u32..200,
    ) {
        let draw = lottery::draw(issue, &secrets, &apps, supply).unwrap();
        prop_assert!(draw.sets_won() <= supply);
        let mut seen: Vec<_> = draw.winners.iter().chain(&draw.waiting).map(|p| p.account).collect();
        seen.sort();
        let mut applied: Vec<_> = apps.iter().map(|a| a.account).collect();
        applied.sort();
        prop_assert_eq!(seen, applied);
        for (i, w) in draw.winners.iter().enumerate() {
            let asked = apps.iter().find(|a| a.account == w.account).unwrap().sets;
            prop_assert_eq!(w.applied, asked);
            prop_assert!(w.won >= 1 && w.won <= asked);
            if w.won < asked {
                prop_assert_eq!(i, draw.winners.len() - 1);
                prop_assert_eq!(draw.sets_won(), supply);
            }
        }
        for w in &draw.waiting {
            prop_assert_eq!(w.won, 0);
        }
        if !draw.waiting.is_empty() {
            prop_assert_eq!(draw.sets_won(), supply);
        }
        // The order is by SHA-256(seed || account), winners before the waiting list.
        let keys: Vec<Hash32> = draw.winners.iter().chain(&draw.waiting).map(|p| p.key).collect();
        prop_assert!(keys.windows(2).all(|k| k[0] < k[1]));
    }

    /// Given the seed, the result does not depend on the order of the applications.
    #[test]
    fn the_draw_does_not_depend_on_the_listing_order(
        secrets in secrets(), apps in applications(), supply in 0u32..200, shuffle in any::<u64>(),
    ) {
        let draw = lottery::draw(7, &secrets, &apps, supply).unwrap();
        let mut shuffled = apps.clone();
        // A deterministic shuffle from the case's own number.
        let mut state = shuffle | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(lottery::draw(7, &secrets, &shuffled, supply).unwrap(), draw);
    }

    /// The waiting list's allotment gives the unclaimed sets in order, never more than
    /// asked, never more than unclaimed.
    #[test]
    fn the_waiting_allotment_stays_within_what_is_unclaimed(apps in applications(), unclaimed in 0u32..100) {
        let draw = lottery::draw(1, &[None], &apps, 0).unwrap();
        let (given, rest) = lottery::allot(draw.waiting.clone(), unclaimed);
        prop_assert!(given.iter().map(|g| g.won).sum::<u32>() <= unclaimed);
        prop_assert!(given.iter().all(|g| g.won >= 1 && g.won <= g.applied));
        prop_assert_eq!(given.len() + rest.len(), apps.len());
    }
}

/// The lottery's kinds are appended after every earlier one (FORMAT.md: indices 18-22),
/// and each decodes back from its one encoding.
#[test]
fn the_lottery_kinds_take_the_indices_18_to_22() {
    let a = machi_ledger::AccountId([0x11; 32]);
    let kinds = [
        (18, Action::SetLottery { issue: 2, lottery: schedule(vec![a]) }),
        (19, Action::CommitLotterySecret { issue: 2, commitment: Hash32([1; 32]) }),
        (20, Action::ApplyLottery { issue: 2, resident: a, sets: 3 }),
        (21, Action::RevealLotterySecret { issue: 2, secret: Hash32([2; 32]) }),
        (22, Action::DrawLottery { issue: 2 }),
    ];
    for (index, action) in kinds {
        let body = machi_ledger::TxBody { chain_id: "c".into(), created_ms: 1, ttl_ms: 1, nonce: 1, action };
        let bytes = body.encode();
        // chain_id "c" (2 bytes), created_ms, ttl_ms and nonce (1 byte each), then the index.
        assert_eq!(bytes[5], index, "{:?}", body.action);
        assert_eq!(machi_ledger::TxBody::decode(&bytes), Ok(body));
    }
    // draw_lottery of issue 2: the index, then the issue as a varint.
    let body = machi_ledger::TxBody {
        chain_id: "c".into(),
        created_ms: 1,
        ttl_ms: 1,
        nonce: 1,
        action: Action::DrawLottery { issue: 2 },
    };
    assert_eq!(hex::encode(body.encode()), "01630101011602");
}
