//! docs/FORMAT.md's vectors are checked here, so the document cannot drift from the code.
//! Every line `vector KIND ARGS... => EXPECTED` in it is recomputed.

use machi_ledger::{
    inclusion_proof, merkle_root, outcome_record, sha256, tx_id, verify_inclusion, verify_signature,
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
