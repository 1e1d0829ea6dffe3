//! The chain's one Ed25519 acceptance rule. Admission, block production, restart, audit,
//! `verify` and every replica call these functions and nothing else, so a signature is
//! either valid everywhere or nowhere, whether it is checked alone or in a batch of any
//! size, on any machine.
//!
//! A signature `R || s` by the key `A` on the message `M` (a transaction id or a block
//! hash) is accepted when all of these hold (docs/FORMAT.md, "Keys and signatures"):
//! 1. `A` is the canonical encoding of a point of the prime-order subgroup other than the
//!    identity: no small-order and no mixed-order keys.
//! 2. `R` is the canonical encoding (`y < p`) of a point that is not of small order.
//! 3. `s < l` (the canonical scalar).
//! 4. `[8]([s]B - R - [k]A) = 0` with `k = SHA-512(R || A || M) mod l`: the cofactored
//!    equation of ZIP-215, checked by ed25519-zebra.
//!
//! Rules 1-3 are per signature and checked before any equation. Rule 4's batch equation
//! is cofactored too, so a batch accepts exactly the signatures that single checks accept
//! (a cofactorless batch equation, as in ed25519-dalek's `verify_batch`, accepts a
//! mixed-order `R` for about half of its random coefficients). Every signature an RFC 8032
//! signer makes with a key that passes rule 1 passes all four.

use std::collections::HashMap;

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_zebra::{batch, Signature, VerificationKey, VerificationKeyBytes};

use crate::hash::AccountId;
use crate::reason::TxError;

/// One signature to check.
#[derive(Clone, Copy)]
pub(crate) struct Item<'a> {
    pub(crate) signer: &'a AccountId,
    pub(crate) signature: &'a [u8; 64],
    pub(crate) message: &'a [u8],
}

/// Rule 1: the key is a canonical encoding of a point of prime order `l`.
pub fn check_key(key: &AccountId) -> Result<(), TxError> {
    let point = CompressedEdwardsY(key.0).decompress().ok_or(TxError::BadKey)?;
    if point.compress().0 != key.0 || point.is_small_order() || !point.is_torsion_free() {
        return Err(TxError::BadKey);
    }
    Ok(())
}

/// Rules 2 and 3, from the bytes alone (no point decompression).
fn check_encoding(signature: &[u8; 64]) -> Result<(), TxError> {
    let r: &[u8; 32] = signature[..32].try_into().expect("32 bytes");
    let s: [u8; 32] = signature[32..].try_into().expect("32 bytes");
    if !y_is_canonical(r) || small_order_encodings().binary_search(r).is_ok() {
        return Err(TxError::BadSignature);
    }
    if bool::from(Scalar::from_canonical_bytes(s).is_none()) {
        return Err(TxError::BadSignature);
    }
    Ok(())
}

/// Whether the 255-bit `y` of a point encoding (the sign bit masked off) is below
/// `p = 2^255 - 19`. The encodings at or above `p` are `ed..ff 7f` to `ff..ff 7f`.
fn y_is_canonical(encoding: &[u8; 32]) -> bool {
    let top = encoding[31] & 0x7f;
    !(top == 0x7f && encoding[1..31].iter().all(|b| *b == 0xff) && encoding[0] >= 0xed)
}

/// The canonical encodings of the eight points of small order, with either sign bit (the
/// sign bit of a point whose `x` is 0 makes the encoding non-canonical as well, but it is
/// named here so the check does not depend on that).
fn small_order_encodings() -> &'static [[u8; 32]] {
    static ENCODINGS: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| {
        let mut out = Vec::new();
        for point in curve25519_dalek::constants::EIGHT_TORSION {
            let bytes = point.compress().to_bytes();
            let mut flipped = bytes;
            flipped[31] ^= 0x80;
            out.extend([bytes, flipped]);
        }
        out.sort_unstable();
        out.dedup();
        out
    })
}

/// Checks one signature under the acceptance rule.
pub fn verify(signer: &AccountId, signature: &[u8; 64], message: &[u8]) -> Result<(), TxError> {
    check_key(signer)?;
    let key = VerificationKey::try_from(signer.0).map_err(|_| TxError::BadKey)?;
    verify_checked(&key, signature, message)
}

/// Rules 2-4 for a key that passed rule 1.
fn verify_checked(key: &VerificationKey, signature: &[u8; 64], message: &[u8]) -> Result<(), TxError> {
    check_encoding(signature)?;
    key.verify(&Signature::from_bytes(signature), message).map_err(|_| TxError::BadSignature)
}

/// Signer keys that passed rule 1, decompressed, so a signer seen before costs neither the
/// subgroup check nor a decompression. Bounded: cleared when full.
#[derive(Default)]
pub struct KeyCache {
    keys: HashMap<AccountId, Result<VerificationKey, TxError>>,
}

impl KeyCache {
    pub const ENTRIES_MAX: usize = 1 << 20;

    pub fn key(&mut self, signer: &AccountId) -> Result<VerificationKey, TxError> {
        if let Some(key) = self.keys.get(signer) {
            return *key;
        }
        let key =
            check_key(signer).and_then(|()| VerificationKey::try_from(signer.0).map_err(|_| TxError::BadKey));
        if self.keys.len() >= KeyCache::ENTRIES_MAX {
            self.keys.clear();
        }
        self.keys.insert(*signer, key);
        key
    }
}

/// Checks many signatures, giving each the answer `verify` gives it. The per-signature
/// rules go first; the rest are checked in one cofactored batch equation, and only when
/// that fails is each checked alone to find the bad ones.
pub(crate) fn verify_batch(items: &[Item<'_>], cache: &mut KeyCache) -> Vec<Result<(), TxError>> {
    let mut results = vec![Ok(()); items.len()];
    let mut candidates = Vec::with_capacity(items.len());
    let mut verifier = batch::Verifier::new();
    for (i, item) in items.iter().enumerate() {
        let checked = cache.key(item.signer).and_then(|key| check_encoding(item.signature).map(|()| key));
        match checked {
            Ok(key) => {
                let signature = Signature::from_bytes(item.signature);
                verifier.queue((VerificationKeyBytes::from(item.signer.0), signature, item.message));
                candidates.push((i, key));
            }
            Err(e) => results[i] = Err(e),
        }
    }
    if candidates.is_empty() || verifier.verify(rand::thread_rng()).is_ok() {
        return results;
    }
    for (i, key) in candidates {
        results[i] = verify_checked(&key, items[i].signature, items[i].message);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-level canonical check agrees with decompressing and compressing again,
    /// around the edges where `y` wraps past `p`.
    #[test]
    fn canonical_y_agrees_with_decompression() {
        for low in 0u8..=0xff {
            for top in [0x7f, 0xff, 0x00, 0x80] {
                let mut bytes = [0xff; 32];
                bytes[0] = low;
                bytes[31] = top;
                if let Some(point) = CompressedEdwardsY(bytes).decompress() {
                    let canonical = point.compress().0 == bytes;
                    // The sign bit of a point with x = 0 is the one other non-canonical case;
                    // such points are small order and refused as such.
                    if !point.is_small_order() {
                        assert_eq!(y_is_canonical(&bytes), canonical, "{}", hex::encode(bytes));
                    }
                }
            }
        }
        assert!(!y_is_canonical(&{
            let mut p = [0xff; 32];
            p[0] = 0xed;
            p[31] = 0x7f;
            p
        }));
    }

    #[test]
    fn small_order_encodings_are_small_order() {
        let encodings = small_order_encodings();
        // Eight points; the two with x = 0 (the identity and the point of order 2) also with
        // the sign bit set.
        assert_eq!(encodings.len(), 10);
        for bytes in encodings {
            let point = CompressedEdwardsY(*bytes).decompress();
            assert!(point.is_none_or(|p| p.is_small_order()), "{}", hex::encode(bytes));
        }
    }
}
