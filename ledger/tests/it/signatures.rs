//! One acceptance rule in every path: a signature gets the same verdict alone and in a
//! batch of any size and mix, whatever the batch's random coefficients.

use machi_ledger::{
    verify_batch, verify_one, AccountId, Action, SignedTx, TxBody, TxError, TxId, VerifiedTx,
};
use proptest::prelude::*;

use crate::crafted::{craft, Craft};

fn tx(kind: Craft, seed: u64) -> VerifiedTx {
    let crafted = craft(kind, seed);
    let body = TxBody {
        chain_id: "signatures".into(),
        created_ms: 0,
        ttl_ms: 0,
        nonce: seed,
        action: Action::Freeze { account: AccountId([0; 32]) },
    };
    VerifiedTx {
        id: TxId(crafted.message),
        signed: SignedTx {
            signer: AccountId(crafted.key),
            signature: crafted.signature,
            body: body.encode(),
        },
        body,
    }
}

#[test]
fn each_crafted_signature_gets_its_verdict() {
    for kind in Craft::ALL {
        for seed in 0..16 {
            let verdict = verify_one(&tx(kind, seed));
            assert_eq!(verdict.is_ok(), kind.accepted(), "{kind:?} seed {seed}: {verdict:?}");
            let expected_error = match kind {
                Craft::MixedOrderKey | Craft::SmallOrderKey | Craft::NonCanonicalKey => Err(TxError::BadKey),
                Craft::Valid | Craft::MixedOrderR => Ok(()),
                _ => Err(TxError::BadSignature),
            };
            assert_eq!(verdict, expected_error, "{kind:?} seed {seed}");
        }
    }
    // The same from a key made the usual way, as an attacker with a registered key would.
    let key = machi_ledger::SigningKey::from_bytes(&[7; 32]);
    for seed in 0..8 {
        let message = [seed as u8; 32];
        let signature = crate::crafted::mixed_order_signature(&key, &message, seed);
        let signer = AccountId::of(&key);
        assert_eq!(machi_ledger::verify_signature(&signer, &signature, &message), Ok(()), "seed {seed}");
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("MACHI_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d61_6368_6973_6967),
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/regressions/signatures.txt"
        )))),
        ..ProptestConfig::default()
    }
}

fn kind() -> impl Strategy<Value = Craft> {
    prop_oneof![
        12 => Just(Craft::Valid),
        4 => Just(Craft::MixedOrderR),
        1 => prop::sample::select(Craft::ALL.to_vec()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Random mixes of valid and crafted signatures: the batch answer for each is the
    /// single answer, every time the batch is checked (each time with new coefficients).
    /// Mostly valid and mixed-order ones, so that many batches hold nothing else: a batch
    /// equation is only ever the deciding check when every other signature in it is good.
    #[test]
    fn batch_and_single_agree(cases in prop::collection::vec((kind(), any::<u64>()), 1..40)) {
        let txs: Vec<VerifiedTx> = cases.iter().map(|&(kind, seed)| tx(kind, seed)).collect();
        let singles: Vec<Result<(), TxError>> = txs.iter().map(verify_one).collect();
        for _ in 0..4 {
            prop_assert_eq!(&verify_batch(&txs), &singles);
        }
    }
}

/// The crafted signatures really satisfy the equation, so the encoding and subgroup rules
/// are what refuse them: plain ZIP-215 accepts all but the non-canonical `s` and the wrong
/// message. And a cofactorless strict verifier refuses the mixed-order `R` that this rule
/// accepts (FORMAT.md says so), while agreeing on honest signatures.
#[test]
fn crafted_signatures_pass_the_bare_equation() {
    for kind in Craft::ALL {
        for seed in 0..8 {
            let c = craft(kind, seed);
            let zip215 = ed25519_zebra::VerificationKey::try_from(c.key)
                .and_then(|key| key.verify(&ed25519_zebra::Signature::from_bytes(&c.signature), &c.message));
            let equation_holds = !matches!(kind, Craft::NonCanonicalS | Craft::WrongMessage);
            assert_eq!(zip215.is_ok(), equation_holds, "{kind:?} seed {seed}");
            if matches!(kind, Craft::Valid | Craft::MixedOrderR) {
                let strict = ed25519_dalek::VerifyingKey::from_bytes(&c.key)
                    .unwrap()
                    .verify_strict(&c.message, &ed25519_dalek::Signature::from_bytes(&c.signature));
                assert_eq!(strict.is_ok(), kind == Craft::Valid, "{kind:?} seed {seed}");
            }
        }
    }
}

/// A read session's signature binds the chain, the challenge, the account and the
/// purpose: a change to any one is `bad_signature`; a crafted key is `bad_key`, as for a
/// transaction (the one acceptance rule).
#[test]
fn a_read_signature_binds_chain_challenge_account_and_purpose() {
    use machi_ledger::read_auth::{sign, verify};
    use machi_ledger::SigningKey;
    let key = SigningKey::from_bytes(&[7; 32]);
    let account = AccountId::of(&key);
    let challenge = [9u8; 32];
    let signature = sign("town", &challenge, &key, "監査");
    assert_eq!(verify("town", &challenge, &account, "監査", &signature), Ok(()));
    let other = AccountId::of(&SigningKey::from_bytes(&[8; 32]));
    let cases = [
        verify("town2", &challenge, &account, "監査", &signature),
        verify("town", &[10; 32], &account, "監査", &signature),
        verify("town", &challenge, &other, "監査", &signature),
        verify("town", &challenge, &account, "監査2", &signature),
    ];
    for (i, verdict) in cases.into_iter().enumerate() {
        assert_eq!(verdict, Err(TxError::BadSignature), "case {i}");
    }
    let small_order = AccountId([0; 32]);
    assert_eq!(verify("town", &challenge, &small_order, "監査", &signature), Err(TxError::BadKey));
}
