//! Words for people, in Japanese (default) or English.

use machi_api::TxCode;

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

/// A rejection or refusal explained in plain words (machi-api holds the words for every
/// code, so the kiosk, the commands and the services say the same).
pub(crate) fn explain(lang: Lang, code: TxCode) -> &'static str {
    let lang = match lang {
        Lang::Ja => machi_api::Lang::Ja,
        Lang::En => machi_api::Lang::En,
    };
    machi_api::explain(code, lang)
}
