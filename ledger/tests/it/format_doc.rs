//! docs/FORMAT.md's vectors are checked here, so the document cannot drift from the code.
//! Every line `vector KIND ARGS... => EXPECTED` in it is recomputed.

use machi_ledger::{
    attest, inclusion_proof, merkle_root, outcome_record, sha256, tx_id, verify_inclusion, verify_signature,
    AccountId, Action, Hash32, SignedTx, SigningKey, TxBody, TxError, TxId, Yen,
};

const FORMAT_MD: &str = include_str!("../../../docs/FORMAT.md");

fn h32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).expect("32 bytes of hex");
    out
}

/// The sample body of FORMAT.md: a resident pays a shop ¥1,200 for invoice INV-7.
fn sample_body() -> TxBody {
    TxBody {
        chain_id: "bandai-2026".into(),
        created_ms: 1_782_864_000_000,
        ttl_ms: 600_000,
        nonce: 7,
        action: Action::Pay {
            shop: AccountId(h32(&"22".repeat(32))),
            amount: Yen(1_200),
            invoice: Some("INV-7".into()),
        },
    }
}

/// The sample replica set of FORMAT.md: the town office and the bank vote, the auditor
/// follows.
fn replicas_body() -> TxBody {
    let replica = |id: u64, name: &str, port: u16, key: u8, voter: bool| machi_ledger::Replica {
        id,
        name: name.into(),
        api_addr: format!("10.0.0.{id}:{port}"),
        raft_addr: format!("10.0.0.{id}:{}", port + 100),
        producer: AccountId(h32(&format!("{key:02x}").repeat(32))),
        voter,
    };
    TxBody {
        chain_id: "bandai-2026".into(),
        created_ms: 1_782_864_000_000,
        ttl_ms: 600_000,
        nonce: 1,
        action: Action::SetReplicas {
            replicas: vec![
                replica(1, "town office", 7101, 0x31, true),
                replica(2, "bank", 7101, 0x32, true),
                replica(3, "auditor", 7101, 0x33, false),
            ],
        },
    }
}

/// The sample supply report of FORMAT.md ("Supply digest and replica attestation"),
/// listed out of id order as there.
fn sample_supply() -> (&'static str, u64, Hash32, Vec<attest::IssueTotals>) {
    let summer = attest::IssueTotals {
        issue: 2,
        name: "夏の商品券".into(),
        total_sets: 500,
        sets_sold: 0,
        sets_left: 500,
        cash_received: Yen(0),
        issued_common: Yen(0),
        issued_local: Yen(0),
        issued_total: Yen(0),
        premium_cost: Yen(0),
        residents_common: Yen(0),
        residents_local: Yen(0),
        shops_common: Yen(0),
        shops_local: Yen(0),
        pending_cash_out: Yen(0),
        paid_out: Yen(0),
        fees: Yen(0),
        expired: Yen(0),
        invariant_holds: true,
    };
    let year = attest::IssueTotals {
        issue: 1,
        name: "2026年度 プレミアム商品券".into(),
        total_sets: 10_000,
        sets_sold: 3,
        sets_left: 9_997,
        cash_received: Yen(30_000),
        issued_common: Yen(18_000),
        issued_local: Yen(21_000),
        issued_total: Yen(39_000),
        premium_cost: Yen(9_000),
        residents_common: Yen(15_000),
        residents_local: Yen(20_000),
        shops_common: Yen(2_000),
        shops_local: Yen(1_000),
        pending_cash_out: Yen(0),
        paid_out: Yen(990),
        fees: Yen(10),
        expired: Yen(0),
        invariant_holds: true,
    };
    let hash = Hash32(h32("d3f63dee118b097a691dae318d5f1d64824ff2a2d47c6103b0ce1725b2c8bbd9"));
    ("bandai-2026", 12, hash, vec![summer, year])
}

fn statement<'a>(
    chain: &'a str,
    replica: &str,
    height: &str,
    hash: &str,
    digest: &str,
) -> attest::Statement<'a> {
    attest::Statement {
        chain_id: chain,
        replica: replica.parse().unwrap(),
        height: height.parse().unwrap(),
        block_hash: Hash32(h32(hash)),
        supply_digest: Hash32(h32(digest)),
    }
}

fn compute(kind: &str, args: &[&str]) -> String {
    match (kind, args) {
        ("sha256", [text]) => sha256(text.trim_matches('"').as_bytes()).to_hex(),
        ("tx_id", [chain, signer, body]) => {
            let body = if *body == "-" { vec![] } else { hex::decode(body).unwrap() };
            tx_id(chain, &AccountId(h32(signer)), &body).to_hex()
        }
        ("outcome", [id, status, code]) => {
            outcome_record(&TxId(h32(id)), status.parse().unwrap(), code.parse().unwrap()).to_hex()
        }
        ("merkle", leaves) => {
            let leaves: Vec<[u8; 32]> = leaves.iter().filter(|l| **l != "-").map(|l| h32(l)).collect();
            merkle_root(&leaves).to_hex()
        }
        ("inclusion_proof", [index, leaves @ ..]) => {
            let leaves: Vec<[u8; 32]> = leaves.iter().map(|l| h32(l)).collect();
            let proof = inclusion_proof(&leaves, index.parse().unwrap());
            proof.iter().map(Hash32::to_hex).collect::<Vec<_>>().join(" ")
        }
        ("verify_inclusion", [leaf, index, size, root, proof @ ..]) => {
            let proof: Vec<Hash32> = proof.iter().filter(|p| **p != "-").map(|p| Hash32(h32(p))).collect();
            let (index, size) = (index.parse().unwrap(), size.parse().unwrap());
            verify_inclusion(&h32(leaf), index, size, &proof, &Hash32(h32(root))).to_string()
        }
        ("block_hash", [header]) => sha256(&hex::decode(header).unwrap()).to_hex(),
        ("sample_body", []) => hex::encode(sample_body().encode()),
        ("replicas_body", []) => hex::encode(replicas_body().encode()),
        ("replicas_tx_id", [seed]) => {
            let key = SigningKey::from_bytes(&h32(seed));
            SignedTx::sign("bandai-2026", &key, &replicas_body()).id("bandai-2026").to_hex()
        }
        ("sample_tx_id", [seed]) => {
            let key = SigningKey::from_bytes(&h32(seed));
            SignedTx::sign("bandai-2026", &key, &sample_body()).id("bandai-2026").to_hex()
        }
        ("sample_signature", [seed]) => {
            let key = SigningKey::from_bytes(&h32(seed));
            hex::encode(SignedTx::sign("bandai-2026", &key, &sample_body()).signature)
        }
        ("signature", [key, signature, message]) => {
            let mut sig = [0u8; 64];
            hex::decode_to_slice(signature, &mut sig).expect("64 bytes of hex");
            match verify_signature(&AccountId(h32(key)), &sig, &h32(message)) {
                Ok(()) => "accept".into(),
                Err(TxError::BadKey) => "bad_key".into(),
                Err(TxError::BadSignature) => "bad_signature".into(),
                Err(other) => format!("{other:?}"),
            }
        }
        ("read_message", [chain, challenge, account, purpose]) => hex::encode(
            machi_ledger::read_auth::message(chain, &h32(challenge), &AccountId(h32(account)), purpose),
        ),
        ("read_signature", [seed, chain, challenge, purpose]) => {
            let key = SigningKey::from_bytes(&h32(seed));
            let signature = machi_ledger::read_auth::sign(chain, &h32(challenge), &key, purpose);
            let verdict = machi_ledger::read_auth::verify(
                chain,
                &h32(challenge),
                &AccountId::of(&key),
                purpose,
                &signature,
            );
            assert_eq!(verdict, Ok(()), "the read signature verifies");
            hex::encode(signature)
        }
        ("supply_bytes", ["sample"]) => {
            let (chain, height, hash, issues) = sample_supply();
            hex::encode(attest::supply_bytes(chain, height, &hash, &issues))
        }
        ("supply_digest", ["sample"]) => {
            let (chain, height, hash, issues) = sample_supply();
            hex::encode(attest::supply_digest(chain, height, &hash, &issues).0)
        }
        ("supply_digest", ["empty", chain, height, hash]) => {
            hex::encode(attest::supply_digest(chain, height.parse().unwrap(), &Hash32(h32(hash)), &[]).0)
        }
        ("attest_message", [chain, replica, height, hash, digest]) => {
            hex::encode(statement(chain, replica, height, hash, digest).message())
        }
        ("attest_signature", [seed, chain, replica, height, hash, digest]) => {
            let key = SigningKey::from_bytes(&h32(seed));
            let statement = statement(chain, replica, height, hash, digest);
            let signature = statement.sign(&key);
            assert_eq!(
                statement.verify(&AccountId::of(&key), &signature),
                Ok(()),
                "the attestation verifies"
            );
            hex::encode(signature)
        }
        _ => panic!("FORMAT.md has an unknown vector: {kind} {args:?}"),
    }
}

#[test]
fn format_md_vectors_hold() {
    let mut checked = 0;
    for line in FORMAT_MD.lines().filter_map(|l| l.trim().strip_prefix("vector ")) {
        let (inputs, expected) = line.split_once(" => ").expect("vector line has =>");
        let mut words = inputs.split_whitespace();
        let kind = words.next().unwrap();
        let args: Vec<&str> = words.collect();
        assert_eq!(compute(kind, &args), expected.trim(), "FORMAT.md: vector {line}");
        checked += 1;
    }
    assert!(checked >= 29, "FORMAT.md should carry its vectors ({checked} found)");
}

#[test]
fn sample_body_decodes_back() {
    let body = sample_body();
    assert_eq!(TxBody::decode(&body.encode()), Ok(body));
}

#[test]
fn supply_digest_covers_every_figure_and_not_the_order() {
    let (chain, height, hash, issues) = sample_supply();
    let digest = attest::supply_digest(chain, height, &hash, &issues);
    let reversed: Vec<_> = issues.iter().rev().cloned().collect();
    assert_eq!(attest::supply_digest(chain, height, &hash, &reversed), digest, "issues are hashed by id");
    let tampered: Vec<fn(&mut attest::IssueTotals)> = vec![
        |i| i.issue = 3,
        |i| i.name.push('!'),
        |i| i.total_sets += 1,
        |i| i.sets_sold += 1,
        |i| i.sets_left -= 1,
        |i| i.cash_received.0 += 1,
        |i| i.issued_common.0 += 1,
        |i| i.issued_local.0 += 1,
        |i| i.issued_total.0 += 1,
        |i| i.premium_cost.0 += 1,
        |i| i.residents_common.0 += 1,
        |i| i.residents_local.0 += 1,
        |i| i.shops_common.0 += 1,
        |i| i.shops_local.0 += 1,
        |i| i.pending_cash_out.0 += 1,
        |i| i.paid_out.0 += 1,
        |i| i.fees.0 += 1,
        |i| i.expired.0 += 1,
        |i| i.invariant_holds = false,
    ];
    for (n, tamper) in tampered.into_iter().enumerate() {
        let mut changed = issues.clone();
        tamper(&mut changed[1]);
        assert_ne!(attest::supply_digest(chain, height, &hash, &changed), digest, "figure {n} is covered");
    }
    assert_ne!(attest::supply_digest(chain, height + 1, &hash, &issues), digest, "the height is covered");
    assert_ne!(attest::supply_digest("bandai-2027", height, &hash, &issues), digest, "the chain is covered");
    assert_ne!(
        attest::supply_digest(chain, height, &Hash32([0; 32]), &issues),
        digest,
        "the block is covered"
    );
    assert_ne!(attest::supply_digest(chain, height, &hash, &issues[..1]), digest, "every issue is covered");
}

#[test]
fn an_attestation_verifies_only_for_its_key_and_statement() {
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let other = SigningKey::from_bytes(&[0x43; 32]);
    let statement = statement("bandai-2026", "2", "12", &"ab".repeat(32), &"cd".repeat(32));
    let signature = statement.sign(&key);
    assert_eq!(statement.verify(&AccountId::of(&key), &signature), Ok(()));
    assert_eq!(statement.verify(&AccountId::of(&other), &signature), Err(TxError::BadSignature));
    let moved = attest::Statement { height: 13, ..statement.clone() };
    assert_eq!(moved.verify(&AccountId::of(&key), &signature), Err(TxError::BadSignature));
    let other_replica = attest::Statement { replica: 3, ..statement };
    assert_eq!(other_replica.verify(&AccountId::of(&key), &signature), Err(TxError::BadSignature));
}
