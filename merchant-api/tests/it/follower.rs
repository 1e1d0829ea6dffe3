//! The follower believes only blocks that link to the last one it read and carry the
//! producer's signature over their true hash and roots: a forged block (here served by
//! a stand-in for the node) stops it loudly, and the invoice the forgery "pays" stays open.

use std::time::Duration;

use ed25519_dalek::Signer as _;
use machi_api::BlockView;
use machi_ledger::{roots, Action, Block, BlockHeader, Hash32, Outcome, Reason, SigningKey, Yen};
use serde_json::{json, Value};

use crate::harness::{id, Town};
use crate::proxy::Fault;

/// How a block built to pay an open invoice is forged.
#[derive(Clone, Copy, Debug)]
enum Forgery {
    /// Nothing: signed by the chain's producer, linked and hashed right. The control.
    Honest,
    /// Signed by another key, which the header names as producer.
    NotTheProducer,
    /// Names the chain's producer, signed by another key.
    BadSignature,
    /// The producer's signature over a header whose tx_root is not the transactions'.
    StaleTxRoot,
    /// The producer's signature over a header whose outcome_root is not the outcomes'.
    StaleOutcomeRoot,
    /// The producer's signature, but prev_hash is not the last block's hash.
    BrokenLink,
    /// The hash the node states is not the header's.
    WrongHash,
}

async fn forged_block(town: &Town, shop: &str, invoice: &str, forgery: Forgery) -> BlockView {
    let head = town.node.head().await.unwrap();
    let prev = town.reading_as(&town.town).block(head.height).await.unwrap().to_block().unwrap();
    let pay = town.sign(
        &town.residents[0],
        Action::Pay { shop: shop.parse().unwrap(), amount: Yen(700), invoice: Some(invoice.to_string()) },
    );
    let ids = [pay.id(&town.chain_id)];
    let outcomes = vec![Outcome::Applied];
    let (tx_root, outcome_root) = roots(&ids, &outcomes);
    let producer = machi_node::read_key(&town.node_dir.join("keys/producer.key")).unwrap();
    let forger = machi_node::generate_key();
    let mut header = BlockHeader {
        chain_id: town.chain_id.clone(),
        height: prev.header.height + 1,
        prev_hash: prev.hash(),
        timestamp_ms: prev.header.timestamp_ms,
        tx_count: 1,
        tx_root,
        outcome_root,
        producer: id(&producer),
    };
    let mut signer: &SigningKey = &producer;
    match forgery {
        Forgery::Honest | Forgery::WrongHash => {}
        Forgery::NotTheProducer => {
            header.producer = id(&forger);
            signer = &forger;
        }
        Forgery::BadSignature => signer = &forger,
        Forgery::StaleTxRoot => header.tx_root = roots(&[], &[]).0,
        Forgery::StaleOutcomeRoot => {
            header.outcome_root = roots(&ids, &[Outcome::Rejected(Reason::InsufficientBalance)]).1
        }
        Forgery::BrokenLink => header.prev_hash = Hash32([7; 32]),
    }
    let signature = signer.sign(&header.hash().0).to_bytes();
    let mut view = BlockView::new(&Block { header, signature, txs: vec![pay], outcomes });
    if let Forgery::WrongHash = forgery {
        view.hash = Hash32([9; 32]);
    }
    view
}

async fn health(town: &Town) -> (u16, Value) {
    town.call("GET", "/v1/health", None, None).await
}

#[track_caller]
fn check_halted(forgery: Forgery, answer: &(u16, Value)) {
    assert_eq!((answer.0, answer.1["status"].as_str()), (503, Some("halted")), "{forgery:?}: {}", answer.1);
    assert!(answer.1["problem"].as_str().is_some_and(|p| !p.is_empty()), "{forgery:?}: {}", answer.1);
}

async fn check(forgery: Forgery) {
    let town = Town::start_behind_proxy().await;
    let shop = town.register_shop("山田商店", "local", "ヤマダ").await;
    let pos = town.token(&shop, "point_of_sale").await;
    let (_, invoice) = town.call("POST", "/v1/invoices", Some(&pos), Some(json!({"amount": 700}))).await;
    let invoice = invoice["id"].as_str().unwrap().to_string();
    let block = forged_block(&town, &shop, &invoice, forgery).await;
    town.proxy().set(Fault::ServeBlock(Box::new(block)));
    if let Forgery::Honest = forgery {
        town.invoice_when(&pos, &invoice, "paid").await;
        return;
    }
    // Wait for the follower to have read the forged block and stopped.
    let mut answer = health(&town).await;
    for _ in 0..200 {
        if answer.0 != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer = health(&town).await;
    }
    check_halted(forgery, &answer);
    let synced = answer.1["synced_height"].clone();
    let (_, seen) = town.call("GET", &format!("/v1/invoices/{invoice}"), Some(&pos), None).await;
    assert_eq!(seen["status"], "open", "{forgery:?}: the forged payment paid nothing");

    // The real chain goes on; the stopped follower reads nothing more.
    town.proxy().set(Fault::None);
    town.pay(0, &shop, 700, &invoice).await;
    let (_, seen) = town.call("GET", &format!("/v1/invoices/{invoice}"), Some(&pos), None).await;
    assert_eq!(seen["status"], "open", "{forgery:?}");
    let answer = health(&town).await;
    check_halted(forgery, &answer);
    assert_eq!(answer.1["synced_height"], synced, "{forgery:?}: no block read after the forged one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_blocks_stop_the_follower_and_pay_nothing() {
    for forgery in [
        Forgery::Honest,
        Forgery::NotTheProducer,
        Forgery::BadSignature,
        Forgery::StaleTxRoot,
        Forgery::StaleOutcomeRoot,
        Forgery::BrokenLink,
        Forgery::WrongHash,
    ] {
        check(forgery).await;
    }
}

/// The anchor is the town's own key: a node whose genesis another key signed is not
/// followed at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_whose_genesis_another_town_signed_is_refused() {
    let town = Town::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = machi_merchant::Config {
        data_dir: dir.path().to_path_buf(),
        node_url: town.node.base().to_string(),
        town: crate::harness::id(&machi_node::generate_key()),
        registrar_key: town.registrar.clone(),
        settler_key: town.settler.clone(),
        issuer_key: None,
        town_bank: None,
        clock: town.clock.clone(),
    };
    let error = machi_merchant::Merchant::open(config).await.err().expect("refused");
    let error = format!("{error:#}");
    assert!(error.contains("refusing to follow") && error.contains("not the town's"), "{error}");
}

/// The service holds only the town's delegated keys, and only ones the town registered
/// with that power and has not revoked: otherwise it does not start, and says what the
/// town must sign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_keys_must_be_registered_with_their_power() {
    let town = Town::start().await;
    let stranger = machi_node::generate_key();
    let open = |registrar: &machi_ledger::SigningKey, settler: &machi_ledger::SigningKey| {
        let dir = tempfile::tempdir().unwrap();
        let config = machi_merchant::Config {
            data_dir: dir.path().to_path_buf(),
            node_url: town.node.base().to_string(),
            town: crate::harness::id(&town.town),
            registrar_key: registrar.clone(),
            settler_key: settler.clone(),
            issuer_key: None,
            town_bank: None,
            clock: town.clock.clone(),
        };
        async move {
            let opened = machi_merchant::Merchant::open(config).await;
            drop(dir);
            opened.err().map(|e| format!("{e:#}"))
        }
    };
    let error = open(&stranger, &town.settler).await.expect("refused");
    assert!(error.contains("not registered on chain") && error.contains("register-delegate"), "{error}");
    let error = open(&town.settler, &town.settler).await.expect("refused");
    assert!(error.contains("registered as settler, not shop_registrar"), "{error}");
    let error = open(&town.town, &town.settler).await.expect("refused");
    assert!(error.contains("registered as town"), "{error}");
    town.submit(&town.town, machi_ledger::Action::Freeze { account: crate::harness::id(&town.settler) })
        .await;
    let error = open(&town.registrar, &town.settler).await.expect("refused");
    assert!(error.contains("froze (revoked) the settler key"), "{error}");
    // The service reads as its registrar: the node refuses a frozen registrar's read
    // session, and that is said the same way.
    town.submit(&town.town, machi_ledger::Action::Freeze { account: crate::harness::id(&town.registrar) })
        .await;
    let error = open(&town.registrar, &town.settler).await.expect("refused");
    assert!(error.contains("froze (revoked) the shop-registrar key"), "{error}");
}
