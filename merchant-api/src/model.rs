//! What the merchant API keeps and shows: shops, tokens, invoices, cash-outs,
//! settlements and statement lines. Stored as JSON (in sled or in fsync'd files) and
//! shown as JSON; amounts are integer yen, ids of chain things are lowercase hex.

use machi_api::TxCode;
use machi_ledger::{AccountId, Hash32, ShopClass, SignedTx, TxId, Yen};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a shop's API token may do. Each scope includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Invoices, balance, cash-outs, statements and events: look, never change.
    ReadOnly,
    /// The counter: also create invoices and refund payments.
    PointOfSale,
    /// The back office: also request cash-outs.
    Full,
}

/// 預金種目 as the Zengin record codes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    /// 普通 (1)
    Ordinary,
    /// 当座 (2)
    Current,
    /// 貯蓄 (4)
    Savings,
}

impl AccountType {
    pub fn zengin_code(self) -> u8 {
        match self {
            AccountType::Ordinary => 1,
            AccountType::Current => 2,
            AccountType::Savings => 4,
        }
    }
}

/// A shop's bank account as the town registers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankAccountInput {
    /// 4 digits (金融機関コード).
    pub bank_code: String,
    /// 3 digits (支店コード).
    pub branch_code: String,
    pub account_type: AccountType,
    /// 7 digits (口座番号).
    pub account_number: String,
    /// 口座名義 in katakana (full- or half-width); stored half-width.
    pub holder_kana: String,
}

/// A checked bank account, with the bank's and branch's names from the code list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BankAccount {
    pub bank_code: String,
    pub bank_name: String,
    pub bank_kana: String,
    pub branch_code: String,
    pub branch_name: String,
    pub branch_kana: String,
    pub account_type: AccountType,
    pub account_number: String,
    pub holder_kana: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterShopRequest {
    /// The shop's name as residents see it (at most 100 characters).
    pub name: String,
    /// The name in katakana.
    pub kana_name: String,
    pub class: ShopClass,
    pub bank: BankAccountInput,
}

/// A shop as kept on disk: its key is sealed (ChaCha20-Poly1305 under a key derived from
/// the town's key); the registration transaction is kept so it can be re-sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShopRecord {
    pub account: AccountId,
    pub name: String,
    pub kana_name: String,
    pub class: ShopClass,
    pub bank: BankAccount,
    pub created_ms: u64,
    pub key_nonce: String,
    pub key_sealed: String,
    pub register_tx: SignedTx,
    /// Set by the town office: the shop's tokens, sessions and pay codes are refused and
    /// no invoice is made for it until the town lifts it (the on-chain freeze is the
    /// town's own, signed with its key).
    #[serde(default)]
    pub suspended_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShopView {
    /// The shop's account on chain (64 hex digits); also its id here.
    pub id: AccountId,
    pub name: String,
    pub kana_name: String,
    pub class: ShopClass,
    pub bank: BankAccount,
    pub created_ms: u64,
    /// The town office suspended it here: its tokens and pay codes are refused.
    #[serde(default)]
    pub suspended: bool,
}

impl ShopView {
    pub fn new(record: &ShopRecord) -> ShopView {
        ShopView {
            id: record.account,
            name: record.name.clone(),
            kana_name: record.kana_name.clone(),
            class: record.class,
            bank: record.bank.clone(),
            created_ms: record.created_ms,
            suspended: record.suspended_ms.is_some(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    pub suspended: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub scope: Scope,
    /// Where the token lives, e.g. "counter tablet".
    #[serde(default)]
    pub label: String,
}

/// A shop token as kept: only the SHA-256 of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub hash: Hash32,
    pub shop: AccountId,
    pub scope: Scope,
    pub label: String,
    pub created_ms: u64,
    pub revoked_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub id: String,
    /// The bearer token. Shown once; only its hash is kept.
    pub token: String,
    pub shop: AccountId,
    pub scope: Scope,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoiceRequest {
    /// Whole yen, at least 1.
    pub amount: Yen,
    #[serde(default)]
    pub memo: String,
    /// Seconds until an unpaid invoice expires (default 900, at most 86,400).
    pub expires_in_s: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Open,
    Paid,
    Expired,
    PartlyRefunded,
    Refunded,
}

impl InvoiceStatus {
    pub fn name(self) -> &'static str {
        match self {
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Expired => "expired",
            InvoiceStatus::PartlyRefunded => "partly_refunded",
            InvoiceStatus::Refunded => "refunded",
        }
    }
}

/// The committed payment that paid an invoice, as read from the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentInfo {
    pub tx_id: TxId,
    pub resident: AccountId,
    pub height: u64,
    pub timestamp_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundInfo {
    pub tx_id: TxId,
    pub amount: Yen,
    pub height: u64,
    pub timestamp_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Invoice {
    pub id: String,
    pub shop: AccountId,
    pub amount: Yen,
    pub memo: String,
    pub status: InvoiceStatus,
    /// 8 digits a resident gives the kiosk; only while the invoice is open.
    pub pay_code: Option<String>,
    /// What the counter shows as a QR code; only while the invoice is open.
    pub qr_payload: Option<String>,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub payment: Option<PaymentInfo>,
    pub refunded: Yen,
    pub refunds: Vec<RefundInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Whole yen; at most what the payment took less earlier refunds.
    pub amount: Yen,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashOutRequest {
    /// The issue whose value is cashed out.
    pub issue: u32,
    /// Whole yen; without it, the shop's whole balance of that issue.
    pub amount: Option<Yen>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CashOutStatus {
    Pending,
    Paid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CashOut {
    /// The request's transaction id.
    pub id: TxId,
    pub shop: AccountId,
    pub issue: u32,
    pub amount: Yen,
    pub fee: Yen,
    /// What the bank transfer pays: amount less fee.
    pub net: Yen,
    pub status: CashOutStatus,
    pub requested_ms: u64,
    pub settlement: Option<String>,
    pub transfer_date: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceLine {
    pub issue: u32,
    pub issue_name: String,
    pub common: Yen,
    pub local: Yen,
    pub total: Yen,
    pub pending_cash_out: Yen,
    pub cash_out_deadline_ms: u64,
    pub cash_out_deadline_jst: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Balance {
    pub shop: AccountId,
    pub total: Yen,
    pub issues: Vec<BalanceLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementRequest {
    /// 振込指定日, YYYY-MM-DD.
    pub transfer_date: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettlementStatus {
    /// The file is written and kept; the chain has not yet confirmed the settlement, so
    /// the file is not given out. `POST /v1/admin/settlements` sends it again.
    Submitting,
    /// On chain: the cash-outs are paid, and the file can be downloaded.
    Recorded,
    /// The chain recorded the settlement's transaction as rejected (`reason`): it paid
    /// nothing. The file is kept and never given out; its cash-outs go in a later one.
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Settlement {
    pub id: String,
    pub transfer_date: String,
    pub cash_outs: Vec<TxId>,
    /// Data records in the file: one per shop.
    pub transfers: u32,
    pub total: Yen,
    pub file_sha256: Hash32,
    /// The transaction that records it (the last one signed for it).
    pub tx_id: TxId,
    /// Transactions signed earlier for this same file whose time-to-live ran out before
    /// they reached the chain; none of them ever can.
    #[serde(default)]
    pub expired_tx_ids: Vec<TxId>,
    pub status: SettlementStatus,
    /// Why the chain rejected it.
    #[serde(default)]
    pub reason: Option<TxCode>,
    pub created_ms: u64,
    pub height: Option<u64>,
    #[serde(skip_serializing)]
    #[schema(ignore)]
    pub tx: Option<SignedTx>,
}

/// One line of a shop's statement, read from a committed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Payment,
    Refund,
    CashOut,
    CashOutPaid,
}

impl EntryKind {
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Payment => "payment",
            EntryKind::Refund => "refund",
            EntryKind::CashOut => "cash_out",
            EntryKind::CashOutPaid => "cash_out_paid",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub timestamp_ms: u64,
    pub height: u64,
    pub tx_id: TxId,
    pub kind: EntryKind,
    pub invoice: Option<String>,
    pub issue: Option<u32>,
    /// Into the shop's balance (+) or out of it (−).
    pub amount: i64,
    pub fee: Yen,
    pub net: Yen,
}

/// An event for a shop's counter device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShopEvent {
    /// Increasing; give it back as `Last-Event-ID` to resume.
    pub seq: u64,
    /// `invoice.paid`, `refund.done` or `cash_out.paid`.
    pub kind: String,
    pub shop: AccountId,
    pub invoice: Option<Invoice>,
    pub cash_out: Option<CashOut>,
}

/// A registered shop with its opened key.
pub(crate) struct Shop {
    pub(crate) record: ShopRecord,
    pub(crate) key: machi_ledger::SigningKey,
}

/// Whom a paired browser acts for: the town office, or a shop with a scope. A counter
/// is a shop's `point_of_sale`, a back office its `full`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "side")]
pub enum DeviceCaller {
    TownOffice,
    Shop { shop: AccountId, scope: Scope },
}

impl DeviceCaller {
    pub fn shop(&self) -> Option<AccountId> {
        match self {
            DeviceCaller::TownOffice => None,
            DeviceCaller::Shop { shop, .. } => Some(*shop),
        }
    }
}

/// A browser's session after pairing (its cookie is kept only as SHA-256). One pairing
/// makes one device with one session; revoking the device ends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The device's id (`dev_…`), shown on the devices pages.
    pub device: String,
    pub caller: DeviceCaller,
    pub label: String,
    /// The per-session token every form carries.
    pub csrf: String,
    pub created_ms: u64,
    pub last_seen_ms: u64,
    pub revoked_ms: Option<u64>,
}

/// A pairing code as kept (the code itself is the key's preimage, kept only as SHA-256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRecord {
    pub caller: DeviceCaller,
    pub label: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// Set, once, by the pairing that used it.
    pub used_ms: Option<u64>,
}
