//! Why a transaction was rejected (recorded on chain with its code) or refused (never
//! recorded). Codes and names are stable: clients, auditors and the export depend on them.

use serde::{Deserialize, Serialize};

macro_rules! reasons {
    ($($variant:ident = $code:literal, $name:literal, $message:literal;)*) => {
        /// A rule the ledger enforced: the transaction is in a block with status "rejected".
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Reason { $($variant,)* }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            pub fn code(self) -> u16 {
                match self { $(Reason::$variant => $code,)* }
            }

            /// The stable machine-readable name, used as the API error code.
            pub fn name(self) -> &'static str {
                match self { $(Reason::$variant => $name,)* }
            }

            /// A plain-language explanation.
            pub fn message(self) -> &'static str {
                match self { $(Reason::$variant => $message,)* }
            }

            pub fn from_code(code: u16) -> Option<Reason> {
                match code { $($code => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reasons! {
    SaleNotOpen = 1, "sale_not_open", "the issue is not on sale at this time";
    SoldOut = 2, "sold_out", "the issue is sold out";
    NotEnoughSetsLeft = 3, "not_enough_sets_left", "fewer sets are left than were asked for";
    OverCap = 4, "over_cap", "this would take the resident over the per-person limit for the issue";
    InsufficientBalance = 5, "insufficient_balance", "the balance usable here is not enough";
    IssueExpired = 6, "issue_expired", "the issue's value has expired";
    AccountFrozen = 7, "account_frozen", "the account is frozen";
    PayeeFrozen = 8, "payee_frozen", "the shop's account is frozen";
    NotAShop = 9, "not_a_shop", "payments go to registered shops only";
    UnknownIssue = 10, "unknown_issue", "no issue has this id";
    IssueExists = 11, "issue_exists", "an issue with this id already exists";
    AccountExists = 12, "account_exists", "this key is already registered";
    ResidentAlreadyRegistered = 13, "resident_already_registered", "this resident number already has an account";
    UnknownAccount = 14, "unknown_account", "no account has this key";
    CashMismatch = 15, "cash_mismatch", "cash received does not equal the price of the sets";
    WorkersNotEligible = 16, "workers_not_eligible", "this issue is for residents only, not workers";
    UnknownPayment = 17, "unknown_payment", "no payment has this id";
    RefundExceedsPayment = 18, "refund_exceeds_payment", "a refund cannot exceed what the payment took less earlier refunds";
    NotYourPayment = 19, "not_your_payment", "the payment was made to another shop";
    CashOutDeadlinePassed = 20, "cash_out_deadline_passed", "the cash-out deadline for this issue has passed";
    UnknownCashOut = 21, "unknown_cash_out", "no cash-out request has this id";
    CashOutNotPending = 22, "cash_out_not_pending", "the cash-out request is not pending";
    IssueNotEnded = 23, "issue_not_ended", "the issue's spend-until date has not passed";
    AlreadyExpired = 24, "already_expired", "there is nothing left to expire for this issue now";
    InvalidParameters = 25, "invalid_parameters", "the transaction's parameters are not valid";
    ZeroAmount = 26, "zero_amount", "the amount must be at least ¥1";
    AccountRevoked = 27, "account_revoked", "the account's key was replaced and is revoked";
    NotAResident = 28, "not_a_resident", "the account is not a resident's";
    ShopBalanceInsufficient = 29, "shop_balance_insufficient", "the shop no longer holds enough of this value to refund";
    NoChange = 30, "no_change", "the account is already in that state";
    FrozenByTown = 31, "frozen_by_town", "the town froze this account; only the town can lift it";
    CounterClosed = 32, "counter_closed", "this counter has closed its cash for the day; it sells again tomorrow";
    DayNotStarted = 33, "day_not_started", "that day has not begun yet (Japan time)";
    CloseMismatch = 34, "close_mismatch", "the sales stated in the close are not the ones the chain recorded at this counter that day";
    DayAlreadyClosed = 35, "day_already_closed", "this counter has already closed that day; the first close stands";
    SlipAlreadyRecorded = 36, "slip_already_recorded", "a deposit with this slip reference is already recorded";
    NotALottery = 37, "not_a_lottery", "this issue is not sold by lottery";
    LotteryLocked = 38, "lottery_locked", "a lottery can be set only before the issue's sale starts and before any application";
    NotALotteryParty = 39, "not_a_lottery_party", "the signer is not one of the lottery's parties";
    CommitClosed = 40, "commit_closed", "the lottery's commit deadline has passed";
    AlreadyCommitted = 41, "already_committed", "this party has already committed its secret";
    LotteryNotReady = 42, "lottery_not_ready", "not every party committed its secret by the deadline; applications open only once all have";
    ApplicationsNotOpen = 43, "applications_not_open", "the lottery is not taking applications at this time";
    RevealNotOpen = 44, "reveal_not_open", "secrets are revealed only after applications close and before the reveal period ends";
    RevealMismatch = 45, "reveal_mismatch", "the secret does not hash to the party's commitment";
    AlreadyRevealed = 46, "already_revealed", "this party has already revealed its secret";
    DrawTooEarly = 47, "draw_too_early", "the draw waits until every party revealed or the reveal period ended";
    AlreadyDrawn = 48, "already_drawn", "the lottery has already been drawn";
    LotteryNotDrawn = 49, "lottery_not_drawn", "the lottery has not been drawn yet; no sets are sold before the draw";
    NotAllotted = 50, "not_allotted", "in this window only residents the lottery allotted sets to may buy, and this one has none";
    OverAllotment = 51, "over_allotment", "more sets than the lottery allotted this resident and they have not bought yet";
}

/// What is wrong with a transaction's bytes or signature: it is refused before the ledger
/// looks at it, and nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction body does not decode")]
    Malformed,
    #[error("transaction body is not in canonical encoding")]
    NonCanonical,
    #[error("transaction body is larger than {} bytes", crate::limits::BODY_BYTES_MAX)]
    BodyTooLarge,
    #[error("signer key is not a valid Ed25519 public key, or is of small order")]
    BadKey,
    #[error("signature does not verify for this chain, signer and body")]
    BadSignature,
}

/// Why a transaction was refused before it could enter a block. Nothing is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
    #[error("the signer is not a registered account")]
    UnknownSigner,
    #[error("the signer's role may not do this")]
    WrongRole,
    #[error("the signer's key has been replaced and is revoked")]
    KeyRevoked,
    #[error("the transaction's time-to-live has passed")]
    TtlExpired,
    #[error("the transaction's creation time is in the future")]
    NotYetValid,
    #[error("the transaction's time-to-live is longer than allowed")]
    TtlTooLong,
    #[error("the transaction is for another chain")]
    WrongChain,
    #[error("this chain has no genesis yet")]
    NoGenesis,
    #[error("the transaction is already on the chain")]
    Duplicate,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::UnknownSigner => "unknown_signer",
            Refusal::WrongRole => "wrong_role",
            Refusal::KeyRevoked => "key_revoked",
            Refusal::TtlExpired => "ttl_expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::TtlTooLong => "ttl_too_long",
            Refusal::WrongChain => "wrong_chain",
            Refusal::NoGenesis => "no_genesis",
            Refusal::Duplicate => "duplicate",
        }
    }
}

/// What happened to a transaction that entered a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Applied,
    Rejected(Reason),
}

impl Outcome {
    pub const STATUS_APPLIED: u8 = 0;
    pub const STATUS_REJECTED: u8 = 1;

    pub fn status(self) -> u8 {
        match self {
            Outcome::Applied => Outcome::STATUS_APPLIED,
            Outcome::Rejected(_) => Outcome::STATUS_REJECTED,
        }
    }

    pub fn reason_code(self) -> u16 {
        match self {
            Outcome::Applied => 0,
            Outcome::Rejected(reason) => reason.code(),
        }
    }

    pub fn from_parts(status: u8, reason_code: u16) -> Option<Outcome> {
        match (status, reason_code) {
            (0, 0) => Some(Outcome::Applied),
            (1, code) => Reason::from_code(code).map(Outcome::Rejected),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_names_are_unique_and_round_trip() {
        let codes: HashSet<u16> = Reason::ALL.iter().map(|r| r.code()).collect();
        let names: HashSet<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        assert_eq!(names.len(), Reason::ALL.len());
        assert!(!codes.contains(&0), "0 means applied");
        for &reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
            let outcome = Outcome::Rejected(reason);
            assert_eq!(Outcome::from_parts(outcome.status(), outcome.reason_code()), Some(outcome));
        }
    }
}
