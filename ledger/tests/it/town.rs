//! A small town on a bare `State`: keys from fixed seeds, a clock the test moves.

use machi_ledger::{
    decode, sha256, AccountId, Action, ApplyAt, IssueParams, Outcome, RateBp, Refusal, ShopClass, SignedTx,
    SigningKey, State, TxBody, VerifiedTx, Yen,
};

use machi_ledger::testkit::standard_issue;
pub(crate) use machi_ledger::testkit::DAY_MS;

pub(crate) const CHAIN: &str = "test-town";
/// 2027-01-05 00:00 JST.
pub(crate) const T0: u64 = 1_799_074_800_000;

pub(crate) fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub(crate) fn id(key: &SigningKey) -> AccountId {
    AccountId::of(key)
}

/// The standard issue, on sale from `T0`, at the 0.5% fee the fee cases count on.
pub(crate) fn issue_params(id: u32) -> IssueParams {
    IssueParams { cash_out_fee: RateBp(50), ..standard_issue(id, 100, 2, T0) }
}

pub(crate) struct Town {
    pub(crate) state: State,
    pub(crate) now: u64,
    nonce: u64,
    height: u64,
    pub(crate) town: SigningKey,
    pub(crate) operator: SigningKey,
    pub(crate) large: SigningKey,
    pub(crate) local: SigningKey,
    pub(crate) residents: Vec<SigningKey>,
}

impl Town {
    /// Genesis, an operator, a large and a local shop, `residents` residents, and issue 1
    /// (on sale from T0 for a day, 100 sets, cap 2, fee 0.5%).
    pub(crate) fn new(residents: u8) -> Town {
        let mut town = Town {
            state: State::new(CHAIN),
            now: T0,
            nonce: 0,
            height: 0,
            town: key(1),
            operator: key(2),
            large: key(3),
            local: key(4),
            residents: (0..residents).map(|i| key(100 + i)).collect(),
        };
        let producer = id(&key(9));
        let (t, op, large, local) = (town.town.clone(), id(&town.operator), id(&town.large), id(&town.local));
        town.ok(&t, Action::Genesis { town: id(&t), producer });
        town.ok(&t, Action::RegisterOperator { operator: op, name: "役場窓口".into() });
        town.ok(
            &t,
            Action::RegisterShop { shop: large, name: "スーパーまち".into(), class: ShopClass::Large },
        );
        town.ok(&t, Action::RegisterShop { shop: local, name: "山田商店".into(), class: ShopClass::Local });
        for i in 0..residents {
            town.register_resident(i as usize, false);
        }
        town.ok(&t, Action::CreateIssue { issue: issue_params(1) });
        town
    }

    pub(crate) fn register_resident(&mut self, i: usize, worker: bool) {
        let resident = id(&self.residents[i]);
        let resident_hash = sha256(format!("resident-number-{i}").as_bytes());
        let op = self.operator.clone();
        self.ok(&op, Action::RegisterResident { resident, resident_hash, worker });
    }

    pub(crate) fn tx(&mut self, signer: &SigningKey, action: Action) -> VerifiedTx {
        self.nonce += 1;
        let body = TxBody {
            chain_id: CHAIN.into(),
            created_ms: self.now,
            ttl_ms: 60_000,
            nonce: self.nonce,
            action,
        };
        decode(CHAIN, SignedTx::sign(CHAIN, signer, &body)).expect("decodes")
    }

    pub(crate) fn apply(&mut self, tx: &VerifiedTx) -> Result<Outcome, Refusal> {
        self.height += 1;
        let result = self.state.apply(tx, ApplyAt { now_ms: self.now, height: self.height, index: 0 });
        self.state.assert_supply_invariant();
        self.state.check_full().expect("state consistent");
        result
    }

    pub(crate) fn run(&mut self, signer: &SigningKey, action: Action) -> Result<Outcome, Refusal> {
        let tx = self.tx(signer, action);
        self.apply(&tx)
    }

    #[track_caller]
    pub(crate) fn ok(&mut self, signer: &SigningKey, action: Action) {
        let what = format!("{action:?}");
        assert_eq!(self.run(signer, action), Ok(Outcome::Applied), "{what}");
    }

    /// The operator sells `sets` of issue 1 to resident `i` for the right cash.
    pub(crate) fn sell(&mut self, i: usize, sets: u32) -> Result<Outcome, Refusal> {
        self.sell_issue(1, i, sets)
    }

    pub(crate) fn sell_issue(&mut self, issue: u32, i: usize, sets: u32) -> Result<Outcome, Refusal> {
        let resident = id(&self.residents[i]);
        let price = self.state.issues[&issue].params.price;
        let cash_received = Yen(price.0 * u64::from(sets));
        let op = self.operator.clone();
        self.run(&op, Action::SellSets { issue, resident, sets, cash_received })
    }

    pub(crate) fn pay(
        &mut self,
        i: usize,
        shop: &SigningKey,
        amount: u64,
    ) -> (machi_ledger::TxId, Result<Outcome, Refusal>) {
        let payer = self.residents[i].clone();
        let tx = self.tx(&payer, Action::Pay { shop: id(shop), amount: Yen(amount), invoice: None });
        (tx.id, self.apply(&tx))
    }

    pub(crate) fn balance(&self, who: &SigningKey, issue: u32, kind: machi_ledger::Kind) -> u64 {
        self.state.accounts[&id(who)].balance(issue, kind).0
    }
}
