//! The keystore: a private folder (0700) with one JSON file (0600) per wallet, named by
//! its card number. The Ed25519 secret is encrypted with ChaCha20-Poly1305 under a key
//! derived from the PIN with Argon2id (m = 19,456 KiB, t = 2, p = 1, a random 16-byte
//! salt per file); the card number and account are the authenticated data, so a file
//! cannot be re-labelled.
//!
//! Wrong PINs are counted in the file: after 5 in a row the wallet is locked for 15
//! minutes. The count is read, checked and updated under an exclusive lock of the card's
//! lock file, so PINs tried at the same time are counted one by one. It is authenticated
//! with HMAC-SHA256 under the keystore's lockout key (`lockout.key`, made when the
//! keystore is): a count changed by hand does not verify, and the card is then locked as
//! if the last try had been wrong. This stops guessing through the wallet, nothing more:
//! whoever can copy a wallet file can try PINs against the copy offline, at the cost of
//! one Argon2id derivation per PIN (docs/KIOSK.md says what that means).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use machi_ledger::{AccountId, SigningKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const ARGON2_M_KIB: u32 = 19_456;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;
pub const WRONG_PINS_MAX: u32 = 5;
pub const LOCK_MS: u64 = 15 * 60 * 1000;
/// Permissions of the keystore folder and of every file in it: the owner's only (files
/// are written with machi-host's durable write: aside, synced, renamed or linked into
/// place, the folder synced, so a crash leaves the old file or the new one, never half).
pub const FOLDER_MODE: u32 = 0o700;
pub use machi_host::FILE_MODE;
const FORMAT_VERSION: u32 = 2;
const LOCKOUT_KEY_FILE: &str = "lockout.key";
const LOCKOUT_KEY_BYTES: usize = 32;

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
    #[error(
        "the wallet file for card {0} was made by an older machi-wallet (format 1); the card \
         cannot be unlocked: replace it at the counter (operator replace-card)"
    )]
    OldFormat(String),
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

/// Checks a PIN's form: 4 to 8 ASCII digits.
pub fn check_pin(pin: &str) -> Result<(), KeystoreError> {
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
    lockout: Lockout,
}

/// The wrong-PIN count and lock, with their MAC under the keystore's lockout key.
#[derive(Serialize, Deserialize, Default)]
struct Lockout {
    wrong_pins: u32,
    locked_until_ms: u64,
    mac: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Kdf {
    algorithm: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

pub struct Keystore {
    dir: PathBuf,
    lockout_key: [u8; LOCKOUT_KEY_BYTES],
}

/// An unlocked wallet.
pub struct Wallet {
    pub card: CardNumber,
    pub key: SigningKey,
}

impl Wallet {
    pub fn account(&self) -> AccountId {
        AccountId::of(&self.key)
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

/// Creates `dir` (and its parents) as the owner's alone, and tightens it if it exists.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(FOLDER_MODE).create(dir)?;
    tighten(dir, FOLDER_MODE)
}

fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    let permissions = fs::metadata(path)?.permissions();
    if permissions.mode() & 0o777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// An exclusive lock of one card's lock file, held until dropped.
struct CardLock {
    _file: fs::File,
}

impl Keystore {
    /// Opens (or makes) a keystore folder: the folder and its files are made private to
    /// their owner, and the lockout key is made on first use.
    pub fn open(dir: &Path) -> Result<Keystore, KeystoreError> {
        create_private_dir(dir)?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_file() {
                tighten(&path, FILE_MODE)?;
            }
        }
        let lockout_key = lockout_key(dir)?;
        Ok(Keystore { dir: dir.to_path_buf(), lockout_key })
    }

    /// The keystore's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, card: &CardNumber) -> PathBuf {
        self.dir.join(format!("{}.json", card.digits()))
    }

    fn lock(&self, card: &CardNumber) -> Result<CardLock, KeystoreError> {
        let path = self.dir.join(format!("{}.lock", card.digits()));
        let file =
            fs::OpenOptions::new().create(true).truncate(false).write(true).mode(FILE_MODE).open(path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(std::io::Error::from)?;
        Ok(CardLock { _file: file })
    }

    /// The HMAC of a file's lockout record, over the card, account, count and lock time.
    fn lockout_hmac(&self, file: &WalletFile) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.lockout_key).expect("HMAC takes a key of any length");
        let Lockout { wrong_pins, locked_until_ms, .. } = file.lockout;
        let record =
            format!("machi.wallet.lockout.v2|{}|{}|{wrong_pins}|{locked_until_ms}", file.card, file.account);
        mac.update(record.as_bytes());
        mac
    }

    fn lockout_verifies(&self, file: &WalletFile) -> bool {
        let tag = hex::decode(&file.lockout.mac).unwrap_or_default();
        self.lockout_hmac(file).verify_slice(&tag).is_ok()
    }

    /// Creates a wallet for `key` protected by `pin`; returns its new card number. The
    /// file is on disk (synced) when this returns.
    pub fn create(&self, key: &SigningKey, pin: &str, label: &str) -> Result<CardNumber, KeystoreError> {
        check_pin(pin)?;
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let kdf = Kdf {
            algorithm: "argon2id".into(),
            m_kib: ARGON2_M_KIB,
            t: ARGON2_T,
            p: ARGON2_P,
            salt: hex::encode(salt),
        };
        let account = AccountId::of(key);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&derive(pin, &kdf)?));
        let secret = key.to_bytes();
        loop {
            let card = CardNumber::generate();
            let mut nonce = [0u8; 12];
            rand::rngs::OsRng.fill_bytes(&mut nonce);
            let ciphertext = cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload { msg: &secret, aad: &aad(card.digits(), &account) },
                )
                .map_err(|_| KeystoreError::Tampered("encrypt".into()))?;
            let mut file = WalletFile {
                version: FORMAT_VERSION,
                card: card.digits().to_string(),
                account,
                label: label.to_string(),
                kdf: kdf.clone(),
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(ciphertext),
                lockout: Lockout::default(),
            };
            file.lockout.mac = hex::encode(self.lockout_hmac(&file).finalize().into_bytes());
            match machi_host::create_durable(&self.path(&card), &encode(&file)) {
                Ok(()) => return Ok(card),
                // Another wallet already has this card number: draw another.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes a wallet file. Used only for a card that never reached the chain.
    pub fn remove(&self, card: &CardNumber) -> Result<(), KeystoreError> {
        let _lock = self.lock(card)?;
        fs::remove_file(self.path(card))?;
        let _ = fs::remove_file(self.dir.join(format!("{}.lock", card.digits())));
        fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    fn read(&self, card: &CardNumber) -> Result<WalletFile, KeystoreError> {
        let text = fs::read_to_string(self.path(card)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => KeystoreError::UnknownCard(card.display()),
            _ => KeystoreError::Io(e),
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| KeystoreError::Tampered(card.display()))?;
        if value["version"] == 1 {
            return Err(KeystoreError::OldFormat(card.display()));
        }
        let file: WalletFile =
            serde_json::from_value(value).map_err(|_| KeystoreError::Tampered(card.display()))?;
        if file.version != FORMAT_VERSION || file.card != card.digits() {
            return Err(KeystoreError::Tampered(card.display()));
        }
        Ok(file)
    }

    fn write(&self, card: &CardNumber, file: &mut WalletFile) -> Result<(), KeystoreError> {
        file.lockout.mac = hex::encode(self.lockout_hmac(file).finalize().into_bytes());
        Ok(machi_host::write_durable(&self.path(card), &encode(file))?)
    }

    /// The account of a card, without the PIN (for look-ups by staff).
    pub fn account(&self, card: &CardNumber) -> Result<AccountId, KeystoreError> {
        let text = fs::read_to_string(self.path(card)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => KeystoreError::UnknownCard(card.display()),
            _ => KeystoreError::Io(e),
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| KeystoreError::Tampered(card.display()))?;
        if value["card"] != card.digits() {
            return Err(KeystoreError::Tampered(card.display()));
        }
        serde_json::from_value(value["account"].clone()).map_err(|_| KeystoreError::Tampered(card.display()))
    }

    /// Unlocks a wallet with its PIN, counting wrong PINs and locking after too many.
    /// The whole read-check-update runs under the card's exclusive lock.
    pub fn unlock(&self, card: &CardNumber, pin: &str, now_ms: u64) -> Result<Wallet, KeystoreError> {
        let _lock = self.lock(card)?;
        let mut file = self.read(card)?;
        if !self.lockout_verifies(&file) {
            // The count was changed outside the wallet: lock, as for a last wrong PIN.
            return Err(self.lock_out(card, &mut file, now_ms));
        }
        if file.lockout.locked_until_ms > now_ms {
            return Err(KeystoreError::Locked {
                until_jst: machi_ledger::time::format_jst(file.lockout.locked_until_ms),
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
            file.lockout.wrong_pins += 1;
            let left = WRONG_PINS_MAX.saturating_sub(file.lockout.wrong_pins);
            if left == 0 {
                return Err(self.lock_out(card, &mut file, now_ms));
            }
            self.write(card, &mut file)?;
            return Err(KeystoreError::WrongPin { left });
        };
        let secret: [u8; 32] = secret.try_into().map_err(|_| KeystoreError::Tampered(card.display()))?;
        let key = SigningKey::from_bytes(&secret);
        if AccountId::of(&key) != file.account {
            return Err(KeystoreError::Tampered(card.display()));
        }
        if file.lockout.wrong_pins != 0 || file.lockout.locked_until_ms != 0 {
            file.lockout = Lockout::default();
            self.write(card, &mut file)?;
        }
        Ok(Wallet { card: card.clone(), key })
    }

    /// Locks the card for `LOCK_MS` from `now_ms` and says so (or why it could not).
    fn lock_out(&self, card: &CardNumber, file: &mut WalletFile, now_ms: u64) -> KeystoreError {
        file.lockout =
            Lockout { wrong_pins: 0, locked_until_ms: now_ms.saturating_add(LOCK_MS), mac: String::new() };
        match self.write(card, file) {
            Ok(()) => KeystoreError::Locked {
                until_jst: machi_ledger::time::format_jst(file.lockout.locked_until_ms),
            },
            Err(e) => e,
        }
    }
}

fn encode(file: &WalletFile) -> Vec<u8> {
    serde_json::to_vec_pretty(file).expect("a wallet file serialises")
}

/// The keystore's lockout key: read, or made once (no two processes make different ones:
/// the file is linked into place only if none is there yet).
fn lockout_key(dir: &Path) -> Result<[u8; LOCKOUT_KEY_BYTES], KeystoreError> {
    let path = dir.join(LOCKOUT_KEY_FILE);
    let mut key = [0u8; LOCKOUT_KEY_BYTES];
    if !path.exists() {
        rand::rngs::OsRng.fill_bytes(&mut key);
        match machi_host::create_durable(&path, hex::encode(key).as_bytes()) {
            Ok(()) => return Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    let text = fs::read_to_string(&path)?;
    hex::decode_to_slice(text.trim(), &mut key)
        .map_err(|_| KeystoreError::Tampered(format!("{}", path.display())))?;
    Ok(key)
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
        assert_eq!(store.unlock(&card, "2468", 0).unwrap().account(), AccountId::of(&key));
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

    #[test]
    fn files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("keystore");
        let store = Keystore::open(&folder).unwrap();
        let card = store.create(&SigningKey::from_bytes(&[3; 32]), "2468", "resident").unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700, "the keystore folder");
        assert_eq!(mode(&store.path(&card)), 0o600, "a new wallet file");
        assert!(store.unlock(&card, "1111", 0).is_err());
        assert_eq!(mode(&store.path(&card)), 0o600, "a wallet file rewritten by a wrong PIN");
        // A folder and file made loose by hand (or by an older wallet) are tightened.
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(store.path(&card), fs::Permissions::from_mode(0o644)).unwrap();
        Keystore::open(&folder).unwrap();
        assert_eq!((mode(&folder), mode(&store.path(&card))), (0o700, 0o600));
    }

    #[test]
    fn fifty_wrong_pins_at_once_lock_the_card() {
        let dir = tempfile::tempdir().unwrap();
        let card = Keystore::open(dir.path())
            .unwrap()
            .create(&SigningKey::from_bytes(&[5; 32]), "2468", "resident")
            .unwrap();
        let start = std::sync::Barrier::new(50);
        let results: Vec<Result<Wallet, KeystoreError>> = std::thread::scope(|scope| {
            let tries: Vec<_> = (0..50)
                .map(|_| {
                    scope.spawn(|| {
                        // Each thread has its own handle, as separate processes would.
                        let store = Keystore::open(dir.path()).unwrap();
                        start.wait();
                        store.unlock(&card, "0000", 0)
                    })
                })
                .collect();
            tries.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let wrong = results.iter().filter(|r| matches!(r, Err(KeystoreError::WrongPin { .. }))).count();
        let locked = results.iter().filter(|r| matches!(r, Err(KeystoreError::Locked { .. }))).count();
        assert_eq!((wrong, locked), (WRONG_PINS_MAX as usize - 1, 50 - (WRONG_PINS_MAX as usize - 1)));
        let store = Keystore::open(dir.path()).unwrap();
        assert!(matches!(store.unlock(&card, "2468", 1), Err(KeystoreError::Locked { .. })));
    }

    #[test]
    fn editing_the_counter_in_the_file_does_not_unlock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::open(dir.path()).unwrap();
        let card = store.create(&SigningKey::from_bytes(&[6; 32]), "2468", "resident").unwrap();
        let path = store.path(&card);
        let reset = |text: &str| {
            // Every way of writing "no wrong PINs, not locked" into the file.
            let mut file: serde_json::Value = serde_json::from_str(text).unwrap();
            for (key, value) in file.as_object_mut().unwrap() {
                if key.contains("wrong") || key.contains("locked") {
                    *value = 0.into();
                }
                if let Some(inner) = value.as_object_mut() {
                    for (key, value) in inner.iter_mut() {
                        if key.contains("wrong") || key.contains("locked") {
                            *value = 0.into();
                        }
                    }
                }
            }
            file.to_string()
        };
        for _ in 0..WRONG_PINS_MAX {
            let _ = store.unlock(&card, "0000", 0);
        }
        let locked = fs::read_to_string(&path).unwrap();
        fs::write(&path, reset(&locked)).unwrap();
        assert!(
            matches!(store.unlock(&card, "2468", 1), Err(KeystoreError::Locked { .. })),
            "a locked card stays locked when its file is edited"
        );
        // Four wrong PINs, then the count set back to zero by hand: the card locks
        // rather than granting more tries.
        let store = Keystore::open(dir.path()).unwrap();
        let card = store.create(&SigningKey::from_bytes(&[8; 32]), "2468", "resident").unwrap();
        let path = store.path(&card);
        for _ in 1..WRONG_PINS_MAX {
            let _ = store.unlock(&card, "0000", 0);
        }
        fs::write(&path, reset(&fs::read_to_string(&path).unwrap())).unwrap();
        assert!(matches!(store.unlock(&card, "2468", 1), Err(KeystoreError::Locked { .. })));
        assert!(store.unlock(&card, "2468", LOCK_MS + 2).is_ok(), "usable again after the lock time");
    }

    #[test]
    fn a_file_of_the_first_format_is_not_unlocked_but_can_be_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::open(dir.path()).unwrap();
        let key = SigningKey::from_bytes(&[9; 32]);
        let card = store.create(&key, "2468", "resident").unwrap();
        // Format 1 kept an unauthenticated count at the top level.
        let mut file: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(store.path(&card)).unwrap()).unwrap();
        file["version"] = 1.into();
        file["wrong_pins"] = 0.into();
        file["locked_until_ms"] = 0.into();
        file.as_object_mut().unwrap().remove("lockout");
        fs::write(store.path(&card), file.to_string()).unwrap();
        assert!(matches!(store.unlock(&card, "2468", 0), Err(KeystoreError::OldFormat(_))));
        assert_eq!(store.account(&card).unwrap(), AccountId::of(&key), "staff can still replace it");
    }

    mod properties {
        use proptest::prelude::*;
        use proptest::test_runner::{FileFailurePersistence, RngSeed};

        use super::super::*;

        /// Few cases: every well-formed PIN tried costs one Argon2id derivation at the
        /// production parameters.
        fn config() -> ProptestConfig {
            let cases = std::env::var("MACHI_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(8);
            ProptestConfig {
                cases,
                rng_seed: RngSeed::Fixed(0x6d61_6368_692d_6b73),
                failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/regressions/keystore.txt"
                )))),
                ..ProptestConfig::default()
            }
        }

        fn pin() -> impl Strategy<Value = String> {
            "[0-9]{4,8}"
        }

        /// A PIN that is not `right`: mostly a near miss (one digit changed, one more or
        /// one fewer, the digits in full width, spaces around), sometimes anything.
        fn wrong(right: String) -> impl Strategy<Value = String> {
            let near = (any::<prop::sample::Index>(), 0..=9u8, 0..6u8).prop_map(move |(at, digit, how)| {
                let mut pin: Vec<char> = right.chars().collect();
                let i = at.index(pin.len());
                match how {
                    0 => pin[i] = char::from(b'0' + (pin[i] as u8 - b'0' + 1 + digit % 9) % 10),
                    1 => pin.insert(i, char::from(b'0' + digit)),
                    2 => {
                        pin.remove(i);
                    }
                    3 => {
                        pin = pin
                            .iter()
                            .map(|&c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap())
                            .collect()
                    }
                    4 => pin.push(' '),
                    _ => pin.reverse(),
                }
                pin.into_iter().collect::<String>()
            });
            prop_oneof![4 => near, 1 => pin(), 1 => "\\PC{0,10}"]
        }

        fn case() -> impl Strategy<Value = (String, Vec<String>, [u8; 32])> {
            pin().prop_flat_map(|right| {
                let wrongs = prop::collection::vec(wrong(right.clone()), 0..WRONG_PINS_MAX as usize);
                (Just(right), wrongs, any::<[u8; 32]>())
            })
        }

        proptest! {
            #![proptest_config(config())]

            /// For any PIN: no other text opens the card, each wrong try says how many are
            /// left, and the right PIN then opens it with its own key.
            #[test]
            fn only_the_right_pin_opens_a_card((right, wrongs, secret) in case()) {
                let dir = tempfile::tempdir().unwrap();
                let store = Keystore::open(dir.path()).unwrap();
                let key = SigningKey::from_bytes(&secret);
                let card = store.create(&key, &right, "resident").unwrap();
                let mut tries = 0;
                for pin in wrongs.iter().filter(|pin| **pin != right) {
                    tries += 1;
                    match store.unlock(&card, pin, 0) {
                        Err(KeystoreError::WrongPin { left }) => prop_assert_eq!(left, WRONG_PINS_MAX - tries),
                        Err(e) => return Err(TestCaseError::fail(format!("{pin:?}: {e}"))),
                        Ok(_) => return Err(TestCaseError::fail(format!("{pin:?} opened a card whose PIN is {right:?}"))),
                    }
                }
                let wallet = store.unlock(&card, &right, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(wallet.key.to_bytes(), secret);
                prop_assert_eq!(wallet.account(), AccountId::of(&key));
            }
        }
    }
}
