//! What every command and the kiosk share: the clients, the keystore, the language,
//! failures with their exit codes, and sending a transaction so that it commits at most
//! once and its outcome is never guessed.

use machi_api::{TxResultView, TxStatus};
use machi_client::{sign, Client, ClientError};
use machi_ledger::{Action, SigningKey, TxBody};
use serde_json::{json, Value};

use crate::keystore::{CardNumber, Keystore, KeystoreError, Wallet};
use crate::pending::{Pending, PendingStore};
use crate::text::{explain, t};
use crate::Lang;

pub(crate) const EXIT_USER: i32 = 2;
pub(crate) const EXIT_REFUSED: i32 = 3;
pub(crate) const EXIT_UNREACHABLE: i32 = 4;
/// The transaction was sent but no answer said what became of it: it may have committed.
pub(crate) const EXIT_UNKNOWN: i32 = 5;
/// Tries after a first attempt that got no answer (each after a growing pause).
pub(crate) const SETTLE_ATTEMPTS: u32 = 6;

/// Why a command did not do what was asked, with the exit code that says so.
pub(crate) struct Failure {
    pub(crate) code: i32,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    /// Fields for `--json` beside `error` (e.g. `status` and `tx_id` of an unknown outcome).
    pub(crate) details: Value,
}

pub(crate) fn user(message: impl Into<String>) -> Failure {
    Failure { code: EXIT_USER, kind: "user_error", message: message.into(), details: Value::Null }
}

impl From<KeystoreError> for Failure {
    fn from(e: KeystoreError) -> Failure {
        match e {
            KeystoreError::Io(_) | KeystoreError::Tampered(_) => {
                Failure { code: 1, kind: "keystore", message: e.to_string(), details: Value::Null }
            }
            _ => user(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::from(KeystoreError::Io(e))
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let (code, kind) = match &e {
            ClientError::Unreachable(..) | ClientError::NoAnswer(..) => (EXIT_UNREACHABLE, "unreachable"),
            ClientError::Api { status, code, .. } if (400..500).contains(status) => {
                (EXIT_REFUSED, read_refusal(code).unwrap_or("refused"))
            }
            _ => (1, "node_error"),
        };
        Failure { code, kind, message: e.to_string(), details: Value::Null }
    }
}

/// The kinds of a read the node did not answer for this key (docs/PRIVACY.md): what
/// `report` and the kiosk put in plain words.
fn read_refusal(code: &str) -> Option<&'static str> {
    Some(match code {
        // What this key may not see is answered exactly as what does not exist.
        "not_found" => "not_found",
        "read_auth_required" | "not_allowed" => "not_allowed",
        "not_registered" => "not_registered",
        "key_replaced" => "key_replaced",
        "account_frozen" => "account_frozen",
        "purpose_required" | "purpose_too_long" => "purpose",
        _ => return None,
    })
}

/// The plain words for a read the node did not answer (`read_refusal`), in `lang`.
pub(crate) fn read_words(lang: Lang, kind: &str) -> Option<&'static str> {
    Some(match kind {
        "not_found" => t(
            lang,
            "見つかりません（ないか、このカードでは見られないものです）",
            "not found (it does not exist, or it is not this card's to read)",
        ),
        "not_allowed" => t(lang, "このカードでは見られません", "this card may not read that"),
        "not_registered" => t(
            lang,
            "このカードの鍵はチェーンに登録されていません",
            "this card's key is not registered on the chain",
        ),
        "key_replaced" => t(
            lang,
            "このカードは再発行されて使えなくなりました。新しいカードをお使いください",
            "this card was replaced; use the new card",
        ),
        "account_frozen" => t(lang, "このカードは凍結されています", "this card is frozen"),
        "purpose" => t(
            lang,
            "読む理由（--why）は4文字以上200バイト以内で書いてください",
            "say why you read (--why): 4 characters to 200 bytes",
        ),
        _ => return None,
    })
}

pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) merchant: Client,
    pub(crate) store: Keystore,
    pub(crate) pending: PendingStore,
    pub(crate) lang: Lang,
    pub(crate) json: bool,
}

impl Ctx {
    pub(crate) fn t<'a>(&self, ja: &'a str, en: &'a str) -> &'a str {
        t(self.lang, ja, en)
    }

    /// The node's client reading as `key` (docs/PRIVACY.md: a resident reads their own
    /// account, an operator the counters' cash, the town and auditors everything), with
    /// `purpose`: why, as the node's access log records it.
    pub(crate) fn reading_as(&self, key: &SigningKey, purpose: &str) -> Client {
        self.client.reading_as(key.clone(), purpose)
    }

    pub(crate) fn unlock(&self, card: &str, pin: &str) -> Result<Wallet, Failure> {
        let card = CardNumber::parse(card)?;
        Ok(self.store.unlock(&card, pin, machi_client::now_ms())?)
    }

    pub(crate) fn print(&self, value: Value, text: &str) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&value).expect("json"));
        } else {
            println!("{text}");
        }
    }

    /// Signs `action` and keeps the signed transaction in the pending folder before
    /// anything is sent.
    pub(crate) async fn prepare(
        &self,
        key: &SigningKey,
        action: Action,
        purpose: Option<String>,
        new_card: Option<&CardNumber>,
    ) -> Result<Pending, Failure> {
        let chain_id = self.client.head().await?.chain_id;
        let tx = sign(&chain_id, key, action);
        let pending = Pending {
            tx_id: tx.id(&chain_id),
            chain_id,
            tx,
            purpose,
            new_card: new_card.map(|c| c.digits().to_string()),
        };
        self.pending.save(&pending)?;
        Ok(pending)
    }

    /// Signs, keeps, sends and waits for the durable outcome; a rejection is a failure
    /// with the ledger's reason in plain words.
    pub(crate) async fn submit(&self, key: &SigningKey, action: Action) -> Result<TxResultView, Failure> {
        let pending = self.prepare(key, action, None, None).await?;
        self.send(&pending).await
    }

    /// Sends a kept transaction (again) until an answer says what became of it.
    pub(crate) async fn send(&self, pending: &Pending) -> Result<TxResultView, Failure> {
        let answer = self.client.submit_settled(&pending.tx, &pending.tx_id, SETTLE_ATTEMPTS).await;
        self.conclude(pending, answer)
    }

    /// What an answer (or the lack of one) means for a kept transaction: applied, not
    /// done (the pending copy and any card made for it are removed), or unknown (both
    /// stay, and the failure says how to find out).
    pub(crate) fn conclude(
        &self,
        pending: &Pending,
        answer: Result<TxResultView, ClientError>,
    ) -> Result<TxResultView, Failure> {
        match answer {
            Ok(result) if result.status == TxStatus::Applied => {
                self.pending.remove(&pending.tx_id)?;
                Ok(result)
            }
            Ok(result) => {
                self.forget(pending)?;
                Err(self.not_done(&result))
            }
            Err(e @ (ClientError::NoAnswer(..) | ClientError::Decode(_))) => Err(self.unknown(pending, &e)),
            Err(e @ (ClientError::Unreachable(..) | ClientError::Api { status: 503, .. })) => {
                // It never got in: a command that made a card keeps both for its retry.
                if pending.purpose.is_none() {
                    self.pending.remove(&pending.tx_id)?;
                }
                Err(Failure::from(e))
            }
            Err(e) => {
                self.forget(pending)?;
                Err(Failure::from(e))
            }
        }
    }

    /// Removes a transaction that can never commit, and the card made for it.
    pub(crate) fn forget(&self, pending: &Pending) -> Result<(), Failure> {
        if let Some(card) = &pending.new_card {
            match self.store.remove(&CardNumber::parse(card)?) {
                Err(KeystoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        self.pending.remove(&pending.tx_id)?;
        Ok(())
    }

    /// A ledger's refusal or rejection in plain words.
    pub(crate) fn not_done(&self, result: &TxResultView) -> Failure {
        let message = match result.reason {
            Some(code) => format!("{} ({code})", explain(self.lang, code)),
            None => result.message.clone().unwrap_or_default(),
        };
        let status = if result.status == TxStatus::Rejected { "rejected" } else { "refused" };
        Failure {
            code: EXIT_REFUSED,
            kind: "rejected",
            message,
            details: json!({ "status": status, "tx_id": result.tx_id }),
        }
    }

    /// An outcome nobody knows yet: never "not done".
    pub(crate) fn unknown(&self, pending: &Pending, e: &ClientError) -> Failure {
        let id = pending.tx_id;
        let message = match self.lang {
            Lang::Ja => format!(
                "結果を確認できませんでした（{e}）。取引は完了している可能性があります。もう一度行う前に \
                 `machi-wallet check {id}` で確認してください。"
            ),
            Lang::En => format!(
                "the outcome is not known ({e}); the transaction may have committed. Before doing it \
                 again, check with `machi-wallet check {id}`."
            ),
        };
        let mut details = json!({ "status": "unknown", "tx_id": id });
        if let Some(card) = &pending.new_card {
            details["card"] = CardNumber::parse(card).map(|c| c.display()).unwrap_or_default().into();
        }
        Failure { code: EXIT_UNKNOWN, kind: "unknown", message, details }
    }
}

/// The action of a kept transaction (to sign it anew once it can no longer commit).
pub(crate) fn action_of(pending: &Pending) -> Option<Action> {
    TxBody::decode(&pending.tx.body).ok().map(|body| body.action)
}

/// The look-up of a shop's pay code at the merchant API, with plain-language failures.
pub(crate) async fn pay_code(ctx: &Ctx, code: &str) -> Result<machi_api::PayCodeView, Failure> {
    let code: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    ctx.merchant.pay_code(&code).await.map_err(|e| match &e {
        ClientError::Api { status: 404, .. } => user(ctx.t(
            "その支払いコードは見つかりません（期限切れか、番号の間違いです）",
            "no open payment request has that pay code (expired, or a wrong number)",
        )),
        ClientError::Api { status: 429, .. } => user(
            ctx.t("少し待ってからもう一度お試しください", "too many look-ups; wait a moment and try again"),
        ),
        _ => Failure::from(e),
    })
}

/// A committed payment's or purchase's receipt as plain text for the kiosk printer: what
/// was paid or bought, and the transaction id, block height and block hash with their
/// check code as text and as a QR code, so that anyone can check it
/// (`machi-wallet verify-receipt`, docs/FORMAT.md "Checking a receipt").
///
/// `reader` reads as the card whose receipt it is (the payer, the buyer).
pub(crate) async fn receipt_text(
    ctx: &Ctx,
    reader: &Client,
    id: &machi_ledger::TxId,
) -> Result<String, Failure> {
    let tx = reader.tx(id).await?;
    let body = tx.body.ok_or_else(|| user("not a transaction this wallet can print"))?;
    let what = match body.action {
        Action::Pay { shop, amount, invoice } => {
            let shop_name = ctx.client.shop(&shop).await.map(|s| s.name).unwrap_or_default();
            format!(
                "お支払い明細 / Receipt\n------------------------------\nお店 Shop   : {shop_name}\n金額 Amount : {amount}\n{}",
                invoice.map(|i| format!("請求番号    : {i}\n")).unwrap_or_default()
            )
        }
        Action::SellSets { issue, sets, cash_received, .. } => {
            let name = ctx.client.issue(issue).await.map(|i| i.params.name).unwrap_or_default();
            format!(
                "ご購入明細 / Purchase\n------------------------------\n商品券 Issue: {name}（第{issue}回）\nセット Sets: {sets}\n代金 Paid   : {cash_received}\n"
            )
        }
        _ => {
            return Err(user(
                ctx.t("支払いか購入の取引ではありません", "that transaction is not a payment or a purchase"),
            ))
        }
    };
    let (Some(height), Some(block_hash)) = (tx.result.height, tx.result.block_hash) else {
        return Err(user(ctx.t("まだ記録されていない取引です", "that transaction is not on the chain yet")));
    };
    let code = crate::receipt_code::ReceiptCode { chain_id: body.chain_id, tx_id: *id, height, block_hash };
    let when = machi_ledger::time::format_jst(tx.timestamp_ms);
    Ok(format!(
        "machi プレミアム商品券\n{what}日時 Date   : {when} (JST)\n------------------------------\n取引ID Tx     : {id}\nブロック Block: {height}\nブロックハッシュ Block hash:\n  {block_hash}\n確認用コード Check code:\n{}\n{}\nこの領収書は、だれでも確かめられます:\n  machi-wallet verify-receipt（町が公表するブロックハッシュと照合）\n------------------------------\nおつりは出ません / No change is given\n",
        code.payload(),
        code.print_lines().join("\n"),
    ))
}
