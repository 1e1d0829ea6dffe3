//! `machi-wallet kiosk`: the assisted kiosk at the town hall. A numbered, step-by-step
//! flow in large clear text: card number → PIN → menu (残高 / 支払い / 履歴 / 領収書 /
//! 終了). A payment shows the shop and the amount in big digits and is sent only after
//! "1 はい"; "0" cancels any step; after `timeout` without input the kiosk goes back to
//! the first screen for the next person. Every screen fits 80×24.
//!
//! Input is read line by line (digits, then Enter) on a thread, so the flow can time out;
//! the PIN is read with the terminal's echo off.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::screen::{big_digits, fits, wrap, SCREEN_COLUMNS};
use machi_api::{AccountView, PayCodeView, TxStatus};
use machi_client::{Client, ClientError};
use machi_ledger::{Action, Kind, ShopClass, TxId, Yen};
use tokio::sync::mpsc;

use crate::ctx::{
    pay_code, read_words, receipt_text, user, Ctx, Failure, EXIT_UNKNOWN, EXIT_USER, SETTLE_ATTEMPTS,
};
use crate::keystore::{CardNumber, KeystoreError, Wallet};
use crate::secrets::EchoOff;
use crate::text::kind;

const HISTORY_ROWS: usize = 8;

/// Why a flow ended early.
enum End {
    /// "0": the person cancelled.
    Cancel,
    /// No input for the kiosk's timeout.
    Timeout,
    /// Standard input closed: the kiosk program ends.
    Eof,
}

struct Input {
    lines: mpsc::UnboundedReceiver<String>,
    timeout: Duration,
}

impl Input {
    fn start(timeout: Duration) -> Input {
        let (send, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Input { lines, timeout }
    }

    /// The next line, trimmed; "0" is a cancellation.
    async fn line(&mut self) -> Result<String, End> {
        match tokio::time::timeout(self.timeout, self.lines.recv()).await {
            Err(_) => Err(End::Timeout),
            Ok(None) => Err(End::Eof),
            Ok(Some(line)) if line.trim() == "0" => Err(End::Cancel),
            Ok(Some(line)) => Ok(line.trim().to_string()),
        }
    }

    /// A line typed without echo (the PIN).
    async fn secret(&mut self) -> Result<String, End> {
        let _echo = EchoOff::new();
        let line = self.line().await;
        println!();
        line
    }
}

struct Kiosk<'a> {
    ctx: &'a Ctx,
    input: Input,
    receipts: &'a Path,
    /// Shown at the top of the next screen: what went wrong, or what just happened.
    notice: Option<String>,
    /// The node's client reading as the card unlocked now (its account, its lottery
    /// result, its receipts): set after the PIN, dropped with the card when its session
    /// ends.
    reader: Option<Client>,
}

pub(crate) async fn run(ctx: &Ctx, timeout: Duration, receipts: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(receipts).map_err(|e| user(format!("{}: {e}", receipts.display())))?;
    let mut kiosk = Kiosk { ctx, input: Input::start(timeout), receipts, notice: None, reader: None };
    loop {
        let ended = kiosk.session().await;
        kiosk.reader = None;
        match ended {
            Ok(()) => {}
            Err(End::Cancel) => kiosk.notice = Some(ctx.t("やめました。", "Cancelled.").into()),
            Err(End::Timeout) => {
                kiosk.notice = Some(
                    ctx.t("時間がたったので、はじめの画面にもどりました。", "Timed out: back to the start.")
                        .into(),
                )
            }
            Err(End::Eof) => return Ok(()),
        }
    }
}

impl Kiosk<'_> {
    fn t<'b>(&self, ja: &'b str, en: &'b str) -> &'b str {
        self.ctx.t(ja, en)
    }

    /// The client that reads as the unlocked card (anonymous before a PIN was taken).
    fn reader(&self) -> &Client {
        self.reader.as_ref().unwrap_or(&self.ctx.client)
    }

    /// Clears the terminal and draws one screen: a header with the step, the notice,
    /// the body, and what to type.
    fn draw(&mut self, step: &str, title: &str, body: &[String], prompt: &str) {
        let mut lines = vec![
            format!("━━ {} ━━ {step} {title}", self.t("まち商品券 キオスク", "machi voucher kiosk")),
            String::new(),
        ];
        if let Some(notice) = self.notice.take() {
            for (i, piece) in wrap(&notice, SCREEN_COLUMNS - 4).into_iter().enumerate() {
                lines.push(format!("  {} {piece}", if i == 0 { "▶" } else { " " }));
            }
            lines.push(String::new());
        }
        for line in body {
            lines.extend(wrap(line, SCREEN_COLUMNS - 2).into_iter().map(|l| {
                if l.is_empty() {
                    l
                } else {
                    format!("  {l}")
                }
            }));
        }
        lines.push(String::new());
        lines.push(format!("  {prompt}"));
        debug_assert!(fits(&lines), "screen does not fit 80x24: {lines:#?}");
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[2J\x1b[H{}\n  > ", lines.join("\n"));
        let _ = out.flush();
    }

    async fn session(&mut self) -> Result<(), End> {
        let card = self.card().await?;
        let wallet = self.pin(&card).await?;
        // Every read from here on is the resident's own, made with their card's key.
        self.reader = Some(self.ctx.reading_as(&wallet.key, "kiosk"));
        let mut last_payment: Option<TxId> = None;
        loop {
            let menu = [
                self.t("1  残高を見る", "1  Balance").to_string(),
                self.t("2  お店に支払う（支払いコード）", "2  Pay a shop (pay code)").to_string(),
                self.t("3  履歴を見る", "3  History").to_string(),
                self.t("4  領収書を印刷する", "4  Print a receipt").to_string(),
                self.t("5  終わる", "5  Finish").to_string(),
                self.t("6  抽選（申し込み・結果）", "6  Lottery (apply, result)").to_string(),
            ];
            let title = self.t("メニュー", "Menu");
            self.draw(
                "【3】",
                title,
                &menu,
                self.t("番号を入れて Enter を押してください", "Type a number and press Enter"),
            );
            let choice = match self.input.line().await {
                Err(End::Cancel) => "5".to_string(),
                other => other?,
            };
            match choice.as_str() {
                "1" => self.balance(&wallet).await?,
                "2" => {
                    if let Some(paid) = self.pay(&wallet).await? {
                        last_payment = Some(paid);
                    }
                }
                "3" => self.history(&wallet).await?,
                "4" => self.receipt(&wallet, last_payment).await?,
                "5" => {
                    self.notice = Some(self.t("ご利用ありがとうございました。", "Thank you.").into());
                    return Ok(());
                }
                "6" => self.lottery(&wallet).await?,
                _ => {
                    self.notice =
                        Some(self.t("1 から 6 の番号を入れてください。", "Type a number from 1 to 6.").into())
                }
            }
        }
    }

    async fn card(&mut self) -> Result<CardNumber, End> {
        loop {
            let body = [
                self.t(
                    "カード番号を入れて Enter を押してください。",
                    "Type the card number and press Enter.",
                )
                .to_string(),
                self.t(
                    "（例: 1234-5678-9　ハイフンはなくてもかまいません）",
                    "(e.g. 1234-5678-9; the dashes may be left out)",
                )
                .to_string(),
            ];
            self.draw(
                "【1】",
                self.t("カード番号", "Card number"),
                &body,
                self.t("0 = やめる", "0 = cancel"),
            );
            let text = self.input.line().await?;
            match CardNumber::parse(&text).map(|card| (self.ctx.store.account(&card), card)) {
                Ok((Ok(_), card)) => return Ok(card),
                Ok((Err(_), _)) => {
                    self.notice = Some(
                        self.t(
                            "そのカードはこのキオスクに登録されていません。係員にお声がけください。",
                            "That card is not known at this kiosk; please ask the staff.",
                        )
                        .into(),
                    )
                }
                Err(_) => {
                    self.notice = Some(
                        self.t(
                            "カード番号が正しくありません。もう一度入れてください。",
                            "That card number is not right; please type it again.",
                        )
                        .into(),
                    )
                }
            }
        }
    }

    async fn pin(&mut self, card: &CardNumber) -> Result<Wallet, End> {
        loop {
            let body = [
                format!("{}: {}", self.t("カード", "Card"), card.display()),
                String::new(),
                self.t(
                    "暗証番号（4〜8けた）を入れて Enter を押してください。",
                    "Type your PIN (4 to 8 digits) and press Enter.",
                )
                .to_string(),
                self.t("画面には表示されません。", "It is not shown on the screen.").to_string(),
            ];
            self.draw("【2】", self.t("暗証番号", "PIN"), &body, self.t("0 = やめる", "0 = cancel"));
            let pin = self.input.secret().await?;
            match self.ctx.store.unlock(card, &pin, machi_client::now_ms()) {
                Ok(wallet) => return Ok(wallet),
                Err(KeystoreError::WrongPin { left }) => {
                    self.notice = Some(match self.ctx.lang {
                        crate::Lang::Ja => format!(
                            "暗証番号がちがいます。あと {left} 回まちがえると、カードがロックされます。"
                        ),
                        crate::Lang::En => format!("Wrong PIN. {left} more wrong tries lock the card."),
                    })
                }
                Err(KeystoreError::Locked { until_jst }) => {
                    let body = [
                        self.t(
                            "暗証番号を5回まちがえたため、このカードはロックされました。",
                            "After 5 wrong PINs this card is locked.",
                        )
                        .to_string(),
                        format!("{} {until_jst}", self.t("使えるようになる時刻:", "Usable again at:")),
                        self.t("係員にお声がけください。", "Please ask the staff.").to_string(),
                    ];
                    self.draw(
                        "【2】",
                        self.t("カードがロックされました", "Card locked"),
                        &body,
                        self.t("Enter = はじめにもどる", "Enter = back to the start"),
                    );
                    let _ = self.input.line().await;
                    return Err(End::Cancel);
                }
                Err(e) => self.notice = Some(e.to_string()),
            }
        }
    }

    /// Shows a screen made whole elsewhere (the receipt's QR code; its last row is the
    /// input) and waits for Enter (or "0"): back to the menu either way.
    async fn show(&mut self, lines: &[String]) -> Result<(), End> {
        debug_assert!(fits(lines), "screen does not fit 80x24: {lines:#?}");
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[2J\x1b[H{}", lines.join("\n"));
        let _ = out.flush();
        match self.input.line().await {
            Ok(_) | Err(End::Cancel) => Ok(()),
            Err(end) => Err(end),
        }
    }

    /// Shows a message and waits for Enter (or "0"): back to the menu either way.
    async fn pause(&mut self, step: &str, title: &str, body: &[String]) -> Result<(), End> {
        self.draw(step, title, body, self.t("Enter = メニューにもどる", "Enter = back to the menu"));
        match self.input.line().await {
            Ok(_) | Err(End::Cancel) => Ok(()),
            Err(end) => Err(end),
        }
    }

    fn trouble(&mut self, failure: Failure) {
        let words = read_words(self.ctx.lang, failure.kind).map_or(failure.message, str::to_string);
        self.notice = Some(format!("{} {words}", self.t("できませんでした:", "Not done:")));
    }

    async fn account(&mut self, wallet: &Wallet) -> Option<AccountView> {
        match self.reader().account(&wallet.account()).await {
            Ok(view) => Some(view),
            Err(e) => {
                self.trouble(Failure::from(e));
                None
            }
        }
    }

    async fn balance(&mut self, wallet: &Wallet) -> Result<(), End> {
        let Some(view) = self.account(wallet).await else { return Ok(()) };
        let issues = self.ctx.client.issues().await.unwrap_or_default();
        let mut body =
            vec![format!("{}  {}", self.t("残高の合計", "Total balance"), view.total), String::new()];
        body.extend(big_digits(&view.total.to_string()));
        body.push(String::new());
        for b in view.balances.iter().filter(|b| !b.amount.is_zero()).take(8) {
            let name = issues
                .iter()
                .find(|i| i.params.id == b.issue)
                .map_or(String::new(), |i| i.params.name.clone());
            let name: String = name.chars().take(16).collect();
            body.push(format!(
                "{name}  {} {:>9}  {} {}",
                kind(self.ctx.lang, b.kind),
                b.amount.to_string(),
                self.t("有効期限", "until"),
                &b.spend_until_jst[..10.min(b.spend_until_jst.len())]
            ));
        }
        self.pause("【残高】", self.t("残高", "Balance"), &body).await
    }

    /// Pay by pay code: look up → check the balance → confirm → pay → done.
    async fn pay(&mut self, wallet: &Wallet) -> Result<Option<TxId>, End> {
        let ctx = self.ctx;
        let step = |n: u32| format!("【{} {n}/3】", ctx.t("支払い", "Pay"));
        let request = loop {
            let body = [
                self.t(
                    "お店で表示された 8けたの「支払いコード」を入れて",
                    "Type the 8-digit pay code the shop shows you",
                )
                .to_string(),
                self.t("Enter を押してください。", "and press Enter.").to_string(),
            ];
            self.draw(
                &step(1),
                self.t("支払いコード", "Pay code"),
                &body,
                self.t("0 = やめる", "0 = cancel"),
            );
            let code = match self.input.line().await {
                Err(End::Cancel) => return self.cancelled(),
                other => other?,
            };
            let digits: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
            if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                self.notice = Some(
                    self.t(
                        "支払いコードは 8けたの数字です。もう一度入れてください。",
                        "A pay code is 8 digits; please type it again.",
                    )
                    .into(),
                );
                continue;
            }
            match pay_code(self.ctx, &digits).await {
                Ok(request) => break request,
                Err(failure) if failure.code == EXIT_USER => {
                    self.notice = Some(format!(
                        "{} {}",
                        failure.message,
                        self.t("お店の方に確認してください。", "Please check with the shop.")
                    ))
                }
                Err(failure) => {
                    self.trouble(failure);
                    return Ok(None);
                }
            }
        };
        if !self.can_pay(wallet, &request).await? {
            return Ok(None);
        }
        if !self.confirm(&step(2), &request).await? {
            return self.cancelled();
        }
        let action = Action::Pay {
            shop: request.shop,
            amount: request.amount,
            invoice: Some(request.invoice_id.clone()),
        };
        let pending = match self.ctx.prepare(&wallet.key, action, None, None).await {
            Ok(pending) => pending,
            Err(failure) => {
                self.trouble(failure);
                return Ok(None);
            }
        };
        let answer = match self.ctx.client.submit(&pending.tx).await {
            Ok(result) if !result.is_transient_refusal() => Ok(result),
            first => {
                // No answer that settles it: say so, then find out with the same
                // transaction (looked up, sent again), never a new one.
                let may_have_arrived =
                    matches!(first, Err(ClientError::NoAnswer(..) | ClientError::Decode(_)));
                self.checking(&step(3), &request);
                self.reader().settle(&pending.tx, &pending.tx_id, SETTLE_ATTEMPTS, may_have_arrived).await
            }
        };
        match self.ctx.conclude(&pending, answer) {
            Ok(result) => {
                self.done(&step(3), wallet, &request, result.tx_id).await?;
                Ok(Some(result.tx_id))
            }
            Err(failure) if failure.code == EXIT_UNKNOWN => {
                self.unknown_outcome(&step(3), &request, &pending.tx_id).await?;
                Ok(None)
            }
            Err(failure) => {
                self.trouble(failure);
                Ok(None)
            }
        }
    }

    /// Shown while the outcome of a sent payment is being found out.
    fn checking(&mut self, step: &str, request: &PayCodeView) {
        let body = [
            self.t("支払いの結果を確認しています。", "Checking the outcome of the payment.").to_string(),
            self.t("このままお待ちください。", "Please wait.").to_string(),
            String::new(),
            format!("{}: {}", self.t("お店", "Shop"), request.shop_name),
            format!("{}: {}", self.t("金額", "Amount"), request.amount),
            String::new(),
            self.t("同じ支払いが二度行われることはありません。", "The same payment is never made twice.")
                .to_string(),
        ];
        self.draw(step, self.t("確認中", "Checking"), &body, self.t("お待ちください", "Please wait"));
    }

    /// A payment whose outcome could not be found out in time: not "not done".
    async fn unknown_outcome(&mut self, step: &str, request: &PayCodeView, tx: &TxId) -> Result<(), End> {
        let body = [
            self.t(
                "支払いが完了したかどうか、まだ確認できません。",
                "Whether the payment went through is not known yet.",
            )
            .to_string(),
            self.t(
                "完了している場合があります。もう一度支払わないでください。",
                "It may have gone through: please do not pay again.",
            )
            .to_string(),
            self.t("係員にお声がけください。", "Please ask the staff.").to_string(),
            String::new(),
            format!("{}: {}", self.t("お店", "Shop"), request.shop_name),
            format!("{}: {}", self.t("金額", "Amount"), request.amount),
            format!("{}:", self.t("取引ID", "Transaction")),
            tx.to_hex(),
            String::new(),
            self.t("係員の確認: machi-wallet check 取引ID", "Staff: machi-wallet check TX_ID").to_string(),
        ];
        self.pause(step, self.t("確認できませんでした", "Outcome not known yet"), &body).await
    }

    fn cancelled(&mut self) -> Result<Option<TxId>, End> {
        self.notice = Some(
            self.t("支払いをやめました。お金は動いていません。", "Payment cancelled. Nothing was paid.")
                .into(),
        );
        Ok(None)
    }

    /// Whether the card holds enough value this shop may take; if not, says why.
    async fn can_pay(&mut self, wallet: &Wallet, request: &PayCodeView) -> Result<bool, End> {
        let Some(view) = self.account(wallet).await else { return Ok(false) };
        let usable = |k: Kind| {
            view.balances
                .iter()
                .filter(|b| b.kind == k && !b.expired)
                .fold(Yen(0), |sum, b| sum.plus(b.amount))
        };
        let (common, local) = (usable(Kind::Common), usable(Kind::Local));
        let spendable = if request.shop_class == ShopClass::Large { common } else { common.plus(local) };
        if spendable >= request.amount {
            return Ok(true);
        }
        let mut body = vec![
            format!("{}: {}", self.t("お店", "Shop"), request.shop_name),
            format!("{}: {}", self.t("お支払い", "Amount"), request.amount),
            format!("{}: {spendable}", self.t("このお店で使える残高", "Usable at this shop")),
            String::new(),
        ];
        if request.shop_class == ShopClass::Large && !local.is_zero() {
            body.push(
                self.t(
                    "このお店は大型店のため、共通券だけが使えます。",
                    "This is a large shop: only common value can be used here.",
                )
                .into(),
            );
            body.push(format!(
                "{} {local} {}",
                self.t("地元専用券の残高", "Your local-only value"),
                self.t("は、地元のお店でお使いください。", "can be used at local shops.")
            ));
        } else {
            body.push(
                self.t("残高が足りないため、支払えません。", "The balance is not enough to pay this.").into(),
            );
        }
        body.push(self.t("お金は動いていません。", "Nothing was paid.").into());
        self.pause("【支払い】", self.t("残高が足りません", "Not enough balance"), &body).await?;
        Ok(false)
    }

    async fn confirm(&mut self, step: &str, request: &PayCodeView) -> Result<bool, End> {
        loop {
            let mut body = vec![format!("{}: {}", self.t("お店", "Shop"), request.shop_name), String::new()];
            body.extend(big_digits(&request.amount.to_string()));
            body.push(String::new());
            body.push(format!(
                "{} {} {}",
                self.t("金額", "Amount"),
                request.amount,
                self.t("を支払いますか？", "— pay it?")
            ));
            body.push(String::new());
            body.push(self.t("1  はい（支払う）", "1  Yes, pay").into());
            body.push(self.t("2  いいえ（やめる）", "2  No, cancel").into());
            self.draw(
                step,
                self.t("確認", "Confirm"),
                &body,
                self.t("1 か 2 を入れて Enter", "Type 1 or 2 and press Enter"),
            );
            match self.input.line().await {
                Ok(answer) if answer == "1" => return Ok(true),
                Ok(answer) if answer == "2" => return Ok(false),
                Err(End::Cancel) => return Ok(false),
                Err(end) => return Err(end),
                Ok(_) => {
                    self.notice = Some(
                        self.t("1（はい）か 2（いいえ）を入れてください。", "Type 1 (yes) or 2 (no).").into(),
                    )
                }
            }
        }
    }

    async fn done(
        &mut self,
        step: &str,
        wallet: &Wallet,
        request: &PayCodeView,
        tx: TxId,
    ) -> Result<(), End> {
        let left = self.account(wallet).await.map(|v| v.total.to_string()).unwrap_or_default();
        let mut body = vec![self.t("支払いが完了しました", "Payment complete").to_string(), String::new()];
        body.extend(big_digits(&request.amount.to_string()));
        body.push(String::new());
        body.push(format!("{}: {}", self.t("お店", "Shop"), request.shop_name));
        body.push(format!("{}: {}", self.t("金額", "Amount"), request.amount));
        body.push(format!("{}: {left}", self.t("残高", "Balance left")));
        body.push(format!(
            "{}: {}",
            self.t("日時", "Time"),
            machi_ledger::time::format_jst(machi_client::now_ms())
        ));
        body.push(String::new());
        body.push(self.t("1  領収書を印刷する", "1  Print a receipt").into());
        self.draw(
            step,
            self.t("完了", "Done"),
            &body,
            self.t("Enter = メニューにもどる", "Enter = back to the menu"),
        );
        match self.input.line().await {
            Ok(answer) if answer == "1" => self.print_receipt(tx).await,
            Ok(_) | Err(End::Cancel) => Ok(()),
            Err(end) => Err(end),
        }
    }

    async fn history(&mut self, wallet: &Wallet) -> Result<(), End> {
        let Some(view) = self.account(wallet).await else { return Ok(()) };
        let mut body = Vec::new();
        for entry in view.history.iter().take(HISTORY_ROWS) {
            let Some(tx) = &entry.body else { continue };
            let (what, amount) = match &tx.action {
                Action::Pay { amount, .. } => (self.t("支払い", "payment"), format!("-{amount}")),
                Action::SellSets { sets, .. } => {
                    (self.t("購入", "bought"), format!("{sets} {}", self.t("セット", "set(s)")))
                }
                Action::Refund { amount, .. } => (self.t("返金", "refund"), format!("+{amount}")),
                Action::RegisterResident { .. } => (self.t("登録", "registered"), String::new()),
                Action::ReplaceKey { .. } => (self.t("カード再発行", "card replaced"), String::new()),
                _ => (self.t("その他", "other"), String::new()),
            };
            let status =
                if entry.status == TxStatus::Applied { "" } else { self.t("（不成立）", " (not done)") };
            body.push(format!(
                "{}  {what:<6} {amount:>10}{status}",
                machi_ledger::time::format_jst(entry.timestamp_ms)
            ));
        }
        if body.is_empty() {
            body.push(self.t("取引はまだありません。", "No transactions yet.").into());
        }
        self.pause("【履歴】", self.t("最近の取引", "Latest transactions"), &body).await
    }

    async fn receipt(&mut self, wallet: &Wallet, last: Option<TxId>) -> Result<(), End> {
        let last = match last {
            Some(tx) => Some(tx),
            None => self.account(wallet).await.and_then(|view| {
                view.history
                    .iter()
                    .find(|h| {
                        // This card's latest payment, or the latest purchase of sets for it.
                        h.status == TxStatus::Applied
                            && ((h.kind == "pay" && h.signer == wallet.account()) || h.kind == "sell_sets")
                    })
                    .map(|h| h.tx_id)
            }),
        };
        match last {
            Some(tx) => self.print_receipt(tx).await,
            None => {
                self.notice = Some(
                    self.t(
                        "印刷できる支払いや購入がありません。",
                        "There is no payment or purchase to print.",
                    )
                    .into(),
                );
                Ok(())
            }
        }
    }

    async fn print_receipt(&mut self, tx: TxId) -> Result<(), End> {
        let text = match receipt_text(self.ctx, self.reader(), &tx).await {
            Ok(text) => text,
            Err(failure) => {
                self.trouble(failure);
                return Ok(());
            }
        };
        let path = self.receipts.join(format!("receipt-{}.txt", &tx.to_hex()[..16]));
        match std::fs::write(&path, &text) {
            Ok(()) => {
                let code = crate::receipt_code::ReceiptCode::find(&text);
                if let Some(screen) =
                    code.and_then(|code| crate::receipt_code::kiosk_screen(self.ctx.lang, &code))
                {
                    return self.show(&screen).await;
                }
                let body = [
                    self.t(
                        "領収書を印刷しました。プリンターからお取りください。",
                        "The receipt is printed; please take it from the printer.",
                    )
                    .to_string(),
                    format!("{}: {}", self.t("ファイル", "File"), path.display()),
                ];
                self.pause("【領収書】", self.t("領収書", "Receipt"), &body).await
            }
            Err(e) => {
                self.notice = Some(format!(
                    "{} {e}",
                    self.t("領収書を書けませんでした:", "Could not write the receipt:")
                ));
                Ok(())
            }
        }
    }
}

/// The lottery (抽選): apply while the window is open, else the result in plain words.
impl Kiosk<'_> {
    async fn lottery(&mut self, wallet: &Wallet) -> Result<(), End> {
        let step = "【抽選】";
        let issues = match self.ctx.client.issues().await {
            Ok(issues) => issues,
            Err(e) => {
                self.trouble(Failure::from(e));
                return Ok(());
            }
        };
        let Some(issue) = issues.iter().rev().find(|i| i.sale_mode == machi_api::SaleMode::Lottery) else {
            let body =
                [self.t("いま抽選の販売はありません。", "No issue is sold by lottery now.").to_string()];
            return self.pause(step, self.t("抽選", "Lottery"), &body).await;
        };
        let (id, name, cap) =
            (issue.params.id, issue.params.name.clone(), issue.params.max_sets_per_resident);
        let price = issue.params.price;
        let entry = match self.reader().lottery_entry(id, &wallet.account()).await {
            Ok(entry) => entry,
            Err(e) => {
                self.trouble(Failure::from(e));
                return Ok(());
            }
        };
        if entry.stage == machi_api::LotteryStage::Applying {
            return self.lottery_apply(wallet, id, &name, cap, entry.applied_sets).await;
        }
        let mut body = vec![name, String::new()];
        let headline = crate::commands::lottery::headline(self.ctx.lang, &entry);
        body.push(headline);
        if entry.status == machi_api::LotteryStatus::Won {
            body.push(String::new());
            body.extend(big_digits(&entry.won_sets.unwrap_or(0).to_string()));
        }
        if let Some(n) = entry.can_buy_now.filter(|n| *n > 0) {
            let cash = price.checked_mul(u64::from(n)).unwrap_or(price);
            body.push(String::new());
            body.push(match self.ctx.lang {
                crate::Lang::Ja => {
                    format!("窓口で {n} セット（{cash}）を買えます。このカードをお持ちください。")
                }
                crate::Lang::En => format!("You can buy {n} set(s) ({cash}) at the counter with this card."),
            });
        }
        if let Some(seed) = entry.seed {
            body.push(String::new());
            body.push(format!("seed {}", &seed.to_hex()[..16]));
            body.push(
                self.t(
                    "抽選は誰でも確かめられます（machi-node verify）。",
                    "Anyone can check the draw (machi-node verify).",
                )
                .into(),
            );
        }
        self.pause(step, self.t("抽選の結果", "Lottery result"), &body).await
    }

    /// One question per screen: how many sets, then yes or no.
    async fn lottery_apply(
        &mut self,
        wallet: &Wallet,
        issue: u32,
        name: &str,
        cap: u32,
        applied: Option<u32>,
    ) -> Result<(), End> {
        let step = "【抽選】";
        let sets = loop {
            let mut body = vec![name.to_string(), String::new()];
            if let Some(n) = applied {
                body.push(match self.ctx.lang {
                    crate::Lang::Ja => format!("いまの申し込み: {n} セット（申し込み直せます）"),
                    crate::Lang::En => format!("Applied now: {n} set(s) (you may change it)"),
                });
            }
            body.push(match self.ctx.lang {
                crate::Lang::Ja => format!("何セット申し込みますか？（1 から {cap}）"),
                crate::Lang::En => format!("How many sets? (1 to {cap})"),
            });
            self.draw(
                step,
                self.t("抽選に申し込む", "Apply"),
                &body,
                self.t("数を入れて Enter", "Type a number and press Enter"),
            );
            match self.input.line().await {
                Err(End::Cancel) => return Ok(()),
                Err(end) => return Err(end),
                Ok(text) => match text.parse::<u32>() {
                    Ok(n) if (1..=cap).contains(&n) => break n,
                    _ => {
                        self.notice = Some(match self.ctx.lang {
                            crate::Lang::Ja => format!("1 から {cap} の数を入れてください。"),
                            crate::Lang::En => format!("Type a number from 1 to {cap}."),
                        })
                    }
                },
            }
        };
        loop {
            let mut body = vec![name.to_string(), String::new()];
            body.extend(big_digits(&sets.to_string()));
            body.push(String::new());
            body.push(match self.ctx.lang {
                crate::Lang::Ja => format!("{sets} セット 申し込みますか？"),
                crate::Lang::En => format!("Apply for {sets} set(s)?"),
            });
            body.push(String::new());
            body.push(self.t("1  はい（申し込む）", "1  Yes, apply").into());
            body.push(self.t("2  いいえ（やめる）", "2  No, cancel").into());
            self.draw(
                step,
                self.t("確認", "Confirm"),
                &body,
                self.t("1 か 2 を入れて Enter", "Type 1 or 2 and press Enter"),
            );
            match self.input.line().await {
                Ok(answer) if answer == "1" => break,
                Ok(answer) if answer == "2" => return Ok(()),
                Err(End::Cancel) => return Ok(()),
                Err(end) => return Err(end),
                Ok(_) => {
                    self.notice = Some(
                        self.t("1（はい）か 2（いいえ）を入れてください。", "Type 1 (yes) or 2 (no).").into(),
                    )
                }
            }
        }
        let action = Action::ApplyLottery { issue, resident: wallet.account(), sets };
        match self.ctx.submit(&wallet.key, action).await {
            Ok(_) => {
                let body = [
                    match self.ctx.lang {
                        crate::Lang::Ja => format!("{sets} セット 申し込みました。"),
                        crate::Lang::En => format!("Applied for {sets} set(s)."),
                    },
                    self.t(
                        "抽選のあと、このメニューの 6 で結果を見られます。",
                        "After the draw, menu 6 shows the result.",
                    )
                    .into(),
                ];
                self.pause(step, self.t("申し込みました", "Applied"), &body).await
            }
            Err(failure) => {
                self.trouble(failure);
                Ok(())
            }
        }
    }
}
