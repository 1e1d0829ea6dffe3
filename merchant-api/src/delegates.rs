//! The town's delegated keys the service runs with (docs/RULES.md): a shop registrar that
//! can only register shops and a settler that can only record settlements. The town's own
//! key is never here.

use std::path::Path;

use anyhow::Context;
use machi_client::Client;
use machi_ledger::{AccountId, SigningKey};

/// File names `machi-merchant keygen` writes.
pub const REGISTRAR_KEY_FILE: &str = "registrar.key";
pub const SETTLER_KEY_FILE: &str = "settler.key";
/// The issuer key's file: the town office's issue form creates issues with it.
pub const ISSUER_KEY_FILE: &str = "issuer.key";

/// A delegated key is of use only once the town registered it with that power and has not
/// frozen (revoked) it: refuse to start otherwise, saying what the town must sign.
///
/// The service reads as its shop registrar, so the registrar's own check is also the node
/// opening its read session: a key not on chain is refused there (`not_registered`), a
/// frozen one too (`account_frozen`), and both are said as for any other delegate.
pub(crate) async fn check_delegate(
    node: &Client,
    key: &SigningKey,
    role: &str,
    flag: &str,
) -> anyhow::Result<()> {
    let account = AccountId::of(key);
    let how = format!(
        "the town registers it at the town office with\n  machi-wallet town register-delegate --delegation {flag} \
         --account {account} --name \"merchant API\""
    );
    match node.account(&account).await {
        Ok(view) if view.role == role && !view.frozen => Ok(()),
        Ok(view) if view.role == role => {
            anyhow::bail!("the town froze (revoked) the {flag} key {account}; the service needs a new one")
        }
        Ok(view) => anyhow::bail!("the {flag} key {account} is registered as {}, not {role}", view.role),
        Err(e) if matches!(e.code(), "not_found" | "not_registered") => {
            anyhow::bail!("the {flag} key {account} is not registered on chain: {how}")
        }
        Err(e) if e.code() == "account_frozen" => {
            anyhow::bail!("the town froze (revoked) the {flag} key {account}; the service needs a new one")
        }
        Err(e) => Err(e).with_context(|| format!("looking up the {flag} key {account}")),
    }
}

/// Creates the service's two delegated keys in `dir` (mode 0600) and returns their
/// accounts: (shop registrar, settler).
pub fn generate_delegate_keys(dir: &Path) -> anyhow::Result<(AccountId, AccountId)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut accounts = Vec::new();
    for name in [REGISTRAR_KEY_FILE, SETTLER_KEY_FILE] {
        let key = machi_host::generate_key();
        machi_host::write_key(&dir.join(name), &key)?;
        accounts.push(AccountId::of(&key));
    }
    Ok((accounts[0], accounts[1]))
}

/// Creates the service's delegated issuer key in `dir` (mode 0600) and returns its account:
/// with it (`run --issuer-key`) the town office's form creates issues on chain.
pub fn generate_issuer_key(dir: &Path) -> anyhow::Result<AccountId> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = machi_host::generate_key();
    machi_host::write_key(&dir.join(ISSUER_KEY_FILE), &key)?;
    Ok(AccountId::of(&key))
}
