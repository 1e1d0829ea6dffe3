//! The keystore: one JSON file per wallet, named by its card number. The Ed25519 secret
//! is encrypted with ChaCha20-Poly1305 under a key derived from the PIN with Argon2id
//! (m = 19,456 KiB, t = 2, p = 1, a random 16-byte salt per file); the card number and
//! account are the authenticated data, so a file cannot be re-labelled. Wrong PINs are
//! counted in the file: after 5 in a row the wallet is locked for 15 minutes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use machi_ledger::{AccountId, SigningKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub const ARGON2_M_KIB: u32 = 19_456;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;
pub const WRONG_PINS_MAX: u32 = 5;
pub const LOCK_MS: u64 = 15 * 60 * 1000;
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("no wallet with card number {0}")]
    UnknownCard(String),
    #[error("card number {0} is not valid (check the digits)")]
    BadCardNumber(String),
    #[error("the PIN must be 4 to 8 digits")]
    BadPinFormat,
    #[error("wrong PIN ({left} tries left before the card is locked)")]
    WrongPin { left: u32 },
    #[error("this card is locked after {WRONG_PINS_MAX} wrong PINs; try again after {until_jst} (JST)")]
    Locked { until_jst: String },
    #[error("the wallet file for card {0} has been changed or damaged")]
    Tampered(String),
    #[error("keystore file error: {0}")]
    Io(#[from] std::io::Error),
}

/// A card number: 8 random digits and a Luhn check digit, shown as `1234-5678-9`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    pub fn generate() -> CardNumber {
        let mut digits: Vec<u8> = (0..8).map(|_| (rand::random::<u32>() % 10) as u8).collect();
        if digits[0] == 0 {
            digits[0] = 1 + (rand::random::<u32>() % 9) as u8;
        }
        digits.push(luhn_digit(&digits));
        CardNumber(digits.iter().map(|d| char::from(b'0' + d)).collect())
    }

    /// Accepts `123456789`, `1234-5678-9`, spaces, full-width digits.
    pub fn parse(text: &str) -> Result<CardNumber, KeystoreError> {
        let digits: String = text
            .chars()
            .filter_map(|c| match c {
                '0'..='9' => Some(c),
                '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
                _ => None,
            })
            .collect();
        let bad = || KeystoreError::BadCardNumber(text.trim().to_string());
        if digits.len() != 9
            || text.chars().any(|c| !(c.is_ascii_digit() || "-  ０１２３４５６７８９".contains(c)))
        {
            return Err(bad());
        }
        let values: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
        if luhn_digit(&values[..8]) != values[8] {
            return Err(bad());
        }
        Ok(CardNumber(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn display(&self) -> String {
        format!("{}-{}-{}", &self.0[..4], &self.0[4..8], &self.0[8..])
    }
}

/// The Luhn check digit of `digits`.
fn luhn_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn check_pin(pin: &str) -> Result<(), KeystoreError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(KeystoreError::BadPinFormat)
    }
}

#[derive(Serialize, Deserialize)]
struct WalletFile {
    version: u32,
    card: String,
    account: AccountId,
    /// What the holder is: resident, operator, town (for people, not trusted).
    label: String,
    kdf: Kdf,
    nonce: String,
    ciphertext: String,
    wrong_pins: u32,
    locked_until_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    algorithm: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

pub struct Keystore {
    dir: PathBuf,
}

/// An unlocked wallet.
pub struct Wallet {
    pub card: CardNumber,
    pub key: SigningKey,
}

impl Wallet {
    pub fn account(&self) -> AccountId {
        AccountId(self.key.verifying_key().to_bytes())
    }
}

fn derive(pin: &str, kdf: &Kdf) -> Result<[u8; 32], KeystoreError> {
    let salt = hex::decode(&kdf.salt).map_err(|_| KeystoreError::Tampered("salt".into()))?;
    let params =
        Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32)).map_err(|_| KeystoreError::Tampered("kdf".into()))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pin.as_bytes(), &salt, &mut key)
        .map_err(|_| KeystoreError::Tampered("kdf".into()))?;
    Ok(key)
}

fn aad(card: &str, account: &AccountId) -> Vec<u8> {
    format!("machi.wallet.v1|{card}|{account}").into_bytes()
}

impl Keystore {
    pub fn open(dir: &Path) -> Result<Keystore, KeystoreError> {
        fs::create_dir_all(dir)?;
        Ok(Keystore { dir: dir.to_path_buf() })
    }

    fn path(&self, card: &CardNumber) -> PathBuf {
        self.dir.join(format!("{}.json", card.digits()))
    }

    /// Creates a wallet for `key` protected by `pin`; returns its new card number.
    pub fn create(&self, key: &SigningKey, pin: &str, label: &str) -> Result<CardNumber, KeystoreError> {
        check_pin(pin)?;
        let card = loop {
            let card = CardNumber::generate();
            if !self.path(&card).exists() {
                break card;
            }
        };
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let kdf = Kdf {
            algorithm: "argon2id".into(),
            m_kib: ARGON2_M_KIB,
            t: ARGON2_T,
            p: ARGON2_P,
            salt: hex::encode(salt),
        };
        let account = AccountId(key.verifying_key().to_bytes());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&derive(pin, &kdf)?));
        let secret = key.to_bytes();
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &secret, aad: &aad(card.digits(), &account) })
            .map_err(|_| KeystoreError::Tampered("encrypt".into()))?;
        let file = WalletFile {
            version: FORMAT_VERSION,
            card: card.digits().to_string(),
            account,
            label: label.to_string(),
            kdf,
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
            wrong_pins: 0,
            locked_until_ms: 0,
        };
        self.write(&card, &file)?;
        Ok(card)
    }

    fn read(&self, card: &CardNumber) -> Result<WalletFile, KeystoreError> {
        let text = fs::read_to_string(self.path(card)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => KeystoreError::UnknownCard(card.display()),
            _ => KeystoreError::Io(e),
        })?;
        let file: WalletFile =
            serde_json::from_str(&text).map_err(|_| KeystoreError::Tampered(card.display()))?;
        if file.version != FORMAT_VERSION || file.card != card.digits() {
            return Err(KeystoreError::Tampered(card.display()));
        }
        Ok(file)
    }

    /// Writes aside, syncs, renames: a crash never leaves half a wallet file.
    fn write(&self, card: &CardNumber, file: &WalletFile) -> Result<(), KeystoreError> {
        let path = self.path(card);
        let aside = path.with_extension("tmp");
        let mut out = fs::File::create(&aside)?;
        out.write_all(serde_json::to_string_pretty(file).expect("serialisable").as_bytes())?;
        out.sync_all()?;
        fs::rename(&aside, &path)?;
        Ok(())
    }

    /// The account of a card, without the PIN (for look-ups by staff).
    pub fn account(&self, card: &CardNumber) -> Result<AccountId, KeystoreError> {
        Ok(self.read(card)?.account)
    }

    /// Unlocks a wallet with its PIN, counting wrong PINs and locking after too many.
    pub fn unlock(&self, card: &CardNumber, pin: &str, now_ms: u64) -> Result<Wallet, KeystoreError> {
        let mut file = self.read(card)?;
        if file.locked_until_ms > now_ms {
            return Err(KeystoreError::Locked {
                until_jst: machi_ledger::time::format_jst(file.locked_until_ms),
            });
        }
        let nonce = hex::decode(&file.nonce).map_err(|_| KeystoreError::Tampered(card.display()))?;
        let ciphertext =
            hex::decode(&file.ciphertext).map_err(|_| KeystoreError::Tampered(card.display()))?;
        if nonce.len() != 12 {
            return Err(KeystoreError::Tampered(card.display()));
        }
        let opened = match check_pin(pin) {
            Ok(()) => ChaCha20Poly1305::new(Key::from_slice(&derive(pin, &file.kdf)?))
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload { msg: &ciphertext, aad: &aad(&file.card, &file.account) },
                )
                .ok(),
            Err(_) => None,
        };
        let Some(secret) = opened else {
            file.wrong_pins += 1;
            let left = WRONG_PINS_MAX.saturating_sub(file.wrong_pins);
            if left == 0 {
                file.locked_until_ms = now_ms + LOCK_MS;
                file.wrong_pins = 0;
                self.write(card, &file)?;
                return Err(KeystoreError::Locked {
                    until_jst: machi_ledger::time::format_jst(file.locked_until_ms),
                });
            }
            self.write(card, &file)?;
            return Err(KeystoreError::WrongPin { left });
        };
        let secret: [u8; 32] = secret.try_into().map_err(|_| KeystoreError::Tampered(card.display()))?;
        let key = SigningKey::from_bytes(&secret);
        if AccountId(key.verifying_key().to_bytes()) != file.account {
            return Err(KeystoreError::Tampered(card.display()));
        }
        if file.wrong_pins != 0 {
            file.wrong_pins = 0;
            self.write(card, &file)?;
        }
        Ok(Wallet { card: card.clone(), key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_carry_a_check_digit() {
        for _ in 0..100 {
            let card = CardNumber::generate();
            assert_eq!(CardNumber::parse(&card.display()).unwrap(), card);
            let mut wrong: Vec<u8> = card.digits().bytes().collect();
            wrong[3] = if wrong[3] == b'9' { b'0' } else { wrong[3] + 1 };
            assert!(
                CardNumber::parse(std::str::from_utf8(&wrong).unwrap()).is_err(),
                "one wrong digit is caught"
            );
        }
        assert!(CardNumber::parse("１２３４-５６７８-").is_err());
        assert!(CardNumber::parse("abc").is_err());
    }

    #[test]
    fn the_file_holds_no_secret_and_locks_after_wrong_pins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::open(dir.path()).unwrap();
        let key = SigningKey::from_bytes(&[42; 32]);
        let card = store.create(&key, "2468", "resident").unwrap();
        let bytes = fs::read(store.path(&card)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!bytes.windows(32).any(|w| w == key.to_bytes()), "no secret bytes in clear");
        assert!(!text.contains(&hex::encode(key.to_bytes())), "no secret in hex");
        assert_eq!(
            store.unlock(&card, "2468", 0).unwrap().account(),
            AccountId(key.verifying_key().to_bytes())
        );
        for left in (1..WRONG_PINS_MAX).rev() {
            assert!(
                matches!(store.unlock(&card, "1111", 0), Err(KeystoreError::WrongPin { left: l }) if l == left)
            );
        }
        assert!(matches!(store.unlock(&card, "1111", 0), Err(KeystoreError::Locked { .. })));
        assert!(
            matches!(store.unlock(&card, "2468", 1), Err(KeystoreError::Locked { .. })),
            "even the right PIN waits"
        );
        assert!(store.unlock(&card, "2468", LOCK_MS + 1).is_ok(), "unlocked after the lock time");
    }

    #[test]
    fn tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::open(dir.path()).unwrap();
        let card = store.create(&SigningKey::from_bytes(&[7; 32]), "1357", "resident").unwrap();
        let path = store.path(&card);
        let original = fs::read_to_string(&path).unwrap();
        let mut file: serde_json::Value = serde_json::from_str(&original).unwrap();
        let ct = file["ciphertext"].as_str().unwrap().to_string();
        let flipped = format!("{}{}", if &ct[..1] == "0" { "1" } else { "0" }, &ct[1..]);
        file["ciphertext"] = flipped.into();
        fs::write(&path, file.to_string()).unwrap();
        assert!(store.unlock(&card, "1357", 0).is_err(), "a changed ciphertext does not open");
        // Relabelling the file with another account is caught by the authenticated data.
        let mut file: serde_json::Value = serde_json::from_str(&original).unwrap();
        file["account"] = hex::encode([9u8; 32]).into();
        fs::write(&path, file.to_string()).unwrap();
        assert!(store.unlock(&card, "1357", 0).is_err());
    }
}
