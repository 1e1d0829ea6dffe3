//! `cost`, the cost model: what each stage of a payment's path costs on this machine,
//! measured stage by stage in one process (JSON parse, decode + id, signature check,
//! apply, block encode, fsync), and the memory that resident accounts take.

use std::time::Instant;

use ed25519_dalek::SigningKey;
use machi_api::TxResultView;
use machi_ledger::{
    decode, verify_batch, AccountId, Action, ApplyAt, Hash32, IssueParams, Outcome, RateBp, ShopClass,
    SignedTx, State, TxBody, VerifiedTx, Yen,
};
use serde::Serialize;
use serde_json::json;

/// Flags of `cost`.
#[derive(clap::Args)]
pub(crate) struct CostArgs {
    /// Resident accounts to hold in memory for the memory figure.
    #[arg(long, default_value_t = 1_000_000)]
    memory_residents: u64,
    /// Transactions per block for the amortised fsync cost.
    #[arg(long, default_value_t = 512)]
    block_txs: usize,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: CostArgs) -> anyhow::Result<()> {
    let limits = crate::limits::measure().await?;
    let (fsync_us, block_txs) = (limits.fsync_4k_median_us, args.block_txs);
    let stages = tokio::task::spawn_blocking(move || stages(fsync_us, block_txs)).await?;
    let memory_residents = args.memory_residents;
    let memory = tokio::task::spawn_blocking(move || memory(memory_residents)).await?;
    let total: f64 = stages.iter().map(|s| s.micros_per_tx).sum();
    if args.json {
        let value =
            json!({ "limits": limits, "stages": stages, "total_micros_per_tx": total, "memory": memory });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    crate::limits::print(&limits);
    println!("cost of one payment, per stage (one core, µs):");
    for s in &stages {
        println!("  {:<48} {:>8.2}  ({:>4.1}%)", s.stage, s.micros_per_tx, 100.0 * s.micros_per_tx / total);
    }
    println!("  {:<48} {:>8.2}  → {:.0} tx/s per core", "total", total, 1e6 / total);
    println!(
        "memory: {} resident accounts add {:.0} MiB ({:.0} bytes each)",
        memory.resident_accounts,
        memory.rss_bytes_added as f64 / 1048576.0,
        memory.bytes_per_resident
    );
    Ok(())
}

const CHAIN: &str = "cost-town";
const T0: u64 = 1_799_074_800_000;
const DAY: u64 = 86_400_000;

#[derive(Debug, Serialize)]
struct Stage {
    stage: &'static str,
    /// Median over rounds, microseconds per transaction on one core.
    micros_per_tx: f64,
}

#[derive(Debug, Serialize)]
struct Memory {
    resident_accounts: u64,
    rss_bytes_added: u64,
    bytes_per_resident: f64,
}

fn id(key: &SigningKey) -> AccountId {
    AccountId::of(key)
}

/// A transaction as if verified, for stages after verification and for memory.
fn unsigned(signer: AccountId, nonce: u64, action: Action) -> VerifiedTx {
    let body = TxBody { chain_id: CHAIN.into(), created_ms: T0, ttl_ms: 60_000, nonce, action };
    let signed = SignedTx { signer, signature: [0; 64], body: body.encode() };
    VerifiedTx { id: signed.id(CHAIN), signed, body }
}

fn issue(total_sets: u32) -> IssueParams {
    IssueParams {
        id: 1,
        name: "cost".into(),
        price: Yen(10_000),
        common_per_set: Yen(6_250),
        local_per_set: Yen(6_250),
        total_sets,
        max_sets_per_resident: 1,
        workers_may_buy: false,
        sale_start_ms: T0,
        sale_end_ms: T0 + DAY,
        spend_until_ms: T0 + 30 * DAY,
        cash_out_deadline_ms: T0 + 60 * DAY,
        cash_out_fee: RateBp(0),
    }
}

/// A town with `residents` residents who each bought one set; returns state and next nonce.
fn town(residents: &[AccountId], shops: &[AccountId]) -> State {
    let (town, op) = (id(&SigningKey::from_bytes(&[1; 32])), id(&SigningKey::from_bytes(&[2; 32])));
    let mut state = State::new(CHAIN);
    let mut n = 0u64;
    let mut apply = |state: &mut State, signer, action| {
        n += 1;
        let outcome = state.apply(&unsigned(signer, n, action), ApplyAt { now_ms: T0, height: 1, index: 0 });
        assert_eq!(outcome, Ok(Outcome::Applied), "cost town setup");
    };
    apply(&mut state, town, Action::Genesis { town, producer: id(&SigningKey::from_bytes(&[3; 32])) });
    apply(&mut state, town, Action::RegisterOperator { operator: op, name: "op".into() });
    apply(&mut state, town, Action::CreateIssue { issue: issue(residents.len() as u32) });
    for shop in shops {
        apply(
            &mut state,
            town,
            Action::RegisterShop { shop: *shop, name: "shop".into(), class: ShopClass::Local },
        );
    }
    for (i, resident) in residents.iter().enumerate() {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
        apply(
            &mut state,
            op,
            Action::RegisterResident { resident: *resident, resident_hash: Hash32(hash), worker: false },
        );
        apply(
            &mut state,
            op,
            Action::SellSets { issue: 1, resident: *resident, sets: 1, cash_received: Yen(10_000) },
        );
    }
    state
}

fn per_tx(rounds: usize, n: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    crate::stats::median(&mut times)
}

/// Stages of a payment's path, each measured on its own over the same payments.
fn stages(fsync_us: f64, block_txs: usize) -> Vec<Stage> {
    let n = 4_096;
    let keys: Vec<SigningKey> = crate::town::keys(1_000);
    let residents: Vec<AccountId> = keys.iter().map(id).collect();
    let shops: Vec<AccountId> = crate::town::keys(40).iter().map(id).collect();
    let txs = signed_payments(n, &keys, &shops);
    let decoded: Vec<VerifiedTx> = txs.iter().map(|t| decode(CHAIN, t.clone()).expect("decodes")).collect();
    let base = town(&residents, &shops);
    let mut out = admission_stages(&txs, &decoded);
    out.push(Stage {
        stage: "apply (ledger rules, state update)",
        micros_per_tx: apply_cost(&base, &decoded),
    });
    out.extend(block_stages(&base, &decoded, block_txs));
    out.push(Stage {
        stage: "append + fdatasync, amortised over the block",
        micros_per_tx: fsync_us / block_txs as f64,
    });
    out
}

/// `n` payments from `keys` (round robin) to `shops`.
fn signed_payments(n: usize, keys: &[SigningKey], shops: &[AccountId]) -> Vec<SignedTx> {
    (0..n)
        .map(|i| {
            let body = TxBody {
                chain_id: CHAIN.into(),
                created_ms: T0,
                ttl_ms: 60_000,
                nonce: i as u64,
                action: Action::Pay {
                    shop: shops[i % shops.len()],
                    amount: Yen(1 + i as u64 % 100),
                    invoice: None,
                },
            };
            SignedTx::sign(CHAIN, &keys[i % keys.len()], &body)
        })
        .collect()
}

/// What admission costs before the rules: parsing, decoding and the signature check.
fn admission_stages(txs: &[SignedTx], decoded: &[VerifiedTx]) -> Vec<Stage> {
    let n = txs.len();
    let json: Vec<Vec<u8>> = txs.iter().map(|t| serde_json::to_vec(t).expect("json")).collect();
    vec![
        Stage {
            stage: "parse JSON request",
            micros_per_tx: per_tx(5, n, || {
                for j in &json {
                    std::hint::black_box(serde_json::from_slice::<SignedTx>(j).expect("parses"));
                }
            }),
        },
        Stage {
            stage: "decode body + canonical check + tx id",
            micros_per_tx: per_tx(5, n, || {
                for t in txs {
                    std::hint::black_box(decode(CHAIN, t.clone()).expect("decodes"));
                }
            }),
        },
        Stage {
            stage: "verify signature (batches of 512, one core)",
            micros_per_tx: per_tx(3, n, || {
                for chunk in decoded.chunks(512) {
                    std::hint::black_box(verify_batch(chunk));
                }
            }),
        },
    ]
}

/// Applying the payments to a fresh copy of the town, median of five rounds.
fn apply_cost(base: &State, decoded: &[VerifiedTx]) -> f64 {
    let mut times = Vec::new();
    for _ in 0..5 {
        let mut state = base.clone();
        let started = Instant::now();
        for (i, tx) in decoded.iter().enumerate() {
            let _ = state.apply(tx, ApplyAt { now_ms: T0, height: 2, index: i as u32 });
        }
        times.push(started.elapsed().as_secs_f64() * 1e6 / decoded.len() as f64);
    }
    crate::stats::median(&mut times)
}

/// Sealing a block of `block_txs` payments, and the JSON answer that tells of them.
fn block_stages(base: &State, decoded: &[VerifiedTx], block_txs: usize) -> Vec<Stage> {
    let producer = SigningKey::from_bytes(&[9; 32]);
    let mut state = base.clone();
    let genesis_header = machi_ledger::BlockHeader {
        chain_id: CHAIN.into(),
        height: 1,
        prev_hash: Hash32::default(),
        timestamp_ms: T0,
        tx_count: 0,
        tx_root: Hash32::default(),
        outcome_root: Hash32::default(),
        producer: id(&producer),
    };
    let batch: Vec<VerifiedTx> = decoded.iter().take(block_txs).cloned().collect();
    let (block, results) = machi_ledger::produce(&mut state, &genesis_header, T0, batch, &producer);
    let sealing = Stage {
        stage: "block: Merkle roots + seal + encode (per tx)",
        micros_per_tx: per_tx(20, block.txs.len(), || {
            let ids = block.tx_ids();
            std::hint::black_box(machi_ledger::roots(&ids, &block.outcomes));
            std::hint::black_box(block.encode());
        }),
    };
    let views: Vec<TxResultView> = block
        .tx_ids()
        .iter()
        .zip(&results)
        .map(|(id, r)| TxResultView::committed(*id, r.expect("applied"), 2, block.hash()))
        .collect();
    let answer = Stage {
        stage: "serialize JSON answer",
        micros_per_tx: per_tx(20, views.len(), || {
            std::hint::black_box(serde_json::to_vec(&views).expect("json"));
        }),
    };
    vec![sealing, answer]
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resident accounts (registered, one set bought: two lots, a purchase count, the
/// identity hash, and their two transactions remembered for replay protection).
fn memory(residents: u64) -> Memory {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let keys: Vec<AccountId> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|c| {
                scope.spawn(move || {
                    (c * residents / cores..(c + 1) * residents / cores)
                        .map(|i| {
                            let mut seed = [7u8; 32];
                            seed[..8].copy_from_slice(&i.to_le_bytes());
                            id(&SigningKey::from_bytes(&seed))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("key thread")).collect()
    });
    let before = rss_bytes();
    let state = town(&keys, &[]);
    let after = rss_bytes();
    std::hint::black_box(&state);
    let added = after.saturating_sub(before);
    Memory {
        resident_accounts: residents,
        rss_bytes_added: added,
        bytes_per_resident: added as f64 / residents as f64,
    }
}
