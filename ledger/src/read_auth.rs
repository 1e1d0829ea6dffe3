//! Read sessions (docs/FORMAT.md, "Read authentication"): a reader proves it holds an
//! account's key by signing a node's fresh challenge. The signed message is domain-
//! separated from transaction ids and block hashes, so a read signature can never be
//! taken for a transaction's or a block's, and it is checked under the chain's one
//! acceptance rule (`crate::signature`).

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use crate::hash::{chain_id_len, AccountId};
use crate::reason::TxError;

pub(crate) const READ_DOMAIN: &[u8] = b"machi.read.v1";

/// A challenge is 32 random bytes from the node.
pub const CHALLENGE_BYTES: usize = 32;
/// Longest purpose a reader may state, in bytes of UTF-8.
pub const PURPOSE_BYTES_MAX: usize = 200;
/// Shortest purpose a reader under the everything scope must state, in characters.
pub const PURPOSE_CHARS_MIN: usize = 4;

/// `SHA-256("machi.read.v1" 0x00 || u16be(len chain_id) || chain_id || challenge[32] ||
/// account[32] || u16be(len purpose) || purpose_utf8)`: the 32 bytes a reader signs.
/// `chain_id` is a valid chain id and `purpose` at most `PURPOSE_BYTES_MAX` bytes: both
/// are checked where they enter.
pub fn message(
    chain_id: &str,
    challenge: &[u8; CHALLENGE_BYTES],
    account: &AccountId,
    purpose: &str,
) -> [u8; 32] {
    let chain = chain_id.as_bytes();
    assert!(purpose.len() <= PURPOSE_BYTES_MAX, "unchecked purpose of {} bytes", purpose.len());
    let mut hasher = Sha256::new();
    hasher.update(READ_DOMAIN);
    hasher.update([0u8]);
    hasher.update(chain_id_len(chain));
    hasher.update(chain);
    hasher.update(challenge);
    hasher.update(account.0);
    hasher.update((purpose.len() as u16).to_be_bytes());
    hasher.update(purpose.as_bytes());
    hasher.finalize().into()
}

/// The signature of `key` on `message(chain_id, challenge, key's account, purpose)`.
pub fn sign(chain_id: &str, challenge: &[u8; CHALLENGE_BYTES], key: &SigningKey, purpose: &str) -> [u8; 64] {
    let account = AccountId::of(key);
    key.sign(&message(chain_id, challenge, &account, purpose)).to_bytes()
}

/// Checks a reader's signature under the chain's one acceptance rule: `BadKey` for a key
/// no account may hold, `BadSignature` for anything else that does not verify.
pub fn verify(
    chain_id: &str,
    challenge: &[u8; CHALLENGE_BYTES],
    account: &AccountId,
    purpose: &str,
    signature: &[u8; 64],
) -> Result<(), TxError> {
    crate::signature::verify(account, signature, &message(chain_id, challenge, account, purpose))
}
