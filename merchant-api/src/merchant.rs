//! `Merchant`: the service's state, how it opens (node reached, delegated keys checked,
//! shops' keys unsealed, the follower's starting block), and the plumbing every
//! operation shares: signing, submitting to the node, waiting for the chain follower to
//! have read the block. The operations live beside it: `shops`, `tokens`, `auth`,
//! `delegates`, `invoices`, `money`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use machi_api::{TxCode, TxResultView, TxStatus};
use machi_client::{Client, ClientError};
use machi_host::{ApiError, Clock};
use machi_ledger::{AccountId, Action, Hash32, IssueParams, SignedTx, SigningKey};
use tokio::sync::{broadcast, watch, Notify};

use crate::bank::Banks;
use crate::delegates::check_delegate;
use crate::model::Shop;
use crate::model::{ShopEvent, ShopRecord, TokenRecord};
use crate::secrets::Sealer;
use crate::store::{read_all, AdminTokens, Store};
use crate::trust::Tip;
use crate::zengin::Originator;

/// How long an operation waits for the follower to read its block before answering.
const SYNC_WAIT: Duration = Duration::from_secs(20);
pub(crate) const NAME_CHARS_MAX: usize = machi_ledger::NAME_CHARS_MAX;
const EVENTS_BUFFER: usize = 1_024;
/// Why the service reads the chain, signed into its read sessions: the node writes it
/// in its access log beside every read the service makes under the town's everything
/// scope (docs/PRIVACY.md).
pub const READ_PURPOSE: &str = "machi-merchant: following the chain to match shops' payments";

/// How the service is started.
pub struct Config {
    pub data_dir: PathBuf,
    /// The node's base URL, or a chain's replicas separated by commas.
    pub node_url: String,
    /// The town's account: the genesis block the node serves must be signed by it.
    pub town: AccountId,
    /// The town's delegated shop registrar (docs/RULES.md): shops are registered with it,
    /// and their keys are sealed under it. It can do nothing else on chain.
    pub registrar_key: SigningKey,
    /// The town's delegated settler: settlements are recorded with it, and nothing else.
    pub settler_key: SigningKey,
    /// The town's delegated issuer, if the town gave the service one: the town office's
    /// form creates issues with it. Without it the form only checks an issue and gives
    /// the file and command for the town's own key.
    pub issuer_key: Option<SigningKey>,
    /// The town's own bank account, for settlement files; without it settlements are
    /// refused with `town_bank_not_configured`.
    pub town_bank: Option<Originator>,
    pub clock: Arc<dyn Clock>,
}

/// How the service meets the network.
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// Reverse proxies in front of the service (`--trusted-proxy`): only from these peers
    /// is the client's address taken from `X-Forwarded-For`.
    pub trusted_proxies: Vec<IpAddr>,
    /// Mark the pages' cookies `Secure` whatever the request says (`--secure-cookies`:
    /// the service is reached over TLS only). Without it they are `Secure` when a trusted
    /// proxy says `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
}

pub struct Merchant {
    pub(crate) store: Store,
    pub(crate) node: Client,
    pub(crate) chain_id: String,
    pub(crate) registrar: SigningKey,
    pub(crate) settler: SigningKey,
    pub(crate) issuer: Option<SigningKey>,
    pub(crate) sealer: Sealer,
    pub(crate) banks: Banks,
    pub(crate) town_bank: Option<Originator>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) shops: RwLock<HashMap<AccountId, Arc<Shop>>>,
    pub(crate) tokens: RwLock<HashMap<Hash32, TokenRecord>>,
    pub(crate) admin_tokens: AdminTokens,
    issues: Mutex<HashMap<u32, IssueParams>>,
    pub(crate) events: broadcast::Sender<ShopEvent>,
    /// The block producer that genesis names: every block must carry its signature.
    pub(crate) producer: AccountId,
    /// The last block the follower has read.
    pub(crate) tip: Mutex<Tip>,
    /// Height of the last block the follower has read.
    pub(crate) synced: watch::Sender<u64>,
    /// Why the follower stopped: the node served a block that failed its checks.
    halted: Mutex<Option<String>>,
    pub(crate) wake: Notify,
    /// Becomes true when the server starts shutting down: event streams end then.
    pub(crate) closing: watch::Sender<bool>,
    /// Serialises check-then-create of idempotent requests and pay codes.
    pub(crate) create_lock: Mutex<()>,
    pub(crate) settle_lock: tokio::sync::Mutex<()>,
    /// Held briefly around each change of a settlement (never across a call to the node).
    pub(crate) settlements: tokio::sync::Mutex<crate::settlements::Settlements>,
    /// One request at a time per Idempotency-Key of a refund or cash-out.
    pub(crate) key_locks: crate::key_locks::KeyLocks,
    pub(crate) pay_limiter: Mutex<crate::limiter::Limiter>,
    /// Pairing attempts per client, as pay-code look-ups are limited.
    pub(crate) pair_limiter: Mutex<crate::limiter::Limiter>,
    pub(crate) network: Network,
}

impl Merchant {
    /// Opens the data folder and reaches the node (waiting up to a minute for it).
    pub async fn open(config: Config) -> anyhow::Result<Arc<Merchant>> {
        Merchant::open_with(config, Network::default()).await
    }

    /// `open`, behind the given network.
    pub async fn open_with(config: Config, network: Network) -> anyhow::Result<Arc<Merchant>> {
        let store = Store::open(&config.data_dir)?;
        // The node is waited for anonymously (health is public). Every later read (genesis,
        // delegates, blocks, shops' balances, issues) is made as the town's delegated shop
        // registrar: a service of the town, which reads like the town. The shops' own keys
        // never read: a shop sees its data through its tokens.
        let anonymous = Client::new(&config.node_url);
        let chain_id = wait_for_node(&anonymous).await?;
        let node = anonymous.reading_as(config.registrar_key.clone(), READ_PURPOSE);
        check_delegate(&node, &config.registrar_key, "shop_registrar", "shop-registrar").await?;
        check_delegate(&node, &config.settler_key, "settler", "settler").await?;
        if let Some(issuer) = &config.issuer_key {
            check_delegate(&node, issuer, "issuer", "issuer").await?;
        }
        let sealer = Sealer::new(&config.registrar_key);
        let mut shops = HashMap::new();
        for record in read_all::<ShopRecord>(&store.shops_dir())? {
            let key = sealer.open(&record.account, &record.key_nonce, &record.key_sealed)?;
            shops.insert(record.account, Arc::new(Shop { record, key }));
        }
        let tokens = read_all::<TokenRecord>(&store.tokens_dir())?.into_iter().map(|t| (t.hash, t)).collect();
        let (genesis, producer) = crate::trust::genesis(&node, &chain_id, &config.town)
            .await
            .context("refusing to follow the node's chain")?;
        let tip = start_tip(&store, &node, genesis, &producer).await?;
        let synced = tip.height;
        let settlements = crate::settlements::Settlements::load(
            &store.settlements_dir(),
            store.meta_u64("settlement_seq"),
        )?;
        let merchant = Arc::new(Merchant {
            store,
            node,
            chain_id,
            registrar: config.registrar_key,
            settler: config.settler_key,
            issuer: config.issuer_key,
            sealer,
            banks: Banks::load(),
            town_bank: config.town_bank,
            clock: config.clock,
            shops: RwLock::new(shops),
            tokens: RwLock::new(tokens),
            admin_tokens: AdminTokens::new(crate::store::admin_tokens_path(&config.data_dir)),
            issues: Mutex::new(HashMap::new()),
            events: broadcast::channel(EVENTS_BUFFER).0,
            producer,
            tip: Mutex::new(tip),
            synced: watch::channel(synced).0,
            halted: Mutex::new(None),
            wake: Notify::new(),
            closing: watch::Sender::new(false),
            create_lock: Mutex::new(()),
            settle_lock: tokio::sync::Mutex::new(()),
            settlements: tokio::sync::Mutex::new(settlements),
            key_locks: Default::default(),
            pay_limiter: Mutex::new(crate::limiter::Limiter::default()),
            pair_limiter: Mutex::new(crate::limiter::Limiter::default()),
            network,
        });
        merchant.reconcile_shops().await;
        Ok(merchant)
    }

    pub fn data_dir(&self) -> &Path {
        &self.store.dir
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Signs `action` with `key` as created now by the service's clock, with the
    /// client's time-to-live and a random nonce.
    pub(crate) fn sign(&self, key: &SigningKey, action: Action) -> SignedTx {
        machi_client::sign_at(&self.chain_id, key, action, self.now_ms())
    }

    /// Signs a shop registration with the town's delegated registrar.
    pub(crate) fn sign_as_registrar(&self, action: Action) -> SignedTx {
        debug_assert!(matches!(action, Action::RegisterShop { .. }));
        self.sign(&self.registrar, action)
    }

    /// Signs a settlement with the town's delegated settler.
    pub(crate) fn sign_as_settler(&self, action: Action) -> SignedTx {
        debug_assert!(matches!(action, Action::SettleCashOuts { .. }));
        self.sign(&self.settler, action)
    }

    /// Signs an issue with the town's delegated issuer, if the service has one.
    pub(crate) fn sign_as_issuer(&self, action: Action) -> Option<SignedTx> {
        debug_assert!(matches!(action, Action::CreateIssue { .. }));
        self.issuer.as_ref().map(|key| self.sign(key, action))
    }

    pub(crate) fn shop(&self, id: &AccountId) -> Option<Arc<Shop>> {
        self.shops.read().expect("shops lock").get(id).cloned()
    }

    /// Submits and turns every outcome other than "applied" into the client's error:
    /// 422 with the ledger's reason code when the chain rejected or refused it, 503
    /// when the node could not be reached.
    pub(crate) async fn submit_applied(&self, tx: &SignedTx) -> Result<TxResultView, ApiError> {
        let result = self.node.submit(tx).await.map_err(node_error)?;
        match result.status {
            TxStatus::Applied => Ok(result),
            TxStatus::Rejected | TxStatus::Refused => {
                let code = result.reason.map_or("refused", TxCode::name);
                let message = result.message.clone().unwrap_or_else(|| "the ledger did not accept it".into());
                Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message))
            }
        }
    }

    /// Waits until the follower has read block `height`, so what the caller reads next
    /// includes it.
    pub(crate) async fn wait_synced(&self, height: u64) -> Result<(), ApiError> {
        self.wake.notify_one();
        let mut rx = self.synced.subscribe();
        let reached = rx.wait_for(|h| *h >= height || self.halted().is_some());
        let seen = matches!(tokio::time::timeout(SYNC_WAIT, reached).await, Ok(Ok(_)));
        if let Some(problem) = self.halted() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_not_trusted",
                format!(
                    "committed at height {height}, but the service has stopped reading the chain: {problem}"
                ),
            ));
        }
        match seen {
            true => Ok(()),
            false => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_yet_seen",
                format!(
                    "committed at height {height}, but not yet read back from the chain; look again shortly"
                ),
            )),
        }
    }

    pub(crate) fn tip(&self) -> Tip {
        *self.tip.lock().expect("tip lock")
    }

    /// Why the follower stopped, if it did.
    pub(crate) fn halted(&self) -> Option<String> {
        self.halted.lock().expect("halted lock").clone()
    }

    /// Stops believing the node: called by the follower with the block that failed.
    pub(crate) fn halt(&self, untrusted: &crate::trust::Untrusted) {
        tracing::error!(
            "the node served a block that fails its checks ({untrusted}); the follower has stopped \
             and reads no more blocks: nothing more is paid, refunded or settled here until the \
             node's chain is sorted out and the service restarted"
        );
        *self.halted.lock().expect("halted lock") = Some(untrusted.to_string());
        // Wake whoever waits for the follower, so they hear it now.
        self.synced.send_modify(|_| {});
    }

    pub(crate) async fn issue_params(&self, id: u32) -> Result<IssueParams, ApiError> {
        if let Some(params) = self.issues.lock().expect("issues lock").get(&id) {
            return Ok(params.clone());
        }
        let view = self.node.issue(id).await.map_err(|e| match &e {
            ClientError::Api { status: 404, .. } => ApiError::not_found("issue"),
            _ => node_error(e),
        })?;
        self.issues.lock().expect("issues lock").insert(id, view.params.clone());
        Ok(view.params)
    }
}

/// The node did not give an answer: 503, or its own error passed on.
pub(crate) fn node_error(error: ClientError) -> ApiError {
    match error {
        ClientError::Api { status, code, message } if status < 500 => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, &code, message)
        }
        other => {
            tracing::warn!("node: {other}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "node_unavailable",
                "the ledger node could not be reached; try again",
            )
        }
    }
}

/// Where the follower starts: genesis, or the block it read last. A folder that kept
/// only the height (no hash) has that block checked by its producer signature instead of
/// its link; a folder that followed another chain is refused.
async fn start_tip(store: &Store, node: &Client, genesis: Tip, producer: &AccountId) -> anyhow::Result<Tip> {
    let kept = store.meta.get("genesis_hash")?;
    anyhow::ensure!(
        kept.as_deref().is_none_or(|h| h == genesis.hash.0),
        "the node serves a chain whose genesis is not the one {} follows",
        store.dir.display()
    );
    store.meta.insert("genesis_hash", &genesis.hash.0)?;
    let height = store.meta_u64("synced_height");
    if height == 0 {
        return Ok(genesis);
    }
    if let Some(hash) = store.meta.get("synced_hash")? {
        let hash = Hash32(hash.as_ref().try_into().context("synced_hash is 32 bytes")?);
        return Ok(Tip { height, hash, timestamp_ms: store.meta_u64("synced_ms") });
    }
    let view = node.block(height).await?;
    let block = view.to_block().map_err(|e| anyhow::anyhow!("block {height}: {e}"))?;
    anyhow::ensure!(
        block.header.producer == *producer && machi_ledger::verify_producer(&block).is_ok(),
        "block {height} does not carry the producer's signature"
    );
    Ok(Tip::of(&block))
}

async fn wait_for_node(node: &Client) -> anyhow::Result<String> {
    let mut last = None;
    for _ in 0..120 {
        match node.health().await {
            Ok(health) => return Ok(health.chain_id),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last.expect("tried at least once")).with_context(|| format!("reaching the node at {}", node.base()))
}
