//! Secrets: bearer tokens (random, kept only as SHA-256), shop keys sealed with
//! ChaCha20-Poly1305 under a key derived from the town's key, and the random ids and pay
//! codes of invoices.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use machi_ledger::{sha256, AccountId, Hash32, SigningKey};
use rand::{Rng, RngCore};
use sha2::Sha256;

/// Digits in a pay code. With invoices open for minutes and look-ups rate-limited per
/// client, guessing one of them is a long shot (docs/MERCHANT-API.md works it out); and
/// a guessed code shows only a shop's name and an amount.
pub(crate) const PAY_CODE_DIGITS: usize = 8;

/// A new bearer token: a prefix that says what it is, then 32 random bytes in hex.
pub(crate) fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

pub(crate) fn token_hash(token: &str) -> Hash32 {
    sha256(token.as_bytes())
}

pub(crate) fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

pub(crate) fn new_pay_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..PAY_CODE_DIGITS).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

/// Seals and opens shop keys. The sealing key is HMAC-SHA256 of a fixed label under the
/// secret key of the town's delegated shop registrar (`--registrar-key`), which is kept
/// outside the data folder: whoever runs the service with that key can open them, a copy
/// of the data folder alone cannot. A new registrar key needs the shops' keys re-sealed.
pub(crate) struct Sealer {
    cipher: ChaCha20Poly1305,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "a shop key file does not open with this registrar key (wrong --registrar-key, or the file was changed)"
)]
pub(crate) struct SealError;

impl Sealer {
    pub(crate) fn new(registrar: &SigningKey) -> Sealer {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&registrar.to_bytes()).expect("HMAC takes any key");
        mac.update(b"machi-merchant shop-key sealing v1");
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        Sealer { cipher: ChaCha20Poly1305::new(Key::from_slice(&key)) }
    }

    /// Returns (nonce hex, sealed hex); the shop's account is bound in as associated data.
    pub(crate) fn seal(&self, shop: &AccountId, key: &SigningKey) -> (String, String) {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &key.to_bytes(), aad: &shop.0 })
            .expect("encryption of 32 bytes cannot fail");
        (hex::encode(nonce), hex::encode(sealed))
    }

    pub(crate) fn open(
        &self,
        shop: &AccountId,
        nonce_hex: &str,
        sealed_hex: &str,
    ) -> Result<SigningKey, SealError> {
        let nonce = hex::decode(nonce_hex).map_err(|_| SealError)?;
        let sealed = hex::decode(sealed_hex).map_err(|_| SealError)?;
        if nonce.len() != 12 {
            return Err(SealError);
        }
        let seed = self
            .cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &sealed, aad: &shop.0 })
            .map_err(|_| SealError)?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| SealError)?;
        let key = SigningKey::from_bytes(&seed);
        if key.verifying_key().to_bytes() != shop.0 {
            return Err(SealError);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_registrar_key_and_shop() {
        let town = SigningKey::from_bytes(&[7; 32]);
        let shop_key = SigningKey::from_bytes(&[9; 32]);
        let shop = AccountId::of(&shop_key);
        let (nonce, sealed) = Sealer::new(&town).seal(&shop, &shop_key);
        assert!(!sealed.contains(&hex::encode(shop_key.to_bytes())));
        let opened = Sealer::new(&town).open(&shop, &nonce, &sealed).expect("opens");
        assert_eq!(opened.to_bytes(), shop_key.to_bytes());
        let other_town = SigningKey::from_bytes(&[8; 32]);
        assert!(Sealer::new(&other_town).open(&shop, &nonce, &sealed).is_err());
        assert!(Sealer::new(&town).open(&AccountId([1; 32]), &nonce, &sealed).is_err());
        let mut tampered = hex::decode(&sealed).unwrap();
        tampered[0] ^= 1;
        assert!(Sealer::new(&town).open(&shop, &nonce, &hex::encode(tampered)).is_err());
    }

    #[test]
    fn pay_codes_are_digits_and_tokens_are_long() {
        let code = new_pay_code();
        assert_eq!(code.len(), PAY_CODE_DIGITS);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        let token = new_token("mst");
        assert_eq!(token.len(), 4 + 64);
        assert_ne!(token_hash(&token), token_hash(&new_token("mst")));
    }
}
