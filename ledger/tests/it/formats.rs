//! Properties of the byte formats (docs/FORMAT.md): every transaction body and block
//! comes back from its encoding unchanged, a body decodes only from its one canonical
//! encoding, and an exported block (`BlockView` JSON) turns back into the same block.
//!
//! Fixed seed; `MACHI_PROPTEST_CASES` runs more cases. A failing case's seed is saved in
//! `ledger/tests/regressions/formats.txt` and tried first on every later run.

use machi_ledger::api::BlockView;
use machi_ledger::{
    AccountId, Action, Block, BlockHeader, Delegation, Hash32, IssueParams, Outcome, RateBp, Reason,
    ShopClass, SignedTx, TxBody, TxError, TxId, Yen, BODY_BYTES_MAX,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

fn config() -> ProptestConfig {
    let cases = std::env::var("MACHI_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512);
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x6d61_6368_692d_666d),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/regressions/formats.txt"
        )))),
        ..ProptestConfig::default()
    }
}

fn account() -> impl Strategy<Value = AccountId> {
    any::<[u8; 32]>().prop_map(AccountId)
}

fn hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}

/// Any text, Japanese included, mostly short.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => "\\PC{0,12}", 1 => "\\PC{0,80}"]
}

fn issue() -> impl Strategy<Value = IssueParams> {
    let money = (any::<u64>(), any::<u64>(), any::<u64>());
    let times = (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>());
    (any::<u32>(), text(), money, any::<u32>(), any::<u32>(), any::<bool>(), times, any::<u32>()).prop_map(
        |(id, name, money, total_sets, max_sets_per_resident, workers_may_buy, times, fee)| IssueParams {
            id,
            name,
            price: Yen(money.0),
            common_per_set: Yen(money.1),
            local_per_set: Yen(money.2),
            total_sets,
            max_sets_per_resident,
            workers_may_buy,
            sale_start_ms: times.0,
            sale_end_ms: times.1,
            spend_until_ms: times.2,
            cash_out_deadline_ms: times.3,
            cash_out_fee: RateBp(fee),
        },
    )
}

/// Every kind of action, with any field values (valid or not: the format does not care).
fn action() -> impl Strategy<Value = Action> {
    let class = prop_oneof![Just(ShopClass::Large), Just(ShopClass::Local)];
    let delegation = prop_oneof![Just(Delegation::ShopRegistrar), Just(Delegation::Settler)];
    let tx_id = any::<[u8; 32]>().prop_map(TxId);
    prop_oneof![
        (account(), account()).prop_map(|(town, producer)| Action::Genesis { town, producer }),
        (account(), text()).prop_map(|(operator, name)| Action::RegisterOperator { operator, name }),
        (account(), text(), class).prop_map(|(shop, name, class)| Action::RegisterShop { shop, name, class }),
        (account(), hash(), any::<bool>()).prop_map(|(resident, resident_hash, worker)| {
            Action::RegisterResident { resident, resident_hash, worker }
        }),
        issue().prop_map(|issue| Action::CreateIssue { issue }),
        (any::<u32>(), account(), any::<u32>(), any::<u64>()).prop_map(|(issue, resident, sets, cash)| {
            Action::SellSets { issue, resident, sets, cash_received: Yen(cash) }
        }),
        (account(), any::<u64>(), proptest::option::of(text()))
            .prop_map(|(shop, amount, invoice)| Action::Pay { shop, amount: Yen(amount), invoice }),
        (tx_id.clone(), any::<u64>())
            .prop_map(|(payment, amount)| Action::Refund { payment, amount: Yen(amount) }),
        (any::<u32>(), any::<u64>())
            .prop_map(|(issue, amount)| Action::RequestCashOut { issue, amount: Yen(amount) }),
        (prop::collection::vec(tx_id, 0..8), text(), hash()).prop_map(
            |(cash_outs, transfer_date, file_sha256)| {
                Action::SettleCashOuts { cash_outs, transfer_date, file_sha256 }
            }
        ),
        any::<u32>().prop_map(|issue| Action::ExpireIssue { issue }),
        (account(), account()).prop_map(|(old, new)| Action::ReplaceKey { old, new }),
        account().prop_map(|account| Action::Freeze { account }),
        account().prop_map(|account| Action::Unfreeze { account }),
        (account(), text(), delegation).prop_map(|(delegate, name, delegation)| Action::RegisterDelegate {
            delegate,
            name,
            delegation
        }),
    ]
}

fn body() -> impl Strategy<Value = TxBody> {
    (text(), any::<u64>(), any::<u32>(), any::<u64>(), action()).prop_map(
        |(chain_id, created_ms, ttl_ms, nonce, action)| TxBody {
            chain_id,
            created_ms,
            ttl_ms,
            nonce,
            action,
        },
    )
}

/// What `TxBody::decode` must answer for `bytes`: the body exactly when they are its one
/// encoding.
fn expected_decode(bytes: &[u8]) -> Result<TxBody, TxError> {
    if bytes.len() > BODY_BYTES_MAX {
        return Err(TxError::BodyTooLarge);
    }
    match postcard::from_bytes::<TxBody>(bytes) {
        Err(_) => Err(TxError::Malformed),
        Ok(body) if body.encode() != bytes => Err(TxError::NonCanonical),
        Ok(body) => Ok(body),
    }
}

/// One edit of a byte string: flip bits of a byte, insert a byte, or remove one.
#[derive(Clone, Debug)]
enum Edit {
    Xor(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Edit::Xor(at, bits)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<usize>().prop_map(Edit::Remove),
    ]
}

fn apply_edits(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        match *edit {
            Edit::Xor(at, bits) if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] ^= bits;
            }
            Edit::Insert(at, byte) => bytes.insert(at % (bytes.len() + 1), byte),
            Edit::Remove(at) if !bytes.is_empty() => {
                bytes.remove(at % bytes.len());
            }
            _ => {}
        }
    }
    bytes
}

/// The same number as a varint one byte longer than it needs (a continuation bit on the
/// last byte and a zero byte after), where the type's varint has room for it.
fn overlong(varint: &[u8], max_bytes: usize) -> Option<Vec<u8>> {
    if varint.len() >= max_bytes {
        return None;
    }
    let mut out = varint.to_vec();
    *out.last_mut().expect("a varint has a byte") |= 0x80;
    out.push(0);
    Some(out)
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Applied),
        prop::sample::select(Reason::ALL.to_vec()).prop_map(Outcome::Rejected)
    ]
}

/// A transaction as stored in a block: any signer and signature, and a body that is
/// mostly a real encoding and sometimes any bytes.
fn signed_tx() -> impl Strategy<Value = SignedTx> {
    let bytes =
        prop_oneof![3 => body().prop_map(|b| b.encode()), 1 => prop::collection::vec(any::<u8>(), 0..64)];
    (account(), any::<[u8; 32]>(), any::<[u8; 32]>(), bytes).prop_map(|(signer, a, b, body)| {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&a);
        signature[32..].copy_from_slice(&b);
        SignedTx { signer, signature, body }
    })
}

/// Any block whose header counts its transactions, with a valid chain id.
fn block() -> impl Strategy<Value = Block> {
    let txs = prop::collection::vec((signed_tx(), outcome()), 0..6);
    let header = ("[a-zA-Z0-9._-]{1,64}", any::<u64>(), hash(), any::<u64>(), hash(), hash(), account());
    (header, any::<[u8; 32]>(), any::<[u8; 32]>(), txs).prop_map(|(h, a, b, txs)| {
        let (chain_id, height, prev_hash, timestamp_ms, tx_root, outcome_root, producer) = h;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&a);
        signature[32..].copy_from_slice(&b);
        let (txs, outcomes): (Vec<SignedTx>, Vec<Outcome>) = txs.into_iter().unzip();
        let header = BlockHeader {
            chain_id,
            height,
            prev_hash,
            timestamp_ms,
            tx_count: txs.len() as u32,
            tx_root,
            outcome_root,
            producer,
        };
        Block { header, signature, txs, outcomes }
    })
}

proptest! {
    #![proptest_config(config())]

    /// A body comes back from its encoding (binary and JSON), unless it is over the size
    /// limit, which decoding names.
    #[test]
    fn bodies_round_trip(body in body()) {
        let bytes = body.encode();
        if bytes.len() <= BODY_BYTES_MAX {
            prop_assert_eq!(TxBody::decode(&bytes), Ok(body.clone()));
        } else {
            prop_assert_eq!(TxBody::decode(&bytes), Err(TxError::BodyTooLarge));
        }
        let json = serde_json::to_string(&body).unwrap();
        prop_assert_eq!(serde_json::from_str::<TxBody>(&json).unwrap(), body);
    }

    /// Any bytes: a body decodes only from its one encoding, and anything else that
    /// postcard would read is refused as non-canonical. Never a panic.
    #[test]
    fn bodies_decode_only_from_their_canonical_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let decoded = TxBody::decode(&bytes);
        if let Ok(body) = &decoded {
            prop_assert_eq!(&body.encode(), &bytes);
        }
        prop_assert_eq!(decoded, expected_decode(&bytes));
    }

    /// Real encodings with a few bytes flipped, inserted or removed: most still parse,
    /// and each is accepted exactly when it is the canonical encoding of what it says.
    #[test]
    fn edited_bodies_decode_only_when_canonical(body in body(), edits in prop::collection::vec(edit(), 1..4)) {
        let bytes = apply_edits(body.encode(), &edits);
        let decoded = TxBody::decode(&bytes);
        if let Ok(body) = &decoded {
            prop_assert_eq!(&body.encode(), &bytes);
        }
        prop_assert_eq!(decoded, expected_decode(&bytes));
    }

    /// The non-canonical forms postcard itself accepts: a longer-than-needed varint in
    /// each of the first four fields, and a byte after the end.
    #[test]
    fn overlong_varints_and_trailing_bytes_are_refused(body in body(), field in 0..4usize, extra in any::<u8>()) {
        let bytes = body.encode();
        prop_assume!(bytes.len() < BODY_BYTES_MAX);
        let mut trailing = bytes.clone();
        trailing.push(extra);
        prop_assert_eq!(TxBody::decode(&trailing), Err(TxError::NonCanonical));

        let varint = |n: u64| postcard::to_allocvec(&n).unwrap();
        let parts = [
            (varint(body.chain_id.len() as u64), 10),
            (varint(body.created_ms), 10),
            (varint(u64::from(body.ttl_ms)), 5),
            (varint(body.nonce), 10),
        ];
        let chain = body.chain_id.as_bytes();
        let mut canonical = parts[0].0.clone();
        canonical.extend_from_slice(chain);
        let mut prefix = vec![canonical.clone()];
        for (part, _) in &parts[1..] {
            prefix.push(part.clone());
            canonical.extend_from_slice(part);
        }
        prop_assert_eq!(&bytes[..canonical.len()], &canonical[..], "the fields are where FORMAT.md puts them");
        let (part, max_bytes) = &parts[field];
        let long = overlong(part, *max_bytes);
        prop_assume!(long.is_some());
        let mut edited = Vec::new();
        for (i, piece) in prefix.iter().enumerate() {
            if i == field {
                let mut piece = piece.clone();
                piece.splice(..part.len(), long.clone().unwrap());
                edited.extend_from_slice(&piece);
            } else {
                edited.extend_from_slice(piece);
            }
        }
        edited.extend_from_slice(&bytes[canonical.len()..]);
        prop_assume!(edited.len() <= BODY_BYTES_MAX);
        prop_assert_eq!(postcard::from_bytes::<TxBody>(&edited).ok(), Some(body), "postcard reads the long form");
        prop_assert_eq!(TxBody::decode(&edited), Err(TxError::NonCanonical));
    }

    /// A block comes back from its log encoding.
    #[test]
    fn blocks_round_trip(block in block()) {
        prop_assert_eq!(Block::decode(&block.encode()), Some(block));
    }

    /// A block record decodes only from its one canonical encoding: a byte after the end,
    /// or any edit that still parses but is not how that block encodes, is refused.
    #[test]
    fn blocks_decode_only_from_their_canonical_bytes(block in block(), extra in any::<u8>(), edits in prop::collection::vec(edit(), 1..4)) {
        let bytes = block.encode();
        let mut trailing = bytes.clone();
        trailing.push(extra);
        prop_assert_eq!(Block::decode(&trailing), None);
        let edited = apply_edits(bytes, &edits);
        if let Some(decoded) = Block::decode(&edited) {
            prop_assert_eq!(decoded.encode(), edited);
        }
    }

    /// An exported block (one JSON line) turns back into the same block: same bytes,
    /// same hash, same transaction ids.
    #[test]
    fn exported_blocks_turn_back_into_the_same_block(block in block()) {
        let line = serde_json::to_string(&BlockView::new(&block)).unwrap();
        prop_assert!(!line.contains('\n'), "one line per block");
        let view: BlockView = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(view.hash, block.hash());
        prop_assert_eq!(view.txs.iter().map(|t| t.id).collect::<Vec<_>>(), block.tx_ids());
        let back = view.to_block().map_err(TestCaseError::fail)?;
        prop_assert_eq!(back.encode(), block.encode());
        prop_assert_eq!(back, block);
    }
}
