//! Words for people, in Japanese (default) or English.

use crate::Lang;

pub(crate) fn t<'a>(lang: Lang, ja: &'a str, en: &'a str) -> &'a str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

pub(crate) fn kind(lang: Lang, kind: machi_ledger::Kind) -> &'static str {
    match (lang, kind) {
        (Lang::Ja, machi_ledger::Kind::Common) => "共通",
        (Lang::Ja, machi_ledger::Kind::Local) => "地元専用",
        (Lang::En, machi_ledger::Kind::Common) => "common",
        (Lang::En, machi_ledger::Kind::Local) => "local only",
    }
}

/// A rejection or refusal explained in plain words.
pub(crate) fn reason(lang: Lang, code: &str, fallback: &str) -> String {
    let ja = match code {
        "insufficient_balance" => "残高が足りません（大型店では共通券だけが使えます）",
        "sold_out" => "売り切れました",
        "not_enough_sets_left" => "残りのセット数が足りません",
        "over_cap" => "お一人様の購入上限を超えます",
        "sale_not_open" => "販売期間ではありません",
        "account_frozen" => "このカードは停止されています",
        "payee_frozen" => "このお店は現在お支払いを受け付けていません",
        "not_a_shop" => "お店ではない相手には支払えません",
        "key_revoked" => "このカードは再発行され、使えなくなりました",
        "wrong_role" => "この操作をする権限がありません",
        "unknown_signer" => "このカードは登録されていません",
        "resident_already_registered" => "この住民番号はすでに登録されています",
        "cash_mismatch" => "受け取った金額がセット代金と合いません",
        "workers_not_eligible" => "この発行回は町外の方は購入できません",
        "issue_not_ended" => "まだ使用期限が過ぎていません",
        _ => "",
    };
    match lang {
        Lang::Ja if !ja.is_empty() => ja.to_string(),
        _ => fallback.to_string(),
    }
}
