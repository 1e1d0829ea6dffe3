//! The lottery draw (抽選) of docs/FORMAT.md ("Lottery draw"), as one pure function: the
//! state records its result with it and `machi-node audit` recomputes it with it.
//!
//! - `seed = SHA-256("machi.lottery.v1" 0x00 || u32be(issue) || secret_1 || ... || secret_n
//!   || applications_root)`, a secret not revealed counting as 32 zero bytes;
//! - `applications_root` is the RFC 6962 Merkle root of the leaves `account[32] || u32be(sets)`
//!   sorted by account id (bytes, ascending);
//! - applicants are ordered by `SHA-256(seed || account[32])` ascending (equal keys, which
//!   need a SHA-256 collision, by account id); in that order each gets the sets they asked
//!   for until the supply runs out, the one at the boundary the remainder; the rest are
//!   the waiting list in the same order.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hash::{largest_power_of_two_below, sha256, AccountId, Hash32};
use crate::issue::IssueId;

pub(crate) const LOTTERY_DOMAIN: &[u8] = b"machi.lottery.v1";

/// Most parties a lottery may name.
pub const LOTTERY_PARTIES_MAX: usize = 8;

/// What the town sets on an issue to sell it by lottery (docs/RULES.md, "Lottery sales").
/// Times are milliseconds since the Unix epoch; every window is `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LotteryParams {
    /// The parties whose secrets make the seed, in the order they are hashed (e.g. the
    /// town, the bank, the auditor): distinct accounts of the town or lottery parties.
    pub parties: Vec<AccountId>,
    /// Commitments are taken while `t < commit_deadline_ms`.
    pub commit_deadline_ms: u64,
    /// Applications are taken while `apply_start_ms <= t < apply_end_ms`, once every
    /// party committed.
    pub apply_start_ms: u64,
    pub apply_end_ms: u64,
    /// Secrets are revealed while `apply_end_ms <= t < reveal_end_ms`.
    pub reveal_end_ms: u64,
    /// After the draw and while `t < purchase_end_ms`, only winners buy, up to what they won.
    pub purchase_end_ms: u64,
    /// While `purchase_end_ms <= t < waiting_end_ms`, only the waiting list buys the sets
    /// the winners left, each up to what was allotted to them; from then on, first come
    /// until the issue's sale ends.
    pub waiting_end_ms: u64,
}

impl LotteryParams {
    /// The schedule is in order and fits the issue's sale; the parties are 1 to
    /// `LOTTERY_PARTIES_MAX` distinct accounts. (Who they are is the state's check.)
    pub fn is_coherent(&self, now_ms: u64, sale_start_ms: u64, sale_end_ms: u64) -> bool {
        let mut parties = self.parties.clone();
        parties.sort();
        parties.dedup();
        !self.parties.is_empty()
            && self.parties.len() <= LOTTERY_PARTIES_MAX
            && parties.len() == self.parties.len()
            && now_ms < self.commit_deadline_ms
            && self.commit_deadline_ms <= self.apply_start_ms
            && self.apply_start_ms < self.apply_end_ms
            && self.apply_end_ms < self.reveal_end_ms
            && self.reveal_end_ms < self.purchase_end_ms
            && sale_start_ms < self.purchase_end_ms
            && self.purchase_end_ms < self.waiting_end_ms
            && self.waiting_end_ms <= sale_end_ms
    }
}

/// One resident's application: the sets they asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Application {
    pub account: AccountId,
    pub sets: u32,
}

/// An applicant's place in the draw's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Placed {
    pub account: AccountId,
    /// Sets asked for.
    pub applied: u32,
    /// Sets given (winners: 1..=applied; the waiting list: 0).
    pub won: u32,
    /// `SHA-256(seed || account)`, the key the order sorts by.
    pub key: Hash32,
}

/// What a draw decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Draw {
    /// The RFC 6962 root of the applications sorted by account.
    pub applications_root: Hash32,
    pub seed: Hash32,
    /// Winners in draw order: each got `won` sets; only the last may have got fewer than
    /// it asked for.
    pub winners: Vec<Placed>,
    /// Everyone else, in draw order (`won` is 0).
    pub waiting: Vec<Placed>,
}

impl Draw {
    /// Sets given to winners.
    pub fn sets_won(&self) -> u32 {
        self.winners.iter().map(|w| w.won).sum()
    }
}

/// Two applications named the same account: the state keeps one per resident, so a list
/// with a repeat did not come from the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("account {0} applied twice")]
pub struct RepeatedApplicant(pub AccountId);

/// The leaf of an application: `account[32] || u32be(sets)`.
pub fn application_leaf(app: &Application) -> [u8; 36] {
    let mut leaf = [0u8; 36];
    leaf[..32].copy_from_slice(&app.account.0);
    leaf[32..].copy_from_slice(&app.sets.to_be_bytes());
    leaf
}

/// RFC 6962 Merkle root of the applications sorted by account id.
pub fn applications_root(applications: &[Application]) -> Result<Hash32, RepeatedApplicant> {
    let sorted = sorted_by_account(applications)?;
    let leaves: Vec<[u8; 36]> = sorted.iter().map(application_leaf).collect();
    Ok(merkle_root_36(&leaves))
}

/// `SHA-256("machi.lottery.v1" 0x00 || u32be(issue) || secrets in party order (a missing
/// one as 32 zero bytes) || applications_root)`.
pub fn seed(issue: IssueId, secrets: &[Option<Hash32>], applications_root: &Hash32) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(LOTTERY_DOMAIN);
    hasher.update([0u8]);
    hasher.update(issue.to_be_bytes());
    for secret in secrets {
        hasher.update(secret.map_or([0u8; 32], |s| s.0));
    }
    hasher.update(applications_root.0);
    Hash32(hasher.finalize().into())
}

/// `SHA-256(seed || account)`.
pub fn order_key(seed: &Hash32, account: &AccountId) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(seed.0);
    hasher.update(account.0);
    Hash32(hasher.finalize().into())
}

/// A party's commitment to its secret: `SHA-256(secret)`.
pub fn commitment(secret: &Hash32) -> Hash32 {
    sha256(&secret.0)
}

/// The draw: `issue`'s applications, the parties' secrets in party order (`None` for a
/// party that did not reveal), and the sets on offer. The result does not depend on the
/// order in which `applications` are listed.
pub fn draw(
    issue: IssueId,
    secrets: &[Option<Hash32>],
    applications: &[Application],
    supply: u32,
) -> Result<Draw, RepeatedApplicant> {
    let root = applications_root(applications)?;
    let seed = seed(issue, secrets, &root);
    let mut placed: Vec<Placed> = applications
        .iter()
        .map(|a| Placed { account: a.account, applied: a.sets, won: 0, key: order_key(&seed, &a.account) })
        .collect();
    placed.sort_by(|a, b| a.key.cmp(&b.key).then(a.account.cmp(&b.account)));
    let (winners, waiting) = allot(placed, supply);
    Ok(Draw { applications_root: root, seed, winners, waiting })
}

/// Gives `supply` sets down `list` in its order: each their `applied`, the one at the
/// boundary the remainder; returns those given sets (with `won` set) and the rest. Used by
/// the draw and, after the winners' purchase window, for the waiting list's unclaimed sets.
pub fn allot(list: Vec<Placed>, supply: u32) -> (Vec<Placed>, Vec<Placed>) {
    let mut left = supply;
    let mut given = Vec::new();
    let mut rest = Vec::new();
    for mut p in list {
        if left == 0 || p.applied == 0 {
            p.won = 0;
            rest.push(p);
        } else {
            p.won = p.applied.min(left);
            left -= p.won;
            given.push(p);
        }
    }
    (given, rest)
}

fn sorted_by_account(applications: &[Application]) -> Result<Vec<Application>, RepeatedApplicant> {
    let mut sorted = applications.to_vec();
    sorted.sort_by_key(|a| a.account);
    if let Some(pair) = sorted.windows(2).find(|w| w[0].account == w[1].account) {
        return Err(RepeatedApplicant(pair[0].account));
    }
    Ok(sorted)
}

/// RFC 6962 Merkle tree hash of 36-byte leaves; the empty list hashes to `SHA-256("")`.
fn merkle_root_36(leaves: &[[u8; 36]]) -> Hash32 {
    if leaves.is_empty() {
        return sha256(b"");
    }
    Hash32(subtree(leaves))
}

fn subtree(leaves: &[[u8; 36]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    if let [leaf] = leaves {
        hasher.update([0u8]);
        hasher.update(leaf);
        return hasher.finalize().into();
    }
    let split = largest_power_of_two_below(leaves.len());
    hasher.update([1u8]);
    hasher.update(subtree(&leaves[..split]));
    hasher.update(subtree(&leaves[split..]));
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(byte: u8, sets: u32) -> Application {
        Application { account: AccountId([byte; 32]), sets }
    }

    #[test]
    fn the_boundary_applicant_gets_the_remainder() {
        let apps = [app(1, 3), app(2, 3), app(3, 3)];
        let d = draw(1, &[Some(Hash32([9; 32]))], &apps, 7).unwrap();
        let won: Vec<u32> = d.winners.iter().map(|w| w.won).collect();
        assert_eq!(won, vec![3, 3, 1]);
        assert!(d.waiting.is_empty());
        assert_eq!(d.sets_won(), 7);
        let d = draw(1, &[Some(Hash32([9; 32]))], &apps, 6).unwrap();
        assert_eq!(d.winners.len(), 2);
        assert_eq!(d.waiting.len(), 1);
        assert_eq!(d.waiting[0].won, 0);
    }

    #[test]
    fn a_repeated_applicant_is_refused() {
        assert_eq!(draw(1, &[], &[app(1, 1), app(1, 2)], 5), Err(RepeatedApplicant(AccountId([1; 32]))));
    }

    #[test]
    fn no_applications_hash_to_the_empty_root() {
        assert_eq!(applications_root(&[]).unwrap(), sha256(b""));
    }
}
