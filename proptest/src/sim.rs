//! The simulation: random sequences of every transaction kind, valid and not, from many
//! signers over several issues with time moving forward, applied through the real
//! ledger's block production and to the reference model. After every step the two must
//! agree on the outcome and on every balance, and the ledger's invariants must hold.
//! At the end the blocks are replayed with full checks and produced again from scratch:
//! the bytes must be identical.

use std::collections::{BTreeMap, HashMap};

use machi_ledger::{
    decode, genesis, produce, replay, AccountId, Action, Block, BlockHeader, Hash32, IssueParams, Kind,
    Outcome, RateBp, Reason, Refusal, ShopClass, SignatureCheck, SignedTx, SigningKey, State, TxBody, TxId,
    VerifiedTx, Yen,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::{Acct, Expect, MAccount, MIssue, MRole, Model};

const CHAIN: &str = "sim-town";
const DAY_MS: u64 = 24 * 60 * 60 * 1000;
const T0: u64 = 1_799_074_800_000;
const TOWN: Acct = 0;
const OPERATORS: [Acct; 2] = [1, 2];
const SHOPS: [Acct; 3] = [3, 4, 5];
const RESIDENTS: std::ops::Range<Acct> = 6..14;
/// Keys 14..24 are never registered at first: strangers, and new keys for lost cards.
/// Key 24 is the town's delegated settlement key.
const SETTLER: Acct = 24;
const KEYS: usize = 25;

/// What a run did, for the reliability report.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub steps: u64,
    pub applied: u64,
    pub rejected: u64,
    pub refused: u64,
    pub reasons: BTreeMap<String, u64>,
}

#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub step: usize,
    pub message: String,
}

struct Sim {
    rng: StdRng,
    keys: Vec<SigningKey>,
    index: HashMap<AccountId, Acct>,
    producer: SigningKey,
    state: State,
    model: Model,
    blocks: Vec<Block>,
    /// Every transaction that entered a block, with its block time (for the re-run).
    entered: Vec<(u64, VerifiedTx)>,
    history: Vec<VerifiedTx>,
    now: u64,
    nonce: u64,
    stats: Stats,
}

fn id(key: &SigningKey) -> AccountId {
    AccountId(key.verifying_key().to_bytes())
}

/// Runs one case of `steps` random transactions from `seed`. A panic inside the ledger
/// (a broken invariant) is a failure of that seed too.
pub fn run(seed: u64, steps: usize) -> Result<Stats, Failure> {
    std::panic::catch_unwind(|| run_unguarded(seed, steps)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(Failure { seed, step: 0, message: format!("the ledger panicked: {message}") })
    })
}

fn run_unguarded(seed: u64, steps: usize) -> Result<Stats, Failure> {
    let mut sim = Sim::new(seed);
    let fail = |step, message| Failure { seed, step, message };
    sim.setup().map_err(|m| fail(0, m))?;
    for step in 1..=steps {
        sim.step().map_err(|m| fail(step, m))?;
        sim.compare().map_err(|m| fail(step, m))?;
    }
    sim.finish().map_err(|m| fail(steps, m))?;
    Ok(sim.stats)
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let keys: Vec<SigningKey> = (0..KEYS).map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32])).collect();
        let index = keys.iter().enumerate().map(|(i, k)| (id(k), i)).collect();
        Sim {
            rng: StdRng::seed_from_u64(seed),
            keys,
            index,
            producer: SigningKey::from_bytes(&[200; 32]),
            state: State::new(CHAIN),
            model: Model::default(),
            blocks: Vec::new(),
            entered: Vec::new(),
            history: Vec::new(),
            now: T0,
            nonce: 0,
            stats: Stats::default(),
        }
    }

    fn tx(&mut self, signer: Acct, action: Action) -> VerifiedTx {
        self.nonce += 1;
        let body = TxBody {
            chain_id: CHAIN.into(),
            created_ms: self.now,
            ttl_ms: 60_000,
            nonce: self.nonce,
            action,
        };
        decode(CHAIN, SignedTx::sign(CHAIN, &self.keys[signer], &body)).expect("own transaction decodes")
    }

    /// Genesis, operators, shops, residents and 2-3 issues with random parameters.
    fn setup(&mut self) -> Result<(), String> {
        let g = self.tx(TOWN, Action::Genesis { town: id(&self.keys[TOWN]), producer: id(&self.producer) });
        self.blocks.push(genesis(&mut self.state, g.clone(), self.now, &self.producer));
        self.entered.push((self.now, g));
        self.model.accounts.insert(TOWN, MAccount::new(MRole::Town));
        let mut setup = Vec::new();
        for (i, &op) in OPERATORS.iter().enumerate() {
            setup.push((
                TOWN,
                Action::RegisterOperator { operator: id(&self.keys[op]), name: format!("op{i}") },
                MRole::Operator,
            ));
        }
        for (i, &shop) in SHOPS.iter().enumerate() {
            let class = if i == 0 { ShopClass::Large } else { ShopClass::Local };
            setup.push((
                TOWN,
                Action::RegisterShop { shop: id(&self.keys[shop]), name: format!("shop{i}"), class },
                MRole::Shop(class),
            ));
        }
        for r in RESIDENTS {
            let action = Action::RegisterResident {
                resident: id(&self.keys[r]),
                resident_hash: Hash32([r as u8; 32]),
                worker: false,
            };
            setup.push((OPERATORS[r % 2], action, MRole::Resident));
        }
        setup.push((
            TOWN,
            Action::RegisterDelegate {
                delegate: id(&self.keys[SETTLER]),
                name: "settlement".into(),
                delegation: machi_ledger::Delegation::Settler,
            },
            MRole::Settler,
        ));
        for (signer, action, role) in setup {
            let target = match &action {
                Action::RegisterOperator { operator: a, .. }
                | Action::RegisterShop { shop: a, .. }
                | Action::RegisterResident { resident: a, .. }
                | Action::RegisterDelegate { delegate: a, .. } => self.index[a],
                _ => unreachable!("setup registers accounts only"),
            };
            let tx = self.tx(signer, action);
            self.submit(tx, Ok(None))?;
            self.model.accounts.insert(target, MAccount::new(role));
        }
        let issues = self.rng.gen_range(2..=3);
        for issue in 1..=issues {
            let params = self.random_issue(issue);
            let tx = self.tx(TOWN, Action::CreateIssue { issue: params.clone() });
            self.submit(tx, Ok(None))?;
            self.model
                .issues
                .insert(issue, MIssue { params, sold: 0, residents_expired: false, shops_expired: false });
        }
        Ok(())
    }

    fn random_issue(&mut self, id: u32) -> IssueParams {
        let r = &mut self.rng;
        let sale_start_ms = self.now + r.gen_range(0..DAY_MS / 8);
        let sale_end_ms = sale_start_ms + r.gen_range(DAY_MS..4 * DAY_MS);
        let spend_until_ms = sale_end_ms + r.gen_range(0..10 * DAY_MS);
        let total_sets = r.gen_range(3..=12);
        IssueParams {
            id,
            name: format!("issue {id}"),
            price: Yen(r.gen_range(1..=10) * 1_000),
            common_per_set: Yen(r.gen_range(0..=8) * 1_000 + 250),
            local_per_set: Yen(r.gen_range(0..=8) * 1_000),
            total_sets,
            max_sets_per_resident: r.gen_range(1..=total_sets.min(4)),
            workers_may_buy: false,
            sale_start_ms,
            sale_end_ms,
            spend_until_ms,
            cash_out_deadline_ms: spend_until_ms + r.gen_range(0..5 * DAY_MS),
            cash_out_fee: RateBp(r.gen_range(0..=300)),
        }
    }

    /// Produces a block holding `tx` and checks the ledger's result against `expect`.
    fn submit(&mut self, tx: VerifiedTx, expect: Expect) -> Result<(), String> {
        let prev: BlockHeader = self.blocks.last().expect("genesis").header.clone();
        let what = format!("{:?} by key {}", tx.body.action, self.index[&tx.signed.signer]);
        let (block, results) = produce(&mut self.state, &prev, self.now, vec![tx.clone()], &self.producer);
        let got: Expect = match results[0] {
            Ok(Outcome::Applied) => Ok(None),
            Ok(Outcome::Rejected(reason)) => Ok(Some(reason)),
            Err(refusal) => Err(refusal),
        };
        if got != expect {
            return Err(format!("{what}: ledger gave {got:?}, model expects {expect:?}"));
        }
        self.stats.steps += 1;
        match got {
            Ok(None) => self.stats.applied += 1,
            Ok(Some(r)) => {
                self.stats.rejected += 1;
                *self.stats.reasons.entry(r.name().to_string()).or_default() += 1;
            }
            Err(r) => {
                self.stats.refused += 1;
                *self.stats.reasons.entry(r.name().to_string()).or_default() += 1;
            }
        }
        if block.txs.is_empty() {
            return Ok(());
        }
        self.model.seen.insert(tx.id);
        self.entered.push((block.header.timestamp_ms, tx.clone()));
        self.history.push(tx);
        self.blocks.push(block);
        Ok(())
    }

    fn pick(&mut self, from: &[Acct]) -> Acct {
        from[self.rng.gen_range(0..from.len())]
    }

    fn any_key(&mut self) -> Acct {
        self.rng.gen_range(0..KEYS)
    }

    fn issue_id(&mut self) -> u32 {
        // Mostly real issues, sometimes one that does not exist.
        if self.rng.gen_bool(0.95) {
            self.rng.gen_range(1..=self.model.issues.len() as u32)
        } else {
            99
        }
    }

    /// The model's expectation for `signer` doing something only `allowed` roles may do.
    fn expect(
        &mut self,
        signer: Acct,
        allowed: impl Fn(MRole) -> bool,
        rule: impl FnOnce(&mut Model) -> Option<Reason>,
    ) -> Expect {
        self.model.admit(signer, allowed)?;
        if self.model.frozen(signer) {
            return Ok(Some(Reason::AccountFrozen));
        }
        Ok(rule(&mut self.model))
    }

    fn step(&mut self) -> Result<(), String> {
        // Mostly registered residents; sometimes a key that is new or replaced.
        let residents: Vec<Acct> =
            if self.rng.gen_bool(0.85) { RESIDENTS.collect() } else { (14..KEYS).collect() };
        let mut roll = self.rng.gen_range(0..100);
        if (55..=64).contains(&roll) && self.model.payments.is_empty() {
            roll = 30; // nothing to refund yet: pay instead
        }
        let now = self.now;
        match roll {
            0..=9 => {
                self.now += self.rng.gen_range(0..DAY_MS / 3);
                Ok(())
            }
            10..=29 => {
                let signer = if self.rng.gen_bool(0.9) { self.pick(&OPERATORS) } else { self.any_key() };
                let resident = self.pick(&residents);
                let issue = self.issue_id();
                let sets = self.rng.gen_range(0..=3);
                let price = self.model.issues.get(&issue).map_or(10_000, |i| i.params.price.0);
                let cash = if self.rng.gen_bool(0.95) {
                    price * u64::from(sets)
                } else {
                    price * u64::from(sets) + 1
                };
                let action = Action::SellSets {
                    issue,
                    resident: id(&self.keys[resident]),
                    sets,
                    cash_received: Yen(cash),
                };
                let tx = self.tx(signer, action);
                let expect = self.expect(
                    signer,
                    |r| r == MRole::Operator,
                    |m| m.sell(resident, issue, sets, cash, now),
                );
                self.submit(tx, expect)
            }
            30..=54 => {
                let signer = if self.rng.gen_bool(0.9) { self.pick(&residents) } else { self.any_key() };
                let shop = if self.rng.gen_bool(0.9) { self.pick(&SHOPS) } else { self.any_key() };
                let amount = if self.rng.gen_bool(0.5) {
                    self.rng.gen_range(0..3_000)
                } else {
                    self.rng.gen_range(0..40_000)
                };
                let tx = self.tx(
                    signer,
                    Action::Pay { shop: id(&self.keys[shop]), amount: Yen(amount), invoice: None },
                );
                let tx_id = tx.id;
                let expect = self.expect(
                    signer,
                    |r| r == MRole::Resident,
                    |m| m.pay(tx_id, signer, shop, amount, now),
                );
                self.submit(tx, expect)
            }
            55..=64 => {
                let payments: Vec<(TxId, Acct, u64)> =
                    self.model.payments.iter().map(|(id, p)| (*id, p.shop, p.amount - p.refunded)).collect();
                let (payment, shop, left) = if self.rng.gen_bool(0.03) {
                    (TxId([7; 32]), self.pick(&SHOPS), 100)
                } else {
                    payments[self.rng.gen_range(0..payments.len())]
                };
                let signer = if self.rng.gen_bool(0.85) { shop } else { self.pick(&SHOPS) };
                let amount = self.rng.gen_range(0..=left + 1);
                let tx = self.tx(signer, Action::Refund { payment, amount: Yen(amount) });
                let expect = self.expect(
                    signer,
                    |r| matches!(r, MRole::Shop(_)),
                    |m| m.refund(signer, payment, amount),
                );
                self.submit(tx, expect)
            }
            65..=74 => {
                let shop = if self.rng.gen_bool(0.9) { self.pick(&SHOPS) } else { self.any_key() };
                let issue = self.issue_id();
                let held = self.model.balance(shop, issue, Kind::Common)
                    + self.model.balance(shop, issue, Kind::Local);
                let amount = self.rng.gen_range(0..=held + 1);
                let tx = self.tx(shop, Action::RequestCashOut { issue, amount: Yen(amount) });
                let tx_id = tx.id;
                let expect = self.expect(
                    shop,
                    |r| matches!(r, MRole::Shop(_)),
                    |m| m.cash_out(tx_id, shop, issue, amount, now),
                );
                self.submit(tx, expect)
            }
            75..=79 => {
                let all: Vec<TxId> = self.model.cash_outs.keys().copied().collect();
                let mut ids: Vec<TxId> = all.into_iter().filter(|_| self.rng.gen_bool(0.5)).collect();
                if self.rng.gen_bool(0.05) {
                    ids.push(TxId([3; 32]));
                }
                let signer = match self.rng.gen_range(0..10) {
                    0..=5 => TOWN,
                    6..=8 => SETTLER,
                    _ => self.any_key(),
                };
                let action = Action::SettleCashOuts {
                    cash_outs: ids.clone(),
                    transfer_date: "2027-03-01".into(),
                    file_sha256: Hash32([1; 32]),
                };
                let tx = self.tx(signer, action);
                let expect =
                    self.expect(signer, |r| r == MRole::Town || r == MRole::Settler, |m| m.settle(&ids));
                self.submit(tx, expect)
            }
            80..=84 => {
                let signer = if self.rng.gen_bool(0.9) { TOWN } else { self.any_key() };
                let issue = self.issue_id();
                let tx = self.tx(signer, Action::ExpireIssue { issue });
                let expect = self.expect(signer, |r| r == MRole::Town, |m| m.expire(issue, now));
                self.submit(tx, expect)
            }
            85..=89 => self.freeze_step(),
            90..=93 => {
                let signer = if self.rng.gen_bool(0.9) { self.pick(&OPERATORS) } else { self.any_key() };
                let (old, new) = (self.pick(&residents), self.rng.gen_range(14..KEYS));
                let tx = self
                    .tx(signer, Action::ReplaceKey { old: id(&self.keys[old]), new: id(&self.keys[new]) });
                let expect = self.expect(signer, |r| r == MRole::Operator, |m| m.replace(old, new));
                self.submit(tx, expect)
            }
            94..=97 if !self.history.is_empty() => {
                let old = self.history[self.rng.gen_range(0..self.history.len())].clone();
                self.submit(old, Err(Refusal::Duplicate))
            }
            _ => {
                // A transaction past its time-to-live.
                let signer = self.pick(&RESIDENTS.collect::<Vec<_>>());
                self.nonce += 1;
                let body = TxBody {
                    chain_id: CHAIN.into(),
                    created_ms: self.now.saturating_sub(61_000),
                    ttl_ms: 60_000,
                    nonce: self.nonce,
                    action: Action::Pay { shop: id(&self.keys[SHOPS[1]]), amount: Yen(1), invoice: None },
                };
                let tx = decode(CHAIN, SignedTx::sign(CHAIN, &self.keys[signer], &body)).expect("decodes");
                self.submit(tx, Err(Refusal::TtlExpired))
            }
        }
    }

    fn freeze_step(&mut self) -> Result<(), String> {
        let signer = match self.rng.gen_range(0..10) {
            0..=4 => TOWN,
            5..=8 => self.pick(&OPERATORS),
            _ => self.any_key(),
        };
        let target = self.any_key();
        let freeze = self.rng.gen_bool(0.6);
        let action = if freeze {
            Action::Freeze { account: id(&self.keys[target]) }
        } else {
            Action::Unfreeze { account: id(&self.keys[target]) }
        };
        let tx = self.tx(signer, action);
        let target_role = self.model.accounts.get(&target).map(|a| a.role);
        let allowed = move |role: MRole| match role {
            MRole::Town => target != TOWN,
            MRole::Operator => target_role == Some(MRole::Resident),
            _ => false,
        };
        let expect = self.expect(signer, allowed, |m| m.set_frozen(signer == TOWN, target, freeze));
        self.submit(tx, expect)
    }

    /// Every balance, purchase count and supply figure agrees with the model, and the
    /// ledger's own invariants hold.
    fn compare(&self) -> Result<(), String> {
        self.state.check_full()?;
        for (key, account) in &self.state.accounts {
            let acct = self.index[key];
            for lot in &account.lots {
                let model = self.model.balance(acct, lot.issue, lot.kind);
                if model != lot.amount.0 {
                    return Err(format!(
                        "key {acct} issue {} {:?}: ledger {} model {model}",
                        lot.issue, lot.kind, lot.amount.0
                    ));
                }
            }
            for (issue, sets) in &account.bought {
                let model = self.model.bought.get(&(acct, *issue)).copied().unwrap_or(0);
                if model != *sets {
                    return Err(format!("key {acct} bought {sets} of issue {issue}, model {model}"));
                }
            }
        }
        for (&(acct, issue, kind), &amount) in &self.model.balances {
            let ledger =
                self.state.accounts.get(&id(&self.keys[acct])).map_or(0, |a| a.balance(issue, kind).0);
            if ledger != amount {
                return Err(format!("key {acct} issue {issue} {kind:?}: model {amount}, ledger {ledger}"));
            }
        }
        for (id, issue) in &self.state.issues {
            let m = &self.model;
            let s = &issue.supply;
            let pairs = [
                ("sets_sold", u64::from(s.sets_sold), u64::from(m.issues[id].sold)),
                ("expired", s.expired.0, m.expired.get(id).copied().unwrap_or(0)),
                ("fees", s.fees.0, m.fees.get(id).copied().unwrap_or(0)),
                ("pending", s.pending_cash_out.0, m.pending.get(id).copied().unwrap_or(0)),
                ("paid", s.paid_out.0, m.paid.get(id).copied().unwrap_or(0)),
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
        Ok(())
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
