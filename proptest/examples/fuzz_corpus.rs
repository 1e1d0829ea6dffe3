//! Writes the fuzz targets' seed corpus from real transactions:
//! `cargo run -p machi-proptest --example fuzz_corpus -- fuzz/corpus`.

use std::path::Path;

use machi_api::BlockView;
use machi_ledger::{
    decode, genesis, produce, AccountId, Action, Hash32, IssueParams, RateBp, ShopClass, SignedTx,
    SigningKey, State, TxBody, TxId, Yen,
};

const T0: u64 = 1_799_074_800_000;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

fn id(i: u8) -> AccountId {
    AccountId::of(&key(i))
}

fn actions() -> Vec<(u8, Action)> {
    let issue = IssueParams {
        id: 1,
        name: "第1回".into(),
        price: Yen(10_000),
        common_per_set: Yen(6_250),
        local_per_set: Yen(6_250),
        total_sets: 50,
        max_sets_per_resident: 3,
        workers_may_buy: false,
        sale_start_ms: T0,
        sale_end_ms: T0 + 86_400_000,
        spend_until_ms: T0 + 5 * 86_400_000,
        cash_out_deadline_ms: T0 + 10 * 86_400_000,
        cash_out_fee: RateBp(75),
    };
    vec![
        (0, Action::RegisterOperator { operator: id(1), name: "op".into() }),
        (0, Action::RegisterShop { shop: id(3), name: "local".into(), class: ShopClass::Local }),
        (0, Action::CreateIssue { issue }),
        (1, Action::RegisterResident { resident: id(4), resident_hash: Hash32([4; 32]), worker: false }),
        (1, Action::SellSets { issue: 1, resident: id(4), sets: 2, cash_received: Yen(20_000) }),
        (4, Action::Pay { shop: id(3), amount: Yen(7_000), invoice: Some("INV-1".into()) }),
        (3, Action::Refund { payment: TxId([1; 32]), amount: Yen(100) }),
        (3, Action::RequestCashOut { issue: 1, amount: Yen(5_000) }),
        (
            0,
            Action::SettleCashOuts {
                cash_outs: vec![TxId([2; 32])],
                transfer_date: "2027-02-01".into(),
                file_sha256: Hash32([3; 32]),
            },
        ),
        (0, Action::ExpireIssue { issue: 1 }),
        (1, Action::ReplaceKey { old: id(4), new: id(6) }),
        (1, Action::Freeze { account: id(4) }),
        (1, Action::Unfreeze { account: id(4) }),
    ]
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).expect("corpus folder");
    std::fs::write(dir.join(name), bytes).expect("corpus file");
}

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into());
    let out = Path::new(&out);
    let chain = "fuzz-town";
    let mut signed = Vec::new();
    let mut sequence = Vec::new();
    for (i, (signer, action)) in actions().into_iter().enumerate() {
        let body = TxBody {
            chain_id: chain.into(),
            created_ms: T0,
            ttl_ms: 60_000,
            nonce: i as u64,
            action: action.clone(),
        };
        write(out, "tx_decode", &format!("{i:02}-{}", action.kind_name()), &body.encode());
        let tx = SignedTx::sign(chain, &key(signer), &body);
        write(
            out,
            "api_json",
            &format!("{i:02}-{}.json", action.kind_name()),
            &serde_json::to_vec(&tx).unwrap(),
        );
        signed.push(tx);
        sequence.extend_from_slice(&[signer, (i % 3) as u8]);
        sequence.extend_from_slice(&postcard::to_allocvec(&action).unwrap());
    }
    write(out, "api_json", "batch.json", &serde_json::to_vec(&signed).unwrap());
    write(out, "apply", "sale-day", &sequence);
    let mut state = State::new(chain);
    let g = TxBody {
        chain_id: chain.into(),
        created_ms: T0,
        ttl_ms: 60_000,
        nonce: 99,
        action: Action::Genesis { town: id(0), producer: id(9) },
    };
    let g = decode(chain, SignedTx::sign(chain, &key(0), &g)).unwrap();
    let block0 = genesis(&mut state, g, T0, &key(9));
    let txs: Vec<_> = signed.into_iter().map(|t| decode(chain, t).unwrap()).collect();
    let (block1, _) = produce(&mut state, &block0.header, T0 + 1, txs, &key(9));
    write(out, "api_json", "block.json", &serde_json::to_vec(&BlockView::new(&block1)).unwrap());
    write(out, "tx_decode", "block-record", &block1.encode());
    println!("wrote the seed corpus to {}", out.display());
}
