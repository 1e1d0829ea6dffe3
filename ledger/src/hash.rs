//! The byte-exact hashes of docs/FORMAT.md: transaction ids, outcome records, RFC 6962 Merkle
//! roots, block hashes; and the 32-byte newtypes they produce.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

macro_rules! bytes32 {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            pub fn from_hex(text: &str) -> Option<$name> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(text, &mut out).ok()?;
                Some($name(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..12])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<$name, String> {
                $name::from_hex(text)
                    .ok_or_else(|| format!("{text:?} is not 64 lowercase hex digits"))
            }
        }

        /// Hex in JSON (human-readable formats), 32 raw bytes in postcard.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                if deserializer.is_human_readable() {
                    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                    $name::from_hex(&text).ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "expected 64 hex digits for {}",
                            stringify!($name)
                        ))
                    })
                } else {
                    <[u8; 32]>::deserialize(deserializer).map($name)
                }
            }
        }

        /// In JSON (and so in OpenAPI) a string of 64 lowercase hex digits.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some("^[0-9a-f]{64}$"))
                    .description(Some(concat!(stringify!($name), ": 32 bytes as 64 lowercase hex digits")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

bytes32!(
    /// A SHA-256 digest: block hashes, Merkle roots, file hashes, resident-number hashes.
    Hash32
);
bytes32!(
    /// An account is its Ed25519 public key.
    AccountId
);
bytes32!(
    /// `tx_id` of docs/FORMAT.md ("Transaction id"): the hash of a transaction's content.
    TxId
);

impl AccountId {
    /// The account of a signing key: its public key.
    pub fn of(key: &ed25519_dalek::SigningKey) -> AccountId {
        AccountId(key.verifying_key().to_bytes())
    }
}

pub(crate) const TX_DOMAIN: &[u8] = b"machi.tx.v1";
pub(crate) const OUTCOME_DOMAIN: &[u8] = b"machi.outcome.v1";
pub(crate) const BLOCK_DOMAIN: &[u8] = b"machi.block.v1";

pub fn sha256(bytes: &[u8]) -> Hash32 {
    Hash32(Sha256::digest(bytes).into())
}

/// Longest chain id, in bytes.
pub const CHAIN_ID_BYTES_MAX: usize = 64;

/// A chain id is 1-64 characters of ASCII letters, digits, `-`, `_` and `.`. Every chain
/// id that comes from outside (a block read from disk or an export) is checked before it
/// is hashed.
pub fn chain_id_is_valid(chain_id: &str) -> bool {
    !chain_id.is_empty()
        && chain_id.len() <= CHAIN_ID_BYTES_MAX
        && chain_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `u16be(len chain_id)`: chain ids are checked where they enter, so a longer one here is
/// a bug.
pub(crate) fn chain_id_len(chain: &[u8]) -> [u8; 2] {
    assert!(chain.len() <= CHAIN_ID_BYTES_MAX, "unchecked chain id of {} bytes", chain.len());
    (chain.len() as u16).to_be_bytes()
}

/// `SHA-256("machi.tx.v1" 0x00 || u16be(len chain_id) || chain_id || signer[32] || body)`.
pub fn tx_id(chain_id: &str, signer: &AccountId, body: &[u8]) -> TxId {
    let chain = chain_id.as_bytes();
    let chain_len = chain_id_len(chain);
    let mut hasher = Sha256::new();
    hasher.update(TX_DOMAIN);
    hasher.update([0u8]);
    hasher.update(chain_len);
    hasher.update(chain);
    hasher.update(signer.0);
    hasher.update(body);
    TxId(hasher.finalize().into())
}

/// `SHA-256("machi.outcome.v1" 0x00 || tx_id[32] || status u8 || u16be(reason_code))`.
pub fn outcome_record(tx_id: &TxId, status: u8, reason_code: u16) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(OUTCOME_DOMAIN);
    hasher.update([0u8]);
    hasher.update(tx_id.0);
    hasher.update([status]);
    hasher.update(reason_code.to_be_bytes());
    Hash32(hasher.finalize().into())
}

/// RFC 6962 Merkle tree hash of 32-byte leaves; the empty list hashes to `SHA-256("")`.
pub fn merkle_root(leaves: &[[u8; 32]]) -> Hash32 {
    if leaves.is_empty() {
        return sha256(b"");
    }
    Hash32(merkle_subtree(leaves))
}

pub(crate) fn merkle_subtree(leaves: &[[u8; 32]]) -> [u8; 32] {
    if let [leaf] = leaves {
        let mut hasher = Sha256::new();
        hasher.update([0u8]);
        hasher.update(leaf);
        return hasher.finalize().into();
    }
    // Split at the largest power of two strictly below n.
    let split = largest_power_of_two_below(leaves.len());
    let left = merkle_subtree(&leaves[..split]);
    let right = merkle_subtree(&leaves[split..]);
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

pub(crate) fn largest_power_of_two_below(n: usize) -> usize {
    debug_assert!(n >= 2);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}
