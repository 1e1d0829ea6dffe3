//! Bank and branch codes, checked against the zengin-code list (vendored in
//! `data/zengin.tsv`, generated from zengin-code 1.1.0.20260824, MIT licence in
//! `data/LICENSE-zengin-code.txt`), and the half-width katakana Zengin files use.

use std::collections::HashMap;

const DATA: &str = include_str!("../data/zengin.tsv");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bank {
    pub code: String,
    pub name: String,
    /// Half-width katakana, as a Zengin record wants it.
    pub kana: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    #[error("bank code {0:?} must be 4 digits")]
    BankCodeFormat(String),
    #[error("branch code {0:?} must be 3 digits")]
    BranchCodeFormat(String),
    #[error("no bank has code {0}")]
    UnknownBank(String),
    #[error("bank {bank} has no branch {branch}")]
    UnknownBranch { bank: String, branch: String },
    #[error("{0:?} cannot be written in half-width katakana")]
    NotKana(String),
}

/// The list of banks and branches.
pub struct Banks {
    banks: HashMap<String, Bank>,
    branches: HashMap<(String, String), Bank>,
}

impl Banks {
    pub fn load() -> Banks {
        let mut banks = HashMap::new();
        let mut branches = HashMap::new();
        for line in DATA.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let mut fields = line.split('\t');
            let (Some(bank), Some(branch), Some(kana), Some(name)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            // The list's own kana always convert; a name that does not is left out.
            let Ok(kana) = half_width_kana(kana) else { continue };
            if branch.is_empty() {
                banks.insert(bank.to_string(), Bank { code: bank.to_string(), name: name.to_string(), kana });
            } else {
                let entry = Bank { code: branch.to_string(), name: name.to_string(), kana };
                branches.insert((bank.to_string(), branch.to_string()), entry);
            }
        }
        Banks { banks, branches }
    }

    pub fn bank(&self, code: &str) -> Result<&Bank, BankError> {
        if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BankError::BankCodeFormat(code.to_string()));
        }
        self.banks.get(code).ok_or_else(|| BankError::UnknownBank(code.to_string()))
    }

    pub fn branch(&self, bank: &str, branch: &str) -> Result<&Bank, BankError> {
        self.bank(bank)?;
        if branch.len() != 3 || !branch.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BankError::BranchCodeFormat(branch.to_string()));
        }
        self.branches
            .get(&(bank.to_string(), branch.to_string()))
            .ok_or_else(|| BankError::UnknownBranch { bank: bank.to_string(), branch: branch.to_string() })
    }
}

const FULL: &str =
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲン";
const HALF: &str = "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝ";
const VOICED: &str = "ガギグゲゴザジズゼゾダヂヅデドバビブベボ";
const VOICED_BASE: &str = "カキクケコサシスセソタチツテトハヒフヘホ";
const SEMI: &str = "パピプペポ";
const SEMI_BASE: &str = "ハヒフヘホ";
const SMALL: &str = "ァィゥェォッャュョヮ";
const SMALL_BASE: &str = "アイウエオツヤユヨワ";
const HALF_SMALL: &str = "ｧｨｩｪｫｬｭｮｯ";
const HALF_SMALL_LARGE: &str = "ｱｲｳｴｵﾔﾕﾖﾂ";

fn nth_index(set: &str, c: char) -> Option<usize> {
    set.chars().position(|x| x == c)
}

fn half_of(base: char) -> char {
    HALF.chars().nth(nth_index(FULL, base).expect("base kana in table")).expect("same length")
}

/// Full-width katakana (and hiragana, digits, Latin letters) to the half-width katakana of
/// Zengin records: voiced kana become two characters (ｶﾞ), small kana large (ｯ → ﾂ, as
/// banks register names, also when typed half-width), the long vowel a hyphen, Latin
/// upper case.
pub fn half_width_kana(text: &str) -> Result<String, BankError> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if ('ぁ'..='ゖ').contains(&c) { char::from_u32(c as u32 + 0x60).unwrap_or(c) } else { c };
        if let Some(i) = nth_index(FULL, c) {
            out.push(HALF.chars().nth(i).expect("same length"));
        } else if let Some(i) = nth_index(VOICED, c) {
            out.push(half_of(VOICED_BASE.chars().nth(i).expect("same length")));
            out.push('ﾞ');
        } else if let Some(i) = nth_index(SEMI, c) {
            out.push(half_of(SEMI_BASE.chars().nth(i).expect("same length")));
            out.push('ﾟ');
        } else if let Some(i) = nth_index(SMALL, c) {
            out.push(half_of(SMALL_BASE.chars().nth(i).expect("same length")));
        } else if c == 'ヴ' {
            out.push_str("ｳﾞ");
        } else {
            match c {
                'ー' | '－' | '—' | '‐' | '-' => out.push('-'),
                '　' | ' ' => out.push(' '),
                '（' | '(' => out.push('('),
                '）' | ')' => out.push(')'),
                '．' | '.' => out.push('.'),
                '／' | '/' => out.push('/'),
                '０'..='９' => {
                    out.push(char::from_u32(c as u32 - '０' as u32 + '0' as u32).expect("digit"))
                }
                'Ａ'..='Ｚ' => {
                    out.push(char::from_u32(c as u32 - 'Ａ' as u32 + 'A' as u32).expect("letter"))
                }
                'ａ'..='ｚ' => {
                    out.push(char::from_u32(c as u32 - 'ａ' as u32 + 'A' as u32).expect("letter"))
                }
                '0'..='9' | 'A'..='Z' => out.push(c),
                'a'..='z' => out.push(c.to_ascii_uppercase()),
                'ｰ' => out.push('-'),
                'ｧ'..='ｯ' => {
                    let i = nth_index(HALF_SMALL, c).expect("small half-width kana");
                    out.push(HALF_SMALL_LARGE.chars().nth(i).expect("same length"))
                }
                'ｦ'..='ﾟ' => out.push(c),
                _ => return Err(BankError::NotKana(text.to_string())),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kana_become_half_width() {
        assert_eq!(half_width_kana("ヤマダシヨウテン").unwrap(), "ﾔﾏﾀﾞｼﾖｳﾃﾝ");
        assert_eq!(half_width_kana("ミツビシユ－エフジエイ").unwrap(), "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ");
        assert_eq!(half_width_kana("パン　ショップ").unwrap(), "ﾊﾟﾝ ｼﾖﾂﾌﾟ");
        assert_eq!(half_width_kana("やまだ").unwrap(), "ﾔﾏﾀﾞ");
        assert_eq!(half_width_kana("ＡＢＣ１２３").unwrap(), "ABC123");
        assert_eq!(half_width_kana("ｼｮｯﾌﾟｰ").unwrap(), "ｼﾖﾂﾌﾟ-");
        assert!(half_width_kana("山田").is_err());
    }

    #[test]
    fn codes_are_checked_against_the_list() {
        let banks = Banks::load();
        assert_eq!(banks.bank("0001").unwrap().kana, "ﾐｽﾞﾎ");
        assert_eq!(banks.branch("0001", "001").unwrap().kana, "ﾄｳｷﾖｳ");
        assert_eq!(banks.bank("9999"), Err(BankError::UnknownBank("9999".into())));
        assert!(matches!(banks.bank("12a4"), Err(BankError::BankCodeFormat(_))));
        assert!(matches!(banks.branch("0001", "99"), Err(BankError::BranchCodeFormat(_))));
        assert!(matches!(banks.branch("0001", "998"), Err(BankError::UnknownBranch { .. })));
        assert!(banks.banks.len() > 1_000 && banks.branches.len() > 25_000);
    }

    mod properties {
        use proptest::prelude::*;
        use proptest::test_runner::{FileFailurePersistence, RngSeed};

        use super::super::*;

        fn config() -> ProptestConfig {
            let cases =
                std::env::var("MACHI_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1024);
            ProptestConfig {
                cases,
                rng_seed: RngSeed::Fixed(0x6d61_6368_692d_6b6e),
                failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/regressions/bank.txt"
                )))),
                ..ProptestConfig::default()
            }
        }

        /// What a Zengin name field may hold: half-width katakana without the small ones
        /// (banks register ﾂ for ッ), the voicing marks, upper-case letters, digits, space
        /// and `( ) - . /`.
        fn allowed(c: char) -> bool {
            matches!(c, 'ｦ' | 'ｱ'..='ﾝ' | 'ﾞ' | 'ﾟ' | 'A'..='Z' | '0'..='9' | ' ' | '(' | ')' | '-' | '.' | '/')
        }

        /// Names as shops type them: katakana (full- and half-width, voiced, small),
        /// hiragana, letters and digits of both widths, the symbols names use, and now
        /// and then something no Zengin record can hold.
        fn name() -> impl Strategy<Value = String> {
            let kana: Vec<char> =
                (FULL.to_string() + VOICED + SEMI + SMALL + "ヴー" + HALF + "ｧｨｩｪｫｬｭｮｯｰﾞﾟ").chars().collect();
            let other: Vec<char> = "ぁあがぱゃんＡＺａｚ０９AZaz09　 （）()．./／－-‐—".chars().collect();
            let bad: Vec<char> = "山田商店、。！!?é＆&｡｢｣､･\u{0}".chars().collect();
            let c = prop_oneof![
                12 => prop::sample::select(kana),
                6 => prop::sample::select(other),
                1 => prop::sample::select(bad),
            ];
            prop::collection::vec(c, 0..40).prop_map(|cs| cs.into_iter().collect())
        }

        proptest! {
            #![proptest_config(config())]

            /// The conversion gives only characters a Zengin record holds, or an error
            /// naming the text; what it gives converts to itself; and it is never shorter
            /// than the text (voiced kana take two characters, nothing is dropped).
            #[test]
            fn half_width_kana_is_zengin_text(text in name()) {
                match half_width_kana(&text) {
                    Ok(half) => {
                        prop_assert!(half.chars().all(allowed), "{:?} -> {:?}", text, half);
                        prop_assert_eq!(half_width_kana(&half), Ok(half.clone()), "idempotent");
                        prop_assert!(half.chars().count() >= text.chars().count());
                        let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&half);
                        prop_assert!(!unmappable);
                        prop_assert_eq!(bytes.len(), half.chars().count(), "one Shift_JIS byte each");
                    }
                    Err(e) => prop_assert_eq!(e, BankError::NotKana(text)),
                }
            }
        }
    }
}
