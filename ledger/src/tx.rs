//! Transactions: the body every signer signs, its deterministic encoding (postcard), and
//! signature checks (strict: canonical signatures, no small-order keys or points).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::hash::{tx_id, AccountId, Hash32, TxId};
use crate::issue::IssueParams;
use crate::yen::Yen;

/// Upper bounds on what one transaction may carry.
pub const BODY_BYTES_MAX: usize = 4 * 1024;
pub const TTL_MS_MAX: u32 = 24 * 60 * 60 * 1000;
/// How far a transaction's creation time may run ahead of the block's clock.
pub const CLOCK_SKEW_MS_MAX: u64 = 60 * 1000;
pub const NAME_CHARS_MAX: usize = 100;
pub const INVOICE_CHARS_MAX: usize = 64;
pub const SETTLE_REQUESTS_MAX: usize = 1_000;

pub type IssueId = u32;

/// Which shops may take a lot of value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 共通: any shop.
    Common,
    /// 地元専用: local shops only.
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopClass {
    /// Chains and supermarkets: common value only.
    Large,
    /// Small local shops: local and common value.
    Local,
}

/// What a signed transaction asks the ledger to do. The variant order is part of the
/// encoding (postcard writes the index): append new kinds at the end, never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Genesis only: names the town and the block producer. Signed by the town.
    Genesis {
        town: AccountId,
        producer: AccountId,
    },
    RegisterOperator {
        operator: AccountId,
        name: String,
    },
    RegisterShop {
        shop: AccountId,
        name: String,
        class: ShopClass,
    },
    /// `resident_hash` is a keyed hash of the town's resident number, never the number.
    RegisterResident {
        resident: AccountId,
        resident_hash: Hash32,
        worker: bool,
    },
    CreateIssue {
        issue: IssueParams,
    },
    SellSets {
        issue: IssueId,
        resident: AccountId,
        sets: u32,
        cash_received: Yen,
    },
    Pay {
        shop: AccountId,
        amount: Yen,
        invoice: Option<String>,
    },
    Refund {
        payment: TxId,
        amount: Yen,
    },
    RequestCashOut {
        issue: IssueId,
        amount: Yen,
    },
    SettleCashOuts {
        cash_outs: Vec<TxId>,
        transfer_date: String,
        file_sha256: Hash32,
    },
    ExpireIssue {
        issue: IssueId,
    },
    ReplaceKey {
        old: AccountId,
        new: AccountId,
    },
    Freeze {
        account: AccountId,
    },
    Unfreeze {
        account: AccountId,
    },
}

impl Action {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Action::Genesis { .. } => "genesis",
            Action::RegisterOperator { .. } => "register_operator",
            Action::RegisterShop { .. } => "register_shop",
            Action::RegisterResident { .. } => "register_resident",
            Action::CreateIssue { .. } => "create_issue",
            Action::SellSets { .. } => "sell_sets",
            Action::Pay { .. } => "pay",
            Action::Refund { .. } => "refund",
            Action::RequestCashOut { .. } => "request_cash_out",
            Action::SettleCashOuts { .. } => "settle_cash_outs",
            Action::ExpireIssue { .. } => "expire_issue",
            Action::ReplaceKey { .. } => "replace_key",
            Action::Freeze { .. } => "freeze",
            Action::Unfreeze { .. } => "unfreeze",
        }
    }

    /// Accounts this transaction touches besides its signer (for history and events).
    pub fn counterparties(&self) -> Vec<AccountId> {
        match self {
            Action::Genesis { town, producer } => vec![*town, *producer],
            Action::RegisterOperator { operator, .. } => vec![*operator],
            Action::RegisterShop { shop, .. } => vec![*shop],
            Action::RegisterResident { resident, .. } => vec![*resident],
            Action::SellSets { resident, .. } => vec![*resident],
            Action::Pay { shop, .. } => vec![*shop],
            Action::ReplaceKey { old, new } => vec![*old, *new],
            Action::Freeze { account } | Action::Unfreeze { account } => vec![*account],
            Action::CreateIssue { .. }
            | Action::Refund { .. }
            | Action::RequestCashOut { .. }
            | Action::SettleCashOuts { .. }
            | Action::ExpireIssue { .. } => vec![],
        }
    }
}

/// The signed content of a transaction. `chain_id` is repeated inside the body so a
/// transaction meant for another chain is named as such instead of failing as a bad
/// signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxBody {
    pub chain_id: String,
    pub created_ms: u64,
    pub ttl_ms: u32,
    pub nonce: u64,
    pub action: Action,
}

impl TxBody {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("encoding a body into a Vec cannot fail")
    }

    /// Decodes and insists on the one canonical encoding, so a body has one byte form
    /// and a transaction one id.
    pub fn decode(bytes: &[u8]) -> Result<TxBody, TxError> {
        if bytes.len() > BODY_BYTES_MAX {
            return Err(TxError::BodyTooLarge);
        }
        let body: TxBody = postcard::from_bytes(bytes).map_err(|_| TxError::Malformed)?;
        if body.encode() != bytes {
            return Err(TxError::NonCanonical);
        }
        Ok(body)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction body does not decode")]
    Malformed,
    #[error("transaction body is not in canonical encoding")]
    NonCanonical,
    #[error("transaction body is larger than {BODY_BYTES_MAX} bytes")]
    BodyTooLarge,
    #[error("signer key is not a valid Ed25519 public key, or is of small order")]
    BadKey,
    #[error("signature does not verify for this chain, signer and body")]
    BadSignature,
}

/// A transaction as it travels and is stored: who signed, what bytes, the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTx {
    pub signer: AccountId,
    #[serde(with = "sig_serde")]
    pub signature: [u8; 64],
    #[serde(rename = "body_hex", with = "hex_vec")]
    pub body: Vec<u8>,
}

impl SignedTx {
    pub fn sign(chain_id: &str, key: &SigningKey, body: &TxBody) -> SignedTx {
        let signer = AccountId(key.verifying_key().to_bytes());
        let bytes = body.encode();
        let id = tx_id(chain_id, &signer, &bytes);
        SignedTx { signer, signature: key.sign(&id.0).to_bytes(), body: bytes }
    }

    pub fn id(&self, chain_id: &str) -> TxId {
        tx_id(chain_id, &self.signer, &self.body)
    }
}

/// A transaction whose body decoded and whose signature verified.
#[derive(Clone, Debug)]
pub struct VerifiedTx {
    pub id: TxId,
    pub signed: SignedTx,
    pub body: TxBody,
}

/// Parses the signer key, refusing small-order (weak) keys.
pub fn signer_key(signer: &AccountId) -> Result<VerifyingKey, TxError> {
    let key = VerifyingKey::from_bytes(&signer.0).map_err(|_| TxError::BadKey)?;
    if key.is_weak() {
        return Err(TxError::BadKey);
    }
    Ok(key)
}

/// Every 32-byte encoding that decompresses to a point of small order: the eight torsion
/// points, each with either sign bit, and the non-canonical encodings `y + p` of the
/// two torsion `y` values below 19 (0 and 1).
fn small_order_encodings() -> &'static [[u8; 32]] {
    static ENCODINGS: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| {
        let mut out = Vec::new();
        let mut push_both_signs = |bytes: [u8; 32]| {
            let mut flipped = bytes;
            flipped[31] ^= 0x80;
            out.extend([bytes, flipped]);
        };
        for point in curve25519_dalek::constants::EIGHT_TORSION {
            push_both_signs(point.compress().to_bytes());
        }
        for low in [0xed, 0xee] {
            // p + 0 and p + 1, where p = 2^255 - 19.
            let mut bytes = [0xff; 32];
            bytes[0] = low;
            bytes[31] = 0x7f;
            push_both_signs(bytes);
        }
        out.sort_unstable();
        out.dedup();
        out
    })
}

/// The R half of a signature must not be a small-order point (as in strict
/// verification). Checked against the encodings of such points, without decompressing.
fn r_is_small_order(signature: &[u8; 64]) -> bool {
    small_order_encodings().binary_search(signature[..32].try_into().expect("32 bytes")).is_ok()
}

/// Decompressed signer keys, so a signer seen before costs no point decompression (the
/// most expensive part of verifying a batch). Bounded: cleared when full.
#[derive(Default)]
pub struct KeyCache {
    keys: std::collections::HashMap<AccountId, VerifyingKey>,
}

impl KeyCache {
    pub const ENTRIES_MAX: usize = 1 << 20;

    pub fn key(&mut self, signer: &AccountId) -> Result<VerifyingKey, TxError> {
        if let Some(key) = self.keys.get(signer) {
            return Ok(*key);
        }
        let key = signer_key(signer)?;
        if self.keys.len() >= KeyCache::ENTRIES_MAX {
            self.keys.clear();
        }
        self.keys.insert(*signer, key);
        Ok(key)
    }
}

/// Decodes the body and computes the id; the signature is checked separately (in batches).
pub fn decode(chain_id: &str, signed: SignedTx) -> Result<VerifiedTx, TxError> {
    let body = TxBody::decode(&signed.body)?;
    let id = signed.id(chain_id);
    Ok(VerifiedTx { id, signed, body })
}

/// Strict single verification.
pub fn verify_one(tx: &VerifiedTx) -> Result<(), TxError> {
    let key = signer_key(&tx.signed.signer)?;
    let signature = Signature::from_bytes(&tx.signed.signature);
    key.verify_strict(&tx.id.0, &signature).map_err(|_| TxError::BadSignature)
}

/// Verifies many signatures at once. Returns one result per transaction: the batch
/// equation is checked first, and only when it fails is each signature checked alone to
/// find the bad ones. Weak keys and small-order R are refused as in strict verification.
pub fn verify_batch(txs: &[VerifiedTx]) -> Vec<Result<(), TxError>> {
    verify_batch_cached(txs, &mut KeyCache::default())
}

/// `verify_batch` with decompressed signer keys kept in `cache` between calls.
pub fn verify_batch_cached(txs: &[VerifiedTx], cache: &mut KeyCache) -> Vec<Result<(), TxError>> {
    let mut keys = Vec::with_capacity(txs.len());
    let mut results = vec![Ok(()); txs.len()];
    let mut candidates = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        match cache.key(&tx.signed.signer) {
            Ok(_) if r_is_small_order(&tx.signed.signature) => results[i] = Err(TxError::BadSignature),
            Ok(key) => {
                keys.push(key);
                candidates.push(i);
            }
            Err(e) => results[i] = Err(e),
        }
    }
    let messages: Vec<&[u8]> = candidates.iter().map(|&i| &txs[i].id.0[..]).collect();
    let signatures: Vec<Signature> =
        candidates.iter().map(|&i| Signature::from_bytes(&txs[i].signed.signature)).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_err() {
        for (&i, key) in candidates.iter().zip(&keys) {
            let signature = Signature::from_bytes(&txs[i].signed.signature);
            results[i] = key.verify_strict(&txs[i].id.0, &signature).map_err(|_| TxError::BadSignature);
        }
    }
    results
}

pub(crate) mod sig_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            serde::Serialize::serialize(&serde_big_array(bytes), s)
        }
    }

    fn serde_big_array(bytes: &[u8; 64]) -> (&[u8; 32], &[u8; 32]) {
        let (a, b) = bytes.split_at(32);
        (a.try_into().expect("32"), b.try_into().expect("32"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let mut out = [0u8; 64];
        if d.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            hex::decode_to_slice(text.as_ref(), &mut out)
                .map_err(|_| serde::de::Error::custom("expected 128 hex digits for a signature"))?;
        } else {
            let (a, b) = <([u8; 32], [u8; 32])>::deserialize(d)?;
            out[..32].copy_from_slice(&a);
            out[32..].copy_from_slice(&b);
        }
        Ok(out)
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            hex::decode(text.as_ref()).map_err(|_| serde::de::Error::custom("expected hex bytes"))
        } else {
            <serde_bytes_vec::ByteBuf>::deserialize(d).map(|b| b.0)
        }
    }

    mod serde_bytes_vec {
        use serde::de::{Deserialize, Deserializer, Visitor};

        pub(crate) struct ByteBuf(pub(crate) Vec<u8>);

        impl<'de> Deserialize<'de> for ByteBuf {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteBuf, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v.to_vec()))
                    }
                    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list must agree with decompression for every encoding it holds, and catch
    /// small-order R in a signature that is otherwise well formed.
    #[test]
    fn small_order_encodings_are_small_order() {
        let encodings = small_order_encodings();
        assert!(encodings.len() >= 14, "{}", encodings.len());
        for bytes in encodings {
            let point = curve25519_dalek::edwards::CompressedEdwardsY(*bytes).decompress();
            assert!(point.is_none_or(|p| p.is_small_order()), "{}", hex::encode(bytes));
        }
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut signature = key.sign(b"message").to_bytes();
        assert!(!r_is_small_order(&signature));
        signature[..32].copy_from_slice(&encodings[0]);
        assert!(r_is_small_order(&signature));
    }
}
