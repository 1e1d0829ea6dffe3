//! Ed25519 signatures made by hand from scalars, including the crafted ones an attacker
//! could send: mixed-order and small-order `R` or keys, non-canonical encodings. They
//! test that every path applies the one acceptance rule (ledger/src/signature.rs).

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

/// What is wrong with a crafted signature, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Craft {
    /// An ordinary RFC 8032 signature.
    Valid,
    /// `R = [k]B + T` with `T` of small order, `s` as for `[k]B`.
    MixedOrderR,
    /// `R = T` of small order, `s = k·a` so that the equation holds.
    SmallOrderR,
    /// `R` is the identity encoded as `y = 1 + p`, `s = k·a` (the equation holds).
    NonCanonicalR,
    /// `A = [a]B + T`: a key outside the prime-order subgroup; the signature is honest.
    MixedOrderKey,
    /// `A = T`: a small-order key, `s = k`.
    SmallOrderKey,
    /// `A` is the identity encoded as `y = 1 + p`, `s = k`.
    NonCanonicalKey,
    /// `s + l` instead of `s`: the same equation, a non-canonical scalar.
    NonCanonicalS,
    /// A valid signature on another message.
    WrongMessage,
}

impl Craft {
    pub(crate) const ALL: [Craft; 9] = [
        Craft::Valid,
        Craft::MixedOrderR,
        Craft::SmallOrderR,
        Craft::NonCanonicalR,
        Craft::MixedOrderKey,
        Craft::SmallOrderKey,
        Craft::NonCanonicalKey,
        Craft::NonCanonicalS,
        Craft::WrongMessage,
    ];

    /// Whether the chain's rule accepts it. A mixed-order `R` with an otherwise valid
    /// signature passes the cofactored equation and is accepted, by every path alike.
    pub(crate) fn accepted(self) -> bool {
        matches!(self, Craft::Valid | Craft::MixedOrderR)
    }
}

/// A crafted signature: key, `R || s`, message.
pub(crate) struct Crafted {
    pub(crate) key: [u8; 32],
    pub(crate) signature: [u8; 64],
    pub(crate) message: [u8; 32],
}

fn scalar(seed: u64, label: &str) -> Scalar {
    let mut hasher = Sha512::new();
    hasher.update(label.as_bytes());
    hasher.update(seed.to_be_bytes());
    Scalar::from_bytes_mod_order_wide(&hasher.finalize().into())
}

/// `k = SHA-512(R || A || M) mod l`.
fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let mut hasher = Sha512::new();
    hasher.update(r);
    hasher.update(a);
    hasher.update(message);
    Scalar::from_bytes_mod_order_wide(&hasher.finalize().into())
}

/// `y = 1 + p`: the identity point, non-canonically encoded.
fn identity_plus_p() -> [u8; 32] {
    let mut bytes = [0xff; 32];
    bytes[0] = 0xee;
    bytes[31] = 0x7f;
    bytes
}

/// `l`, the order of the prime-order subgroup, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s + l` as 32 little-endian bytes (fits: `s < l < 2^253`).
fn plus_l(s: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// A small-order point other than the identity, chosen by the seed (order 2, 4 or 8).
fn torsion(seed: u64) -> EdwardsPoint {
    EIGHT_TORSION[1 + (seed % 7) as usize]
}

pub(crate) fn craft(kind: Craft, seed: u64) -> Crafted {
    let a = scalar(seed, "a");
    let k = scalar(seed, "k");
    let mut message = [0u8; 32];
    message.copy_from_slice(&Sha512::digest(seed.to_be_bytes())[..32]);
    let t = torsion(seed);
    let key_point = match kind {
        Craft::MixedOrderKey => a * B + t,
        Craft::SmallOrderKey => t,
        _ => a * B,
    };
    let key = match kind {
        Craft::NonCanonicalKey => identity_plus_p(),
        _ => key_point.compress().0,
    };
    let r = match kind {
        Craft::MixedOrderR => (k * B + t).compress().0,
        Craft::SmallOrderR => t.compress().0,
        Craft::NonCanonicalR => identity_plus_p(),
        _ => (k * B).compress().0,
    };
    let h = challenge(&r, &key, &message);
    // Each choice makes the cofactored equation hold, so only the encoding and subgroup
    // rules can refuse: with R of small order [s]B must be [h]A, so s = h·a; with a key of
    // small order [s]B must be R, so s = k.
    let s = match kind {
        Craft::SmallOrderR | Craft::NonCanonicalR => h * a,
        Craft::SmallOrderKey | Craft::NonCanonicalKey => k,
        _ => k + h * a,
    };
    let s = match kind {
        Craft::NonCanonicalS => plus_l(&s.to_bytes()),
        _ => s.to_bytes(),
    };
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&r);
    signature[32..].copy_from_slice(&s);
    if kind == Craft::WrongMessage {
        message[0] ^= 1;
    }
    Crafted { key, signature, message }
}

/// A signature by `key` on `message` whose `R` is `[k]B + T`, `T` of small order chosen by
/// the seed (`seed % 7 == 3` gives order 2, `== 1` order 4), and `s = k + h·a` as if `R`
/// were `[k]B`: what an attacker holding a registered key can send.
pub(crate) fn mixed_order_signature(
    key: &ed25519_dalek::SigningKey,
    message: &[u8; 32],
    seed: u64,
) -> [u8; 64] {
    let a = key.to_scalar();
    let k = scalar(seed, "k");
    let r = (k * B + torsion(seed)).compress().0;
    let h = challenge(&r, &key.verifying_key().to_bytes(), message);
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&r);
    signature[32..].copy_from_slice(&(k + h * a).to_bytes());
    signature
}
