//! `TxCode`: every code a submitted transaction's result can carry, as one enum. On the
//! wire it is the stable name (`"sold_out"`, `"bad_signature"`), exactly the string the
//! API has always sent; in code it is matched, never compared as text.

use std::fmt;

use machi_ledger::{Reason, Refusal, TxError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! tx_codes {
    ($($(#[$meta:meta])* $variant:ident = $name:literal,)*) => {
        /// Why a transaction was not applied: a rule of the ledger (recorded on chain as
        /// rejected), a refusal before any block (nothing written), a body or signature
        /// that does not hold, or the node's own reason it could not take it now.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum TxCode { $($(#[$meta])* $variant,)* }

        impl TxCode {
            pub const ALL: &'static [TxCode] = &[$(TxCode::$variant,)*];

            /// The stable machine-readable name, as the API sends it.
            pub fn name(self) -> &'static str {
                match self { $(TxCode::$variant => $name,)* }
            }

            pub fn from_name(name: &str) -> Option<TxCode> {
                match name { $($name => Some(TxCode::$variant),)* _ => None }
            }
        }
    };
}

tx_codes! {
    // The ledger's rules: the transaction is in a block, rejected (`Reason`).
    SaleNotOpen = "sale_not_open",
    SoldOut = "sold_out",
    NotEnoughSetsLeft = "not_enough_sets_left",
    OverCap = "over_cap",
    InsufficientBalance = "insufficient_balance",
    IssueExpired = "issue_expired",
    AccountFrozen = "account_frozen",
    PayeeFrozen = "payee_frozen",
    NotAShop = "not_a_shop",
    UnknownIssue = "unknown_issue",
    IssueExists = "issue_exists",
    AccountExists = "account_exists",
    ResidentAlreadyRegistered = "resident_already_registered",
    UnknownAccount = "unknown_account",
    CashMismatch = "cash_mismatch",
    WorkersNotEligible = "workers_not_eligible",
    UnknownPayment = "unknown_payment",
    RefundExceedsPayment = "refund_exceeds_payment",
    NotYourPayment = "not_your_payment",
    CashOutDeadlinePassed = "cash_out_deadline_passed",
    UnknownCashOut = "unknown_cash_out",
    CashOutNotPending = "cash_out_not_pending",
    IssueNotEnded = "issue_not_ended",
    AlreadyExpired = "already_expired",
    InvalidParameters = "invalid_parameters",
    ZeroAmount = "zero_amount",
    AccountRevoked = "account_revoked",
    NotAResident = "not_a_resident",
    ShopBalanceInsufficient = "shop_balance_insufficient",
    NoChange = "no_change",
    FrozenByTown = "frozen_by_town",
    CounterClosed = "counter_closed",
    DayNotStarted = "day_not_started",
    CloseMismatch = "close_mismatch",
    DayAlreadyClosed = "day_already_closed",
    SlipAlreadyRecorded = "slip_already_recorded",
    NotALottery = "not_a_lottery",
    LotteryLocked = "lottery_locked",
    NotALotteryParty = "not_a_lottery_party",
    CommitClosed = "commit_closed",
    AlreadyCommitted = "already_committed",
    LotteryNotReady = "lottery_not_ready",
    ApplicationsNotOpen = "applications_not_open",
    RevealNotOpen = "reveal_not_open",
    RevealMismatch = "reveal_mismatch",
    AlreadyRevealed = "already_revealed",
    DrawTooEarly = "draw_too_early",
    AlreadyDrawn = "already_drawn",
    LotteryNotDrawn = "lottery_not_drawn",
    NotAllotted = "not_allotted",
    OverAllotment = "over_allotment",
    // The ledger's refusals before a block (`Refusal`): nothing is written.
    UnknownSigner = "unknown_signer",
    WrongRole = "wrong_role",
    KeyRevoked = "key_revoked",
    TtlExpired = "ttl_expired",
    NotYetValid = "not_yet_valid",
    TtlTooLong = "ttl_too_long",
    WrongChain = "wrong_chain",
    NoGenesis = "no_genesis",
    Duplicate = "duplicate",
    // The body or signature does not hold (`TxError`): refused.
    MalformedBody = "malformed_body",
    NonCanonicalBody = "non_canonical_body",
    BodyTooLarge = "body_too_large",
    BadKey = "bad_key",
    BadSignature = "bad_signature",
    // The node's own refusals.
    /// A transaction with this id is on the chain with another signature.
    ConflictingDuplicate = "conflicting_duplicate",
    /// The block could not be written; nothing was committed.
    StorageUnavailable = "storage_unavailable",
    /// The node is at capacity.
    Busy = "busy",
    /// The node is stopping.
    ShuttingDown = "shutting_down",
    /// This replica does not lead, and no leader is known to forward to.
    NoLeader = "no_leader",
    /// The block holding it was proposed but not confirmed by a majority (leadership was
    /// lost, or replicas did not answer in time): it may still commit; send the same
    /// transaction again to learn its outcome.
    Unconfirmed = "unconfirmed",
    /// This replica halted on a block that does not verify; ask another replica.
    Halted = "halted",
}

impl TxCode {
    /// The HTTP status a result with this code travels with when it is a request's only
    /// result: 422 for a rule the ledger recorded; for a refusal 401 (who signed cannot
    /// be trusted or is not known), 403 (known, but may not), 409 (conflict), 503 (not
    /// now: the same transaction may be sent again), else 400.
    pub fn http_status(self) -> u16 {
        if self.reason().is_some() {
            return 422;
        }
        match self {
            TxCode::BadSignature | TxCode::BadKey | TxCode::UnknownSigner => 401,
            TxCode::WrongRole | TxCode::KeyRevoked => 403,
            TxCode::ConflictingDuplicate => 409,
            TxCode::StorageUnavailable
            | TxCode::Busy
            | TxCode::ShuttingDown
            | TxCode::NoLeader
            | TxCode::Unconfirmed
            | TxCode::Halted => 503,
            _ => 400,
        }
    }

    /// Whether the code only says "not now": nothing was committed, and the same signed
    /// transaction may still commit when sent again.
    pub fn is_transient(self) -> bool {
        self.http_status() == 503
    }

    /// The ledger's rule, for a code that is recorded on chain.
    pub fn reason(self) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| TxCode::from(*r) == self)
    }
}

impl From<Reason> for TxCode {
    fn from(reason: Reason) -> TxCode {
        match reason {
            Reason::SaleNotOpen => TxCode::SaleNotOpen,
            Reason::SoldOut => TxCode::SoldOut,
            Reason::NotEnoughSetsLeft => TxCode::NotEnoughSetsLeft,
            Reason::OverCap => TxCode::OverCap,
            Reason::InsufficientBalance => TxCode::InsufficientBalance,
            Reason::IssueExpired => TxCode::IssueExpired,
            Reason::AccountFrozen => TxCode::AccountFrozen,
            Reason::PayeeFrozen => TxCode::PayeeFrozen,
            Reason::NotAShop => TxCode::NotAShop,
            Reason::UnknownIssue => TxCode::UnknownIssue,
            Reason::IssueExists => TxCode::IssueExists,
            Reason::AccountExists => TxCode::AccountExists,
            Reason::ResidentAlreadyRegistered => TxCode::ResidentAlreadyRegistered,
            Reason::UnknownAccount => TxCode::UnknownAccount,
            Reason::CashMismatch => TxCode::CashMismatch,
            Reason::WorkersNotEligible => TxCode::WorkersNotEligible,
            Reason::UnknownPayment => TxCode::UnknownPayment,
            Reason::RefundExceedsPayment => TxCode::RefundExceedsPayment,
            Reason::NotYourPayment => TxCode::NotYourPayment,
            Reason::CashOutDeadlinePassed => TxCode::CashOutDeadlinePassed,
            Reason::UnknownCashOut => TxCode::UnknownCashOut,
            Reason::CashOutNotPending => TxCode::CashOutNotPending,
            Reason::IssueNotEnded => TxCode::IssueNotEnded,
            Reason::AlreadyExpired => TxCode::AlreadyExpired,
            Reason::InvalidParameters => TxCode::InvalidParameters,
            Reason::ZeroAmount => TxCode::ZeroAmount,
            Reason::AccountRevoked => TxCode::AccountRevoked,
            Reason::NotAResident => TxCode::NotAResident,
            Reason::ShopBalanceInsufficient => TxCode::ShopBalanceInsufficient,
            Reason::NoChange => TxCode::NoChange,
            Reason::FrozenByTown => TxCode::FrozenByTown,
            Reason::CounterClosed => TxCode::CounterClosed,
            Reason::DayNotStarted => TxCode::DayNotStarted,
            Reason::CloseMismatch => TxCode::CloseMismatch,
            Reason::DayAlreadyClosed => TxCode::DayAlreadyClosed,
            Reason::SlipAlreadyRecorded => TxCode::SlipAlreadyRecorded,
            Reason::NotALottery => TxCode::NotALottery,
            Reason::LotteryLocked => TxCode::LotteryLocked,
            Reason::NotALotteryParty => TxCode::NotALotteryParty,
            Reason::CommitClosed => TxCode::CommitClosed,
            Reason::AlreadyCommitted => TxCode::AlreadyCommitted,
            Reason::LotteryNotReady => TxCode::LotteryNotReady,
            Reason::ApplicationsNotOpen => TxCode::ApplicationsNotOpen,
            Reason::RevealNotOpen => TxCode::RevealNotOpen,
            Reason::RevealMismatch => TxCode::RevealMismatch,
            Reason::AlreadyRevealed => TxCode::AlreadyRevealed,
            Reason::DrawTooEarly => TxCode::DrawTooEarly,
            Reason::AlreadyDrawn => TxCode::AlreadyDrawn,
            Reason::LotteryNotDrawn => TxCode::LotteryNotDrawn,
            Reason::NotAllotted => TxCode::NotAllotted,
            Reason::OverAllotment => TxCode::OverAllotment,
        }
    }
}

impl From<Refusal> for TxCode {
    fn from(refusal: Refusal) -> TxCode {
        match refusal {
            Refusal::UnknownSigner => TxCode::UnknownSigner,
            Refusal::WrongRole => TxCode::WrongRole,
            Refusal::KeyRevoked => TxCode::KeyRevoked,
            Refusal::TtlExpired => TxCode::TtlExpired,
            Refusal::NotYetValid => TxCode::NotYetValid,
            Refusal::TtlTooLong => TxCode::TtlTooLong,
            Refusal::WrongChain => TxCode::WrongChain,
            Refusal::NoGenesis => TxCode::NoGenesis,
            Refusal::Duplicate => TxCode::Duplicate,
        }
    }
}

impl From<TxError> for TxCode {
    fn from(error: TxError) -> TxCode {
        match error {
            TxError::Malformed => TxCode::MalformedBody,
            TxError::NonCanonical => TxCode::NonCanonicalBody,
            TxError::BodyTooLarge => TxCode::BodyTooLarge,
            TxError::BadKey => TxCode::BadKey,
            TxError::BadSignature => TxCode::BadSignature,
        }
    }
}

/// In the OpenAPI document: a string, one of the names.
impl utoipa::PartialSchema for TxCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(TxCode::ALL.iter().map(|code| code.name())))
            .description(Some(
                "Why a transaction was not applied: a rule of the ledger (rejected, recorded on chain), a \
                 refusal (nothing written), a body or signature that does not hold, or the node's own reason.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for TxCode {}

impl fmt::Display for TxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for TxCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TxCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TxCode, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        TxCode::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("{name:?} is not a transaction code")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every refusal of the ledger; a new one does not compile here until it is listed.
    fn every_refusal() -> Vec<Refusal> {
        let all = vec![
            Refusal::UnknownSigner,
            Refusal::WrongRole,
            Refusal::KeyRevoked,
            Refusal::TtlExpired,
            Refusal::NotYetValid,
            Refusal::TtlTooLong,
            Refusal::WrongChain,
            Refusal::NoGenesis,
            Refusal::Duplicate,
        ];
        for refusal in &all {
            match refusal {
                Refusal::UnknownSigner
                | Refusal::WrongRole
                | Refusal::KeyRevoked
                | Refusal::TtlExpired
                | Refusal::NotYetValid
                | Refusal::TtlTooLong
                | Refusal::WrongChain
                | Refusal::NoGenesis
                | Refusal::Duplicate => {}
            }
        }
        all
    }

    #[test]
    fn every_code_has_a_unique_name_that_round_trips() {
        let names: HashSet<&str> = TxCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), TxCode::ALL.len(), "names are unique");
        for &code in TxCode::ALL {
            assert_eq!(TxCode::from_name(code.name()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.name()), "on the wire it is the name");
            assert_eq!(serde_json::from_str::<TxCode>(&json).unwrap(), code);
        }
        assert_eq!(TxCode::from_name("no_such_code"), None);
        assert!(serde_json::from_str::<TxCode>("\"no_such_code\"").is_err());
    }

    #[test]
    fn every_reason_refusal_and_body_error_has_its_code() {
        for &reason in Reason::ALL {
            let code = TxCode::from(reason);
            assert_eq!(code.name(), reason.name(), "{reason:?}");
            assert_eq!(code.reason(), Some(reason));
            assert_eq!(code.http_status(), 422, "{reason:?} is recorded as rejected");
        }
        for refusal in every_refusal() {
            let code = TxCode::from(refusal);
            assert_eq!(code.name(), refusal.name(), "{refusal:?}");
            assert_eq!(code.reason(), None);
        }
        let body_errors = [
            (TxError::Malformed, "malformed_body"),
            (TxError::NonCanonical, "non_canonical_body"),
            (TxError::BodyTooLarge, "body_too_large"),
            (TxError::BadKey, "bad_key"),
            (TxError::BadSignature, "bad_signature"),
        ];
        for (error, name) in body_errors {
            assert_eq!(TxCode::from(error).name(), name);
        }
        let recorded = TxCode::ALL.iter().filter(|c| c.reason().is_some()).count();
        assert_eq!(recorded, Reason::ALL.len(), "a code is recorded exactly when it is a rule's");
    }

    #[test]
    fn http_statuses_are_the_documented_ones() {
        let expect = [
            (TxCode::SoldOut, 422),
            (TxCode::InsufficientBalance, 422),
            (TxCode::BadSignature, 401),
            (TxCode::BadKey, 401),
            (TxCode::UnknownSigner, 401),
            (TxCode::WrongRole, 403),
            (TxCode::KeyRevoked, 403),
            (TxCode::ConflictingDuplicate, 409),
            (TxCode::StorageUnavailable, 503),
            (TxCode::Busy, 503),
            (TxCode::ShuttingDown, 503),
            (TxCode::NoLeader, 503),
            (TxCode::Unconfirmed, 503),
            (TxCode::Halted, 503),
            (TxCode::TtlExpired, 400),
            (TxCode::WrongChain, 400),
            (TxCode::MalformedBody, 400),
        ];
        for (code, status) in expect {
            assert_eq!(code.http_status(), status, "{code}");
        }
        let transient: Vec<TxCode> = TxCode::ALL.iter().copied().filter(|c| c.is_transient()).collect();
        assert_eq!(
            transient,
            [
                TxCode::StorageUnavailable,
                TxCode::Busy,
                TxCode::ShuttingDown,
                TxCode::NoLeader,
                TxCode::Unconfirmed,
                TxCode::Halted
            ]
        );
    }
}
