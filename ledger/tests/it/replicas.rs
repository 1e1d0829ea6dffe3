//! Replica sets: which sets the town may name, and that from the next block on only a
//! voter's producer key may sign a block — checked by replay, as every replica and auditor
//! does.

use machi_ledger::{
    decode, genesis_with, produce, replay, Action, Block, Reason, Refusal, Replica, SignatureCheck, SignedTx,
    SigningKey, State, TxBody,
};

use crate::town::{id, key, Town, CHAIN, T0};

fn replica(n: u8, voter: bool) -> Replica {
    Replica {
        id: u64::from(n),
        name: format!("replica {n}"),
        api_addr: format!("127.0.0.1:71{n:02}"),
        raft_addr: format!("127.0.0.1:72{n:02}"),
        producer: id(&key(40 + n)),
        voter,
    }
}

#[test]
fn the_town_names_a_coherent_replica_set() {
    let mut town = Town::new(1);
    let (t, op) = (town.town.clone(), town.operator.clone());
    let set = |replicas: Vec<Replica>| Action::SetReplicas { replicas };
    let good = vec![replica(1, true), replica(2, true), replica(3, false)];
    assert_eq!(town.run(&op, set(good.clone())), Err(Refusal::WrongRole));
    let invalid = |mutate: &dyn Fn(&mut Vec<Replica>)| {
        let mut replicas = good.clone();
        mutate(&mut replicas);
        replicas
    };
    let cases: Vec<(&str, Vec<Replica>)> = vec![
        ("empty", vec![]),
        ("seventeen", (1..=17).map(|n| replica(n, true)).collect()),
        ("unsorted", invalid(&|r| r.swap(0, 1))),
        ("duplicate id", invalid(&|r| r[1].id = 1)),
        ("duplicate key", invalid(&|r| r[1].producer = r[0].producer)),
        ("small-order key", invalid(&|r| r[2].producer = machi_ledger::AccountId([0; 32]))),
        ("no voter", invalid(&|r| r.iter_mut().for_each(|r| r.voter = false))),
        ("blank name", invalid(&|r| r[0].name = "  ".into())),
        ("no port", invalid(&|r| r[0].api_addr = "127.0.0.1".into())),
        ("port 0", invalid(&|r| r[0].raft_addr = "127.0.0.1:0".into())),
        ("a path", invalid(&|r| r[0].api_addr = "http://x:1".into())),
        ("a space", invalid(&|r| r[0].api_addr = "bank office:7101".into())),
    ];
    for (what, replicas) in cases {
        assert_eq!(
            town.run(&t, set(replicas)),
            Ok(machi_ledger::Outcome::Rejected(Reason::InvalidParameters)),
            "{what}"
        );
    }
    assert!(town.state.replicas.is_empty());
    let mut named = good.clone();
    named[1].api_addr = "bank.example.jp:443".into();
    named[2].raft_addr = "[::1]:7203".into();
    town.ok(&t, set(named.clone()));
    assert_eq!(town.state.replicas, named);
    assert!(town.state.may_produce(&id(&key(41))) && town.state.may_produce(&id(&key(42))));
    assert!(!town.state.may_produce(&id(&key(43))), "a learner does not produce");
    assert!(!town.state.may_produce(&id(&key(9))), "nor the producer genesis named, once replicas are named");
}

fn signed(signer: &SigningKey, nonce: u64, action: Action) -> machi_ledger::VerifiedTx {
    let body = TxBody { chain_id: CHAIN.into(), created_ms: T0, ttl_ms: 60_000, nonce, action };
    decode(CHAIN, SignedTx::sign(CHAIN, signer, &body)).unwrap()
}

/// A cluster's genesis names its replicas; block 1 may be signed by any voter, not by a
/// learner or a stranger; a later set takes over from the block after it.
#[test]
fn blocks_are_signed_by_a_voter_in_office() {
    let town = key(1);
    let first = vec![replica(1, true), replica(2, true), replica(3, false)];
    let mut state = State::new(CHAIN);
    let g = genesis_with(
        &mut state,
        vec![
            signed(&town, 0, Action::Genesis { town: id(&town), producer: id(&key(41)) }),
            signed(&town, 1, Action::SetReplicas { replicas: first }),
        ],
        T0,
        &key(41),
    );
    let register = |n: u64| {
        signed(
            &town,
            n,
            Action::RegisterOperator { operator: id(&key(90 + n as u8)), name: format!("op {n}") },
        )
    };
    let block = |state: &mut State, prev: &Block, txs, producer: &SigningKey| {
        produce(state, &prev.header, T0 + 1, txs, producer).0
    };
    // Replica 2 leads for block 1; its block names a new set: replica 2 and a new replica 4.
    let second = vec![replica(2, true), replica(4, true)];
    let b1 = block(
        &mut state,
        &g,
        vec![register(2), signed(&town, 3, Action::SetReplicas { replicas: second })],
        &key(42),
    );
    let b2 = block(&mut state, &b1, vec![register(4)], &key(44));
    let chain = [g.clone(), b1.clone(), b2.clone()];
    let replay_with = |blocks: &[Block]| {
        let mut state = State::new(CHAIN);
        let mut prev = None;
        for b in blocks {
            replay(&mut state, prev, b, SignatureCheck::All)?;
            prev = Some(&b.header);
        }
        Ok::<State, machi_ledger::ChainError>(state)
    };
    assert_eq!(replay_with(&chain).expect("replays").replicas.len(), 2);
    // The same transactions, with block `at` signed by someone not in office then.
    let forged = |at: u64, producer: &SigningKey| {
        let mut state = State::new(CHAIN);
        replay(&mut state, None, &g, SignatureCheck::All).unwrap();
        let mut blocks = vec![g.clone()];
        for (height, honest) in [(1, &b1), (2, &b2)] {
            let txs = honest.txs.iter().map(|t| decode(CHAIN, t.clone()).unwrap()).collect();
            let signer = if height == at {
                producer.clone()
            } else {
                if height == 1 {
                    key(42)
                } else {
                    key(44)
                }
            };
            let prev = blocks.last().unwrap().header.clone();
            blocks.push(produce(&mut state, &prev, honest.header.timestamp_ms, txs, &signer).0);
        }
        replay_with(&blocks).unwrap_err().height()
    };
    assert_eq!(forged(1, &key(43)), 1, "a learner signed block 1");
    assert_eq!(forged(1, &key(9)), 1, "a stranger signed block 1");
    assert_eq!(forged(2, &key(41)), 2, "replica 1 left the set in block 1, so it may not sign block 2");
    assert_eq!(forged(1, &key(44)), 1, "replica 4 joins only from block 2");
}
