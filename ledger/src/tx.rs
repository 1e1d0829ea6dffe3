//! Transactions: the body every signer signs, its deterministic encoding (postcard), and
//! the signature check under the chain's one acceptance rule (`crate::signature`).

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::hash::{tx_id, AccountId, Hash32, TxId};
use crate::issue::{IssueId, IssueParams};
use crate::limits::BODY_BYTES_MAX;
use crate::lottery::LotteryParams;
use crate::reason::TxError;
use crate::signature::{self, KeyCache};
use crate::yen::Yen;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ShopClass {
    /// Chains and supermarkets: common value only.
    Large,
    /// Small local shops: local and common value.
    Local,
}

/// The one power a delegated town key holds. The town's master key registers them and can
/// stay offline: a service holding a delegated key can do this one thing and nothing else
/// (only an issuer delegate creates issues; none expires, freezes or registers operators).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Delegation {
    /// Registers shops (the merchant API, which keeps their bank accounts).
    ShopRegistrar,
    /// Records settlements of shops' cash-outs.
    Settler,
    /// Takes part in lottery draws it is named in (the bank, the auditor): commits,
    /// reveals, draws.
    LotteryParty,
    /// Creates issues (the town office's form in the merchant API). It cannot set up an
    /// issue's lottery, expire an issue, or do anything else.
    Issuer,
    /// Reads everything on the node's API (the bank's or the town assembly's auditors),
    /// every read logged with its purpose (docs/PRIVACY.md); it signs nothing on chain.
    Auditor,
}

/// One replica of the chain (docs/OPERATIONS.md): a party that keeps a copy, verifies
/// every block, and — if a voter — may lead and sign blocks with its producer key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Replica {
    /// Unique within the chain; openraft's node id.
    pub id: u64,
    pub name: String,
    /// Where its HTTP API listens, `host:port`.
    pub api_addr: String,
    /// Where replica-to-replica traffic reaches it, `host:port`.
    pub raft_addr: String,
    /// The key it signs blocks with when it leads.
    pub producer: AccountId,
    /// A voter counts for commits and elections and may produce; a learner (an auditor)
    /// follows and verifies without voting.
    pub voter: bool,
}

/// What a signed transaction asks the ledger to do. The variant order is part of the
/// encoding (postcard writes the index): append new kinds at the end, never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Genesis only: names the town and the block producer. Signed by the town.
    Genesis {
        town: AccountId,
        producer: AccountId,
    },
    RegisterOperator {
        operator: AccountId,
        name: String,
    },
    RegisterShop {
        shop: AccountId,
        name: String,
        class: ShopClass,
    },
    /// `resident_hash` is a keyed hash of the town's resident number, never the number.
    RegisterResident {
        resident: AccountId,
        resident_hash: Hash32,
        worker: bool,
    },
    CreateIssue {
        issue: IssueParams,
    },
    SellSets {
        #[cfg_attr(feature = "openapi", schema(inline))]
        issue: IssueId,
        resident: AccountId,
        sets: u32,
        cash_received: Yen,
    },
    Pay {
        shop: AccountId,
        amount: Yen,
        invoice: Option<String>,
    },
    Refund {
        payment: TxId,
        amount: Yen,
    },
    RequestCashOut {
        #[cfg_attr(feature = "openapi", schema(inline))]
        issue: IssueId,
        amount: Yen,
    },
    SettleCashOuts {
        cash_outs: Vec<TxId>,
        transfer_date: String,
        file_sha256: Hash32,
    },
    ExpireIssue {
        #[cfg_attr(feature = "openapi", schema(inline))]
        issue: IssueId,
    },
    ReplaceKey {
        old: AccountId,
        new: AccountId,
    },
    Freeze {
        account: AccountId,
    },
    Unfreeze {
        account: AccountId,
    },
    /// Town only: a key with one narrow power of the town's.
    RegisterDelegate {
        delegate: AccountId,
        name: String,
        delegation: Delegation,
    },
    /// Town only: the replicas from the next block on (in the genesis block: from block 1).
    /// The whole set, sorted by id; it replaces the one before.
    SetReplicas {
        replicas: Vec<Replica>,
    },
    /// Operator only: the cash close (入金締め) of the signer's counter for one JST day.
    /// `sales` and `expected` restate the day's sales the chain recorded at this counter;
    /// `counted` is the cash the operator counted in the drawer.
    CloseDay {
        /// `YYYY-MM-DD`, the JST calendar date of the sales' blocks.
        day: String,
        /// Per issue, ascending by issue id, issues with no sales left out.
        sales: Vec<DaySales>,
        /// The sum of `sales`' cash.
        expected: Yen,
        counted: Yen,
    },
    /// Town only: a bank deposit of a sale day's cash, from the bank's deposit slip.
    RecordDeposit {
        /// `YYYY-MM-DD`: the JST sale day whose cash this is.
        day: String,
        /// `YYYY-MM-DD`: the date on the bank's slip.
        deposited_on: String,
        amount: Yen,
        /// The slip's reference number, as printed (unique on the chain).
        slip_reference: String,
    },
    /// Town only, before the issue's sale starts and before any application: the issue is
    /// sold by lottery (docs/RULES.md, "Lottery sales"). Setting it again replaces the
    /// schedule and parties and clears the commitments.
    SetLottery {
        #[cfg_attr(feature = "openapi", schema(inline))]
        issue: IssueId,
        lottery: LotteryParams,
    },
    /// A named party, before the commit deadline: `SHA-256(secret)` of its 32-byte secret.
    CommitLotterySecret {
        #[cfg_attr(feature = "openapi", schema(inline))]
        issue: IssueId,
        commitment: Hash32,
    },
    /// The resident, or an operator on the resident's behalf, in the application window:
    /// `sets` (1 to the issue's per-resident cap). A later one replaces an earlier one.
    ApplyLottery {
        #[cfg_attr(feature = "openapi", schema(inline))]
        issue: IssueId,
        resident: AccountId,
        sets: u32,
    },
    /// A named party, in the reveal period: the secret it committed to.
    RevealLotterySecret {
        #[cfg_attr(feature = "openapi", schema(inline))]
        issue: IssueId,
        secret: Hash32,
    },
    /// The town or a named party, once the reveal period ended or every party revealed:
    /// the draw (`lottery::draw`), recorded once.
    DrawLottery {
        #[cfg_attr(feature = "openapi", schema(inline))]
        issue: IssueId,
    },
}

/// One issue's sales at one counter on one day, as a cash close states them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DaySales {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub issue: IssueId,
    pub sets: u32,
    pub cash: Yen,
}

impl Action {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Action::Genesis { .. } => "genesis",
            Action::RegisterOperator { .. } => "register_operator",
            Action::RegisterShop { .. } => "register_shop",
            Action::RegisterResident { .. } => "register_resident",
            Action::CreateIssue { .. } => "create_issue",
            Action::SellSets { .. } => "sell_sets",
            Action::Pay { .. } => "pay",
            Action::Refund { .. } => "refund",
            Action::RequestCashOut { .. } => "request_cash_out",
            Action::SettleCashOuts { .. } => "settle_cash_outs",
            Action::ExpireIssue { .. } => "expire_issue",
            Action::ReplaceKey { .. } => "replace_key",
            Action::Freeze { .. } => "freeze",
            Action::Unfreeze { .. } => "unfreeze",
            Action::RegisterDelegate { .. } => "register_delegate",
            Action::SetReplicas { .. } => "set_replicas",
            Action::CloseDay { .. } => "close_day",
            Action::RecordDeposit { .. } => "record_deposit",
            Action::SetLottery { .. } => "set_lottery",
            Action::CommitLotterySecret { .. } => "commit_lottery_secret",
            Action::ApplyLottery { .. } => "apply_lottery",
            Action::RevealLotterySecret { .. } => "reveal_lottery_secret",
            Action::DrawLottery { .. } => "draw_lottery",
        }
    }

    /// Accounts this transaction touches besides its signer (for history and events).
    pub fn counterparties(&self) -> Vec<AccountId> {
        match self {
            Action::Genesis { town, producer } => vec![*town, *producer],
            Action::RegisterOperator { operator, .. } => vec![*operator],
            Action::RegisterShop { shop, .. } => vec![*shop],
            Action::RegisterResident { resident, .. } => vec![*resident],
            Action::SellSets { resident, .. } => vec![*resident],
            Action::Pay { shop, .. } => vec![*shop],
            Action::ReplaceKey { old, new } => vec![*old, *new],
            Action::Freeze { account } | Action::Unfreeze { account } => vec![*account],
            Action::RegisterDelegate { delegate, .. } => vec![*delegate],
            Action::ApplyLottery { resident, .. } => vec![*resident],
            Action::SetLottery { .. }
            | Action::CommitLotterySecret { .. }
            | Action::RevealLotterySecret { .. }
            | Action::DrawLottery { .. } => vec![],
            Action::SetReplicas { .. } | Action::CloseDay { .. } | Action::RecordDeposit { .. } => vec![],
            Action::CreateIssue { .. }
            | Action::Refund { .. }
            | Action::RequestCashOut { .. }
            | Action::SettleCashOuts { .. }
            | Action::ExpireIssue { .. } => vec![],
        }
    }
}

/// The signed content of a transaction. `chain_id` is repeated inside the body so a
/// transaction meant for another chain is named as such instead of failing as a bad
/// signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TxBody {
    pub chain_id: String,
    pub created_ms: u64,
    pub ttl_ms: u32,
    pub nonce: u64,
    pub action: Action,
}

impl TxBody {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("encoding a body into a Vec cannot fail")
    }

    /// Decodes and insists on the one canonical encoding, so a body has one byte form
    /// and a transaction one id.
    pub fn decode(bytes: &[u8]) -> Result<TxBody, TxError> {
        if bytes.len() > BODY_BYTES_MAX {
            return Err(TxError::BodyTooLarge);
        }
        let body: TxBody = postcard::from_bytes(bytes).map_err(|_| TxError::Malformed)?;
        if body.encode() != bytes {
            return Err(TxError::NonCanonical);
        }
        Ok(body)
    }
}

/// A transaction as it travels and is stored: who signed, what bytes, the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedTx {
    pub signer: AccountId,
    /// The Ed25519 signature of the transaction id: 128 hex digits in JSON.
    #[serde(with = "sig_serde")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-f]{128}$"))]
    pub signature: [u8; 64],
    /// The body's canonical encoding (docs/FORMAT.md), in hex.
    #[serde(rename = "body_hex", with = "hex_vec")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-f]{2})*$"))]
    pub body: Vec<u8>,
}

impl SignedTx {
    pub fn sign(chain_id: &str, key: &SigningKey, body: &TxBody) -> SignedTx {
        let signer = AccountId::of(key);
        let bytes = body.encode();
        let id = tx_id(chain_id, &signer, &bytes);
        SignedTx { signer, signature: key.sign(&id.0).to_bytes(), body: bytes }
    }

    pub fn id(&self, chain_id: &str) -> TxId {
        tx_id(chain_id, &self.signer, &self.body)
    }
}

/// A transaction whose body decoded and whose signature verified.
#[derive(Clone, Debug)]
pub struct VerifiedTx {
    pub id: TxId,
    pub signed: SignedTx,
    pub body: TxBody,
}

/// Decodes the body and computes the id; the signature is checked separately (in batches).
pub fn decode(chain_id: &str, signed: SignedTx) -> Result<VerifiedTx, TxError> {
    let body = TxBody::decode(&signed.body)?;
    let id = signed.id(chain_id);
    Ok(VerifiedTx { id, signed, body })
}

/// Checks one transaction's signature under the chain's one acceptance rule
/// (`crate::signature`).
pub fn verify_one(tx: &VerifiedTx) -> Result<(), TxError> {
    signature::verify(&tx.signed.signer, &tx.signed.signature, &tx.id.0)
}

/// Verifies many signatures at once, with the same answer for each as `verify_one`.
pub fn verify_batch(txs: &[VerifiedTx]) -> Vec<Result<(), TxError>> {
    verify_batch_cached(txs, &mut KeyCache::default())
}

/// `verify_batch` with each signer key's checks kept in `cache` between calls.
pub fn verify_batch_cached(txs: &[VerifiedTx], cache: &mut KeyCache) -> Vec<Result<(), TxError>> {
    let items: Vec<signature::Item<'_>> = txs
        .iter()
        .map(|tx| signature::Item {
            signer: &tx.signed.signer,
            signature: &tx.signed.signature,
            message: &tx.id.0,
        })
        .collect();
    signature::verify_batch(&items, cache)
}

pub(crate) mod sig_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            serde::Serialize::serialize(&serde_big_array(bytes), s)
        }
    }

    fn serde_big_array(bytes: &[u8; 64]) -> (&[u8; 32], &[u8; 32]) {
        let (a, b) = bytes.split_at(32);
        (a.try_into().expect("32"), b.try_into().expect("32"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let mut out = [0u8; 64];
        if d.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            hex::decode_to_slice(text.as_ref(), &mut out)
                .map_err(|_| serde::de::Error::custom("expected 128 hex digits for a signature"))?;
        } else {
            let (a, b) = <([u8; 32], [u8; 32])>::deserialize(d)?;
            out[..32].copy_from_slice(&a);
            out[32..].copy_from_slice(&b);
        }
        Ok(out)
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            hex::decode(text.as_ref()).map_err(|_| serde::de::Error::custom("expected hex bytes"))
        } else {
            <serde_bytes_vec::ByteBuf>::deserialize(d).map(|b| b.0)
        }
    }

    mod serde_bytes_vec {
        use serde::de::{Deserialize, Deserializer, Visitor};

        pub(crate) struct ByteBuf(pub(crate) Vec<u8>);

        impl<'de> Deserialize<'de> for ByteBuf {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteBuf, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v.to_vec()))
                    }
                    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }
}
