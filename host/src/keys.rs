//! Key files: the 32-byte Ed25519 seed as 64 hex digits and a newline, mode 0600.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context};
use machi_ledger::SigningKey;

/// Writes a new key file; one already at `path` is never replaced.
pub fn write_key(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    let text = format!("{}\n", hex::encode(key.to_bytes()));
    crate::create_durable(path, text.as_bytes())
        .with_context(|| format!("creating key file {}", path.display()))
}

/// Reads a key file, warning when others may read it.
pub fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = fs::read_to_string(path).with_context(|| format!("reading key file {}", path.display()))?;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "key file {} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    let mut seed = [0u8; 32];
    if hex::decode_to_slice(text.trim(), &mut seed).is_err() {
        bail!("key file {} does not hold 64 hex digits", path.display());
    }
    Ok(SigningKey::from_bytes(&seed))
}

/// A new key from the operating system's randomness.
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_key_file_is_private_read_back_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("town.key");
        let key = generate_key();
        write_key(&path, &key).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", hex::encode(key.to_bytes())));
        assert_eq!(read_key(&path).unwrap().to_bytes(), key.to_bytes());
        let error = write_key(&path, &generate_key()).unwrap_err();
        assert!(error.to_string().contains("town.key"), "{error}");
        assert_eq!(read_key(&path).unwrap().to_bytes(), key.to_bytes(), "the first key stays");
        fs::write(&path, "not a key\n").unwrap();
        assert!(read_key(&path).unwrap_err().to_string().contains("64 hex digits"));
    }
}
