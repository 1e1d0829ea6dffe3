//! Properties of the byte formats (docs/FORMAT.md): every transaction body and block
//! comes back from its encoding unchanged, and a body or block decodes only from its one
//! canonical encoding. (That an exported block turns back into the same block is
//! machi-api's property, over the same strategies of `strategies.rs`.)
//!
//! Fixed seed; `MACHI_PROPTEST_CASES` runs more cases. A failing case's seed is saved in
//! `ledger/tests/regressions/formats.txt` and tried first on every later run.

use machi_ledger::{Block, TxBody, TxError, BODY_BYTES_MAX};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

use crate::strategies::{block, body};

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
}
