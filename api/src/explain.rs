//! Every transaction code explained for people, in Japanese and English: plain words a
//! resident at the kiosk can follow and counter staff can act on. The one source of
//! these words: the wallet, the kiosk and the services show them.

use crate::code::TxCode;

/// The language of an explanation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    Ja,
    En,
}

/// What `code` means, in `lang`, in a sentence or two.
pub fn explain(code: TxCode, lang: Lang) -> &'static str {
    let (ja, en) = texts(code);
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

/// (Japanese, English). docs/RULES.md says when each rule applies.
fn texts(code: TxCode) -> (&'static str, &'static str) {
    match code {
        TxCode::SaleNotOpen => ("販売期間ではありません", "The vouchers are not on sale at this time."),
        TxCode::SoldOut => ("売り切れました", "This issue is sold out."),
        TxCode::NotEnoughSetsLeft => {
            ("残りのセット数が足りません", "Fewer sets are left than were asked for.")
        }
        TxCode::OverCap => {
            ("お一人様の購入上限を超えます", "This would go over the number of sets one person may buy.")
        }
        TxCode::InsufficientBalance => (
            "残高が足りません（大型店では共通券だけが使えます）",
            "The balance is not enough for this payment (large shops take common value only).",
        ),
        TxCode::IssueExpired => {
            ("この商品券は使用期限が過ぎています", "This voucher's spending period has ended.")
        }
        TxCode::AccountFrozen => {
            ("このカードは停止されています", "This card is stopped. Please ask at the town office counter.")
        }
        TxCode::PayeeFrozen => {
            ("このお店は現在お支払いを受け付けていません", "This shop cannot take payments right now.")
        }
        TxCode::NotAShop => ("お店ではない相手には支払えません", "Payments can go to registered shops only."),
        TxCode::UnknownIssue => ("その発行回はありません", "There is no voucher issue with that number."),
        TxCode::IssueExists => {
            ("その番号の発行回はすでにあります", "An issue with that number already exists.")
        }
        TxCode::AccountExists => {
            ("このカード（鍵）はすでに登録されています", "This card (its key) is already registered.")
        }
        TxCode::ResidentAlreadyRegistered => {
            ("この住民番号はすでに登録されています", "This resident number already has a card.")
        }
        TxCode::UnknownAccount => {
            ("そのカード（アカウント）は登録されていません", "No account is registered for that card.")
        }
        TxCode::CashMismatch => (
            "受け取った金額がセット代金と合いません",
            "The cash received does not match the price of the sets.",
        ),
        TxCode::WorkersNotEligible => (
            "この発行回は町外の方は購入できません",
            "This issue is for residents only; people who work in town but live elsewhere cannot buy it.",
        ),
        TxCode::UnknownPayment => ("その支払いは見つかりません", "No payment has that id."),
        TxCode::RefundExceedsPayment => (
            "返金額が、支払われた金額（これまでの返金を除く）を超えています",
            "A refund cannot be more than the payment, less earlier refunds.",
        ),
        TxCode::NotYourPayment => {
            ("その支払いは別のお店へのものです", "That payment was made to another shop.")
        }
        TxCode::CashOutDeadlinePassed => {
            ("この発行回の換金期限は過ぎています", "The cash-out deadline for this issue has passed.")
        }
        TxCode::UnknownCashOut => ("その換金請求は見つかりません", "No cash-out request has that id."),
        TxCode::CashOutNotPending => {
            ("その換金請求はすでに支払い済みです", "That cash-out request has already been paid.")
        }
        TxCode::IssueNotEnded => {
            ("まだ使用期限が過ぎていません", "The issue's spending period has not ended yet.")
        }
        TxCode::AlreadyExpired => (
            "いま失効させる残高はありません（すでに失効済みです）",
            "There is nothing left to expire for this issue now.",
        ),
        TxCode::InvalidParameters => (
            "入力された内容に誤りがあります（名前・鍵・日付・数のどれか）",
            "Something in the request is not valid (a name, key, date or number).",
        ),
        TxCode::ZeroAmount => ("金額は1円以上にしてください", "The amount must be at least ¥1."),
        TxCode::AccountRevoked => (
            "このカードは再発行されたため使えません。新しいカードをお使いください",
            "This card was replaced by a new one and can no longer be used; use the new card.",
        ),
        TxCode::NotAResident => ("住民のカードではありません", "This is not a resident's card."),
        TxCode::ShopBalanceInsufficient => (
            "お店の残高が足りないため返金できません",
            "The shop no longer holds enough of this value to refund it.",
        ),
        TxCode::NoChange => ("すでにその状態になっています", "The account is already in that state."),
        TxCode::FrozenByTown => (
            "役場が停止したカードです。解除は役場だけができます",
            "The town stopped this account; only the town can restart it.",
        ),
        TxCode::CounterClosed => (
            "この窓口は本日の締めを済ませました。販売は明日からです",
            "This counter has closed its cash for today; it sells again tomorrow.",
        ),
        TxCode::DayNotStarted => ("その日はまだ来ていません（日本時間）", "That day has not begun yet (Japan time)."),
        TxCode::CloseMismatch => (
            "締めの販売額が台帳の記録と合いません。最新の売上を読み直してからもう一度締めてください",
            "The sales in the close differ from what the ledger recorded at this counter that day; read the day's sales again and close again.",
        ),
        TxCode::DayAlreadyClosed => (
            "この窓口のその日の締めはすでに記録されています（最初の締めが有効です）",
            "This counter has already closed that day; the first close stands.",
        ),
        TxCode::SlipAlreadyRecorded => (
            "この入金伝票番号はすでに記録されています",
            "A deposit with this slip reference is already recorded.",
        ),
        TxCode::NotALottery => ("この発行回は抽選販売ではありません", "This issue is not sold by lottery."),
        TxCode::LotteryLocked => ("抽選の設定は販売開始前・申込受付前にしかできません", "A lottery can be set only before the sale starts and before any application."),
        TxCode::NotALotteryParty => ("この抽選の立会人として登録されていません", "This key is not one of the lottery's parties."),
        TxCode::CommitClosed => ("抽選の秘密値の登録期限を過ぎています", "The deadline for the lottery's commitments has passed."),
        TxCode::AlreadyCommitted => ("この立会人の秘密値はすでに登録されています", "This party has already committed its secret."),
        TxCode::LotteryNotReady => ("立会人の秘密値がそろっていないため、抽選の申込はまだ受け付けていません", "Not every party committed its secret in time, so applications are not open; the town must set the lottery again."),
        TxCode::ApplicationsNotOpen => ("抽選の申込期間ではありません", "The lottery is not taking applications at this time."),
        TxCode::RevealNotOpen => ("秘密値の公開期間ではありません（申込締切後から公開期限まで）", "Secrets are revealed only after applications close and before the reveal period ends."),
        TxCode::RevealMismatch => ("公開した秘密値が登録した値と一致しません", "The secret does not match the party's commitment."),
        TxCode::AlreadyRevealed => ("この立会人の秘密値はすでに公開されています", "This party has already revealed its secret."),
        TxCode::DrawTooEarly => ("まだ抽選できません。全員が公開するか公開期限が過ぎるまでお待ちください", "The draw waits until every party revealed or the reveal period ended."),
        TxCode::AlreadyDrawn => ("この抽選はすでに行われました", "The lottery has already been drawn."),
        TxCode::LotteryNotDrawn => ("抽選がまだ行われていないため、販売できません", "The lottery has not been drawn yet; no sets are sold before the draw."),
        TxCode::NotAllotted => ("今は当選した方（その後は補欠の方）だけが購入できる期間です。この方には割り当てがありません", "Only residents the lottery allotted sets to may buy in this window, and this one has none."),
        TxCode::OverAllotment => ("当選したセット数（未購入分）を超えています", "That is more sets than the lottery allotted this resident and they have not bought yet."),
        TxCode::UnknownSigner => ("このカードは登録されていません", "This card is not registered."),
        TxCode::WrongRole => ("この操作をする権限がありません", "This card may not do this."),
        TxCode::KeyRevoked => (
            "このカードは再発行され、使えなくなりました",
            "This card was replaced by a new one and can no longer be used.",
        ),
        TxCode::TtlExpired => (
            "時間がたちすぎたため受け付けられませんでした。もう一度お試しください",
            "The request waited too long and ran out of time; please try again.",
        ),
        TxCode::NotYetValid => (
            "端末の時計が進んでいるため受け付けられませんでした。係員に知らせてください",
            "This device's clock is ahead of the town's; please tell the staff.",
        ),
        TxCode::TtlTooLong => (
            "有効時間が長すぎる取引です（24時間まで）",
            "The transaction asks to stay valid too long (24 hours at most).",
        ),
        TxCode::WrongChain => {
            ("別の町（台帳）あての取引です", "The transaction is meant for another town's ledger.")
        }
        TxCode::NoGenesis => ("この台帳はまだ始まっていません", "This ledger has not been started yet."),
        TxCode::Duplicate => ("この取引はすでに記録されています", "This transaction is already recorded."),
        TxCode::MalformedBody => ("取引の内容を読み取れません", "The transaction could not be read."),
        TxCode::NonCanonicalBody => {
            ("取引の書き方が正しくありません", "The transaction is not written in its one correct form.")
        }
        TxCode::BodyTooLarge => ("取引が大きすぎます", "The transaction is too large."),
        TxCode::BadKey => ("カードの鍵が正しくありません", "The card's key is not valid."),
        TxCode::BadSignature => (
            "署名が正しくありません（カードと取引が合いません）",
            "The signature does not match the card and the transaction.",
        ),
        TxCode::ConflictingDuplicate => (
            "同じ取引が別の署名ですでに記録されています",
            "The same transaction is already recorded with another signature.",
        ),
        TxCode::StorageUnavailable => (
            "記録できませんでした。お金は動いていません。もう一度お試しください",
            "It could not be recorded; nothing was paid or changed. Please try again.",
        ),
        TxCode::Busy => (
            "混み合っています。少し待ってからもう一度お試しください",
            "The system is busy; please wait a moment and try again.",
        ),
        TxCode::ShuttingDown => (
            "システムが止まるところです。しばらくしてからもう一度お試しください",
            "The system is stopping; please try again shortly.",
        ),
        TxCode::NoLeader => (
            "いま台帳の取りまとめ役が決まっていません。少し待ってからもう一度お試しください",
            "No replica leads the ledger right now; please try again in a moment.",
        ),
        TxCode::Unconfirmed => (
            "まだ確定していません。同じ内容をもう一度送ると結果が分かります（二重にはなりません）",
            "Not confirmed yet; sending the same transaction again tells its outcome (it is never made twice).",
        ),
        TxCode::Halted => (
            "この台帳の写しは検証できないブロックで止まりました。別の写しでお試しください",
            "This replica stopped at a block that does not verify; please use another replica.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_explained_in_japanese_and_english() {
        for &code in TxCode::ALL {
            let (ja, en) = (explain(code, Lang::Ja), explain(code, Lang::En));
            assert!(!ja.trim().is_empty() && !en.trim().is_empty(), "{code}");
            assert!(ja.chars().any(|c| ('\u{3040}'..='\u{9fff}').contains(&c)), "{code}: {ja:?} is Japanese");
            assert!(en.chars().all(|c| c.is_ascii() || c == '¥'), "{code}: {en:?} is English");
            let by_its_code = code.name().contains('_') && en.contains(code.name());
            assert!(!by_its_code, "{code}: explained in words, not by its code");
        }
    }
}
