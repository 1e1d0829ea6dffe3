//! proptest strategies for the ledger's types: any body, transaction and block, valid
//! or not (the formats do not care). The properties of the formats use them here, and
//! machi-api's export properties include this file.

use machi_ledger::{
    AccountId, Action, Block, BlockHeader, Delegation, Hash32, IssueParams, Outcome, RateBp, Reason,
    ShopClass, SignedTx, TxBody, TxId, Yen,
};
use proptest::prelude::*;

pub(crate) fn account() -> impl Strategy<Value = AccountId> {
    any::<[u8; 32]>().prop_map(AccountId)
}

pub(crate) fn hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}

/// Any text, Japanese included, mostly short.
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => "\\PC{0,12}", 1 => "\\PC{0,80}"]
}

pub(crate) fn issue() -> impl Strategy<Value = IssueParams> {
    let money = (any::<u64>(), any::<u64>(), any::<u64>());
    let times = (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>());
    (any::<u32>(), text(), money, any::<u32>(), any::<u32>(), any::<bool>(), times, any::<u32>()).prop_map(
        |(id, name, money, total_sets, max_sets_per_resident, workers_may_buy, times, fee)| IssueParams {
            id,
            name,
            price: Yen(money.0),
            common_per_set: Yen(money.1),
            local_per_set: Yen(money.2),
            total_sets,
            max_sets_per_resident,
            workers_may_buy,
            sale_start_ms: times.0,
            sale_end_ms: times.1,
            spend_until_ms: times.2,
            cash_out_deadline_ms: times.3,
            cash_out_fee: RateBp(fee),
        },
    )
}

/// Every kind of action, with any field values (valid or not: the format does not care).
pub(crate) fn action() -> impl Strategy<Value = Action> {
    let class = prop_oneof![Just(ShopClass::Large), Just(ShopClass::Local)];
    let delegation = prop_oneof![
        Just(Delegation::ShopRegistrar),
        Just(Delegation::Settler),
        Just(Delegation::LotteryParty),
        Just(Delegation::Issuer),
        Just(Delegation::Auditor)
    ];
    let tx_id = any::<[u8; 32]>().prop_map(TxId);
    prop_oneof![
        (account(), account()).prop_map(|(town, producer)| Action::Genesis { town, producer }),
        (account(), text()).prop_map(|(operator, name)| Action::RegisterOperator { operator, name }),
        (account(), text(), class).prop_map(|(shop, name, class)| Action::RegisterShop { shop, name, class }),
        (account(), hash(), any::<bool>()).prop_map(|(resident, resident_hash, worker)| {
            Action::RegisterResident { resident, resident_hash, worker }
        }),
        issue().prop_map(|issue| Action::CreateIssue { issue }),
        (any::<u32>(), account(), any::<u32>(), any::<u64>()).prop_map(|(issue, resident, sets, cash)| {
            Action::SellSets { issue, resident, sets, cash_received: Yen(cash) }
        }),
        (account(), any::<u64>(), proptest::option::of(text()))
            .prop_map(|(shop, amount, invoice)| Action::Pay { shop, amount: Yen(amount), invoice }),
        (tx_id.clone(), any::<u64>())
            .prop_map(|(payment, amount)| Action::Refund { payment, amount: Yen(amount) }),
        (any::<u32>(), any::<u64>())
            .prop_map(|(issue, amount)| Action::RequestCashOut { issue, amount: Yen(amount) }),
        (prop::collection::vec(tx_id, 0..8), text(), hash()).prop_map(
            |(cash_outs, transfer_date, file_sha256)| {
                Action::SettleCashOuts { cash_outs, transfer_date, file_sha256 }
            }
        ),
        any::<u32>().prop_map(|issue| Action::ExpireIssue { issue }),
        (account(), account()).prop_map(|(old, new)| Action::ReplaceKey { old, new }),
        account().prop_map(|account| Action::Freeze { account }),
        account().prop_map(|account| Action::Unfreeze { account }),
        (account(), text(), delegation).prop_map(|(delegate, name, delegation)| Action::RegisterDelegate {
            delegate,
            name,
            delegation
        }),
        (any::<u32>(), prop::collection::vec(account(), 0..4), any::<[u64; 6]>()).prop_map(
            |(issue, parties, t)| Action::SetLottery {
                issue,
                lottery: machi_ledger::lottery::LotteryParams {
                    parties,
                    commit_deadline_ms: t[0],
                    apply_start_ms: t[1],
                    apply_end_ms: t[2],
                    reveal_end_ms: t[3],
                    purchase_end_ms: t[4],
                    waiting_end_ms: t[5],
                },
            }
        ),
        (any::<u32>(), hash())
            .prop_map(|(issue, commitment)| Action::CommitLotterySecret { issue, commitment }),
        (any::<u32>(), account(), any::<u32>()).prop_map(|(issue, resident, sets)| Action::ApplyLottery {
            issue,
            resident,
            sets
        }),
        (any::<u32>(), hash()).prop_map(|(issue, secret)| Action::RevealLotterySecret { issue, secret }),
        any::<u32>().prop_map(|issue| Action::DrawLottery { issue }),
    ]
}

pub(crate) fn body() -> impl Strategy<Value = TxBody> {
    (text(), any::<u64>(), any::<u32>(), any::<u64>(), action()).prop_map(
        |(chain_id, created_ms, ttl_ms, nonce, action)| TxBody {
            chain_id,
            created_ms,
            ttl_ms,
            nonce,
            action,
        },
    )
}

pub(crate) fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Applied),
        prop::sample::select(Reason::ALL.to_vec()).prop_map(Outcome::Rejected)
    ]
}

/// A transaction as stored in a block: any signer and signature, and a body that is
/// mostly a real encoding and sometimes any bytes.
pub(crate) fn signed_tx() -> impl Strategy<Value = SignedTx> {
    let bytes =
        prop_oneof![3 => body().prop_map(|b| b.encode()), 1 => prop::collection::vec(any::<u8>(), 0..64)];
    (account(), any::<[u8; 32]>(), any::<[u8; 32]>(), bytes).prop_map(|(signer, a, b, body)| {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&a);
        signature[32..].copy_from_slice(&b);
        SignedTx { signer, signature, body }
    })
}

/// Any block whose header counts its transactions, with a valid chain id.
pub(crate) fn block() -> impl Strategy<Value = Block> {
    let txs = prop::collection::vec((signed_tx(), outcome()), 0..6);
    let header = ("[a-zA-Z0-9._-]{1,64}", any::<u64>(), hash(), any::<u64>(), hash(), hash(), account());
    (header, any::<[u8; 32]>(), any::<[u8; 32]>(), txs).prop_map(|(h, a, b, txs)| {
        let (chain_id, height, prev_hash, timestamp_ms, tx_root, outcome_root, producer) = h;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&a);
        signature[32..].copy_from_slice(&b);
        let (txs, outcomes): (Vec<SignedTx>, Vec<Outcome>) = txs.into_iter().unzip();
        let header = BlockHeader {
            chain_id,
            height,
            prev_hash,
            timestamp_ms,
            tx_count: txs.len() as u32,
            tx_root,
            outcome_root,
            producer,
        };
        Block { header, signature, txs, outcomes }
    })
}
