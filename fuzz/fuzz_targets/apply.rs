//! Any sequence of actions from any of a small town's keys, applied to the ledger: no
//! panic (no broken invariant), and the state stays consistent after every step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use machi_ledger::{
    AccountId, Action, ApplyAt, Hash32, IssueParams, RateBp, ShopClass, SignedTx, SigningKey, State, TxBody, VerifiedTx, Yen,
};

const CHAIN: &str = "fuzz-town";
const T0: u64 = 1_799_074_800_000;
const DAY: u64 = 86_400_000;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

fn id(i: u8) -> AccountId {
    AccountId(key(i).verifying_key().to_bytes())
}

/// A transaction as if its signature had been checked (the fuzzer explores rules, not
/// signatures).
fn tx(signer: u8, nonce: u64, now: u64, action: Action) -> VerifiedTx {
    let body = TxBody { chain_id: CHAIN.into(), created_ms: now, ttl_ms: 60_000, nonce, action };
    let signed = SignedTx { signer: id(signer), signature: [0; 64], body: body.encode() };
    VerifiedTx { id: signed.id(CHAIN), signed, body }
}

fn town() -> State {
    let mut state = State::new(CHAIN);
    let issue = IssueParams {
        id: 1,
        name: "fuzz".into(),
        price: Yen(10_000),
        common_per_set: Yen(6_250),
        local_per_set: Yen(6_250),
        total_sets: 50,
        max_sets_per_resident: 3,
        workers_may_buy: false,
        sale_start_ms: T0,
        sale_end_ms: T0 + DAY,
        spend_until_ms: T0 + 5 * DAY,
        cash_out_deadline_ms: T0 + 10 * DAY,
        cash_out_fee: RateBp(75),
    };
    let setup = [
        (0, Action::Genesis { town: id(0), producer: id(9) }),
        (0, Action::RegisterOperator { operator: id(1), name: "op".into() }),
        (0, Action::RegisterShop { shop: id(2), name: "large".into(), class: ShopClass::Large }),
        (0, Action::RegisterShop { shop: id(3), name: "local".into(), class: ShopClass::Local }),
        (1, Action::RegisterResident { resident: id(4), resident_hash: Hash32([4; 32]), worker: false }),
        (1, Action::RegisterResident { resident: id(5), resident_hash: Hash32([5; 32]), worker: true }),
        (0, Action::CreateIssue { issue }),
    ];
    for (i, (signer, action)) in setup.into_iter().enumerate() {
        let at = ApplyAt { now_ms: T0, height: 0, index: i as u32 };
        state.apply(&tx(signer, i as u64, T0, action), at).expect("setup applies");
    }
    state
}

fuzz_target!(|data: &[u8]| {
    let mut state = town();
    let mut rest = data;
    let mut now = T0;
    let mut step = 0u64;
    while rest.len() > 2 {
        let (signer, advance) = (rest[0] % 8, u64::from(rest[1]) * 3_600_000);
        now += advance;
        let Ok((action, tail)) = postcard::take_from_bytes::<Action>(&rest[2..]) else { break };
        rest = tail;
        step += 1;
        let at = ApplyAt { now_ms: now, height: step, index: 0 };
        let _ = state.apply(&tx(signer, 1_000 + step, now, action), at);
        state.assert_supply_invariant();
        if let Err(e) = state.check_full() {
            panic!("state inconsistent after step {step}: {e}");
        }
    }
});
