//! Accounts: registration of every role, a lost card's key replacement, freezing.

use super::*;

impl State {
    pub(super) fn register(
        &mut self,
        key: AccountId,
        role: Role,
        name: &str,
        resident_hash: Option<Hash32>,
    ) -> Result<(), Reason> {
        let is_resident = matches!(role, Role::Resident { .. });
        if !is_resident && (name.trim().is_empty() || name.chars().count() > NAME_CHARS_MAX) {
            return Err(Reason::InvalidParameters);
        }
        if check_key(&key).is_err() {
            return Err(Reason::InvalidParameters);
        }
        if self.accounts.contains_key(&key) {
            return Err(Reason::AccountExists);
        }
        if let Some(hash) = resident_hash {
            if self.resident_hashes.contains_key(&hash) {
                return Err(Reason::ResidentAlreadyRegistered);
            }
            self.resident_hashes.insert(hash, key);
        }
        let mut account = Account::new(role, name.to_string());
        account.resident_hash = resident_hash;
        self.accounts.insert(key, account);
        Ok(())
    }

    /// A lost card: the resident's identity, value and purchase counts move to a new key,
    /// and the old key is revoked.
    pub(super) fn replace_key(&mut self, old: AccountId, new: AccountId) -> Result<(), Reason> {
        let account = self.accounts.get(&old).ok_or(Reason::UnknownAccount)?;
        if !matches!(account.role, Role::Resident { .. }) {
            return Err(Reason::NotAResident);
        }
        if account.replaced_by.is_some() {
            return Err(Reason::AccountRevoked);
        }
        if self.accounts.contains_key(&new) || check_key(&new).is_err() {
            return Err(Reason::AccountExists);
        }
        let old_account = self.accounts.get_mut(&old).expect("looked up above");
        let mut moved = old_account.clone();
        old_account.replaced_by = Some(new);
        old_account.lots.clear();
        old_account.bought.clear();
        // A new card lifts an operator's freeze (the lost card), never the town's.
        moved.frozen = moved.frozen_by_town;
        if let Some(hash) = moved.resident_hash {
            self.resident_hashes.insert(hash, new);
        }
        self.accounts.insert(new, moved);
        self.lotteries_follow_key(old, new);
        Ok(())
    }

    /// A town freeze marks the account so that only the town lifts it; the town may also
    /// turn an operator's freeze into its own.
    pub(super) fn set_frozen(
        &mut self,
        signer: AccountId,
        key: AccountId,
        frozen: bool,
    ) -> Result<(), Reason> {
        let by_town = self.town == Some(signer);
        let account = self.accounts.get_mut(&key).ok_or(Reason::UnknownAccount)?;
        match (frozen, by_town) {
            (true, true) if account.frozen_by_town => Err(Reason::NoChange),
            (true, false) | (false, _) if account.frozen == frozen => Err(Reason::NoChange),
            (false, false) if account.frozen_by_town => Err(Reason::FrozenByTown),
            _ => {
                account.frozen = frozen;
                account.frozen_by_town = frozen && by_town;
                Ok(())
            }
        }
    }
}
