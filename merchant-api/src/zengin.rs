//! The 総合振込 (general transfer) file of the Zengin format: fixed 120-byte records in
//! Shift_JIS with CRLF — header (1), one data record per payee (2), trailer (8), end
//! (9); 種別コード 21, コード区分 0. Numbers are right-aligned and zero-filled, text is
//! left-aligned and space-filled, names are half-width katakana.

use machi_ledger::Yen;

use crate::bank::half_width_kana;

pub const RECORD_BYTES: usize = 120;
/// Most payees in one file (the trailer's count has 6 digits).
pub const TRANSFERS_MAX: usize = 999_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZenginError {
    #[error("{field} {value:?} does not fit in {width} digits")]
    NumberTooLong { field: &'static str, value: String, width: usize },
    #[error("{field} {value:?} is longer than {width} half-width characters")]
    TextTooLong { field: &'static str, value: String, width: usize },
    #[error("{field} {value:?} has characters a Zengin record cannot hold")]
    BadText { field: &'static str, value: String },
    #[error("transfer date {0:?} is not YYYY-MM-DD")]
    BadDate(String),
    #[error("a settlement needs 1 to {TRANSFERS_MAX} transfers")]
    TransferCount,
    #[error("the total does not fit in 12 digits")]
    TotalTooLarge,
}

/// The town: who sends the money, from which account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originator {
    /// 振込依頼人コード, 10 digits, given by the town's bank.
    pub requester_code: String,
    pub name_kana: String,
    pub bank_code: String,
    pub bank_kana: String,
    pub branch_code: String,
    pub branch_kana: String,
    /// 1 普通, 2 当座, 4 貯蓄.
    pub account_type: u8,
    pub account_number: String,
}

/// One shop's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub bank_code: String,
    pub bank_kana: String,
    pub branch_code: String,
    pub branch_kana: String,
    pub account_type: u8,
    pub account_number: String,
    pub holder_kana: String,
    pub amount: Yen,
    /// 顧客コード1: lets the town match the bank's report to a shop.
    pub customer_code: String,
}

pub struct ZenginFile;

fn number(field: &'static str, value: &str, width: usize) -> Result<String, ZenginError> {
    if value.len() > width || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ZenginError::NumberTooLong { field, value: value.to_string(), width });
    }
    Ok(format!("{value:0>width$}"))
}

/// Left-aligned, space-filled half-width text; `truncate` for names that are only for
/// people reading the bank's report (bank and branch names).
fn text(field: &'static str, value: &str, width: usize, truncate: bool) -> Result<String, ZenginError> {
    let half =
        half_width_kana(value).map_err(|_| ZenginError::BadText { field, value: value.to_string() })?;
    let mut chars: Vec<char> = half.chars().collect();
    if chars.len() > width {
        if !truncate {
            return Err(ZenginError::TextTooLong { field, value: value.to_string(), width });
        }
        chars.truncate(width);
    }
    let mut out: String = chars.into_iter().collect();
    out.extend(std::iter::repeat_n(' ', width - out.chars().count()));
    Ok(out)
}

fn spaces(width: usize) -> String {
    " ".repeat(width)
}

impl ZenginFile {
    /// Builds the file for `transfer_date` (`YYYY-MM-DD`; the file holds MMDD).
    pub fn build(
        originator: &Originator,
        transfer_date: &str,
        transfers: &[Transfer],
    ) -> Result<Vec<u8>, ZenginError> {
        if transfers.is_empty() || transfers.len() > TRANSFERS_MAX {
            return Err(ZenginError::TransferCount);
        }
        if machi_ledger::time::parse_date(transfer_date).is_none() {
            return Err(ZenginError::BadDate(transfer_date.to_string()));
        }
        let mmdd = format!("{}{}", &transfer_date[5..7], &transfer_date[8..10]);
        let o = originator;
        let mut records = vec![[
            "1".to_string(),
            "21".into(),
            "0".into(),
            number("requester_code", &o.requester_code, 10)?,
            text("originator name", &o.name_kana, 40, false)?,
            mmdd,
            number("bank_code", &o.bank_code, 4)?,
            text("bank name", &o.bank_kana, 15, true)?,
            number("branch_code", &o.branch_code, 3)?,
            text("branch name", &o.branch_kana, 15, true)?,
            number("account_type", &o.account_type.to_string(), 1)?,
            number("account_number", &o.account_number, 7)?,
            spaces(17),
        ]
        .concat()];
        let mut total = Yen::ZERO;
        for t in transfers {
            total = total.checked_add(t.amount).ok_or(ZenginError::TotalTooLarge)?;
            records.push(
                [
                    "2".to_string(),
                    number("bank_code", &t.bank_code, 4)?,
                    text("bank name", &t.bank_kana, 15, true)?,
                    number("branch_code", &t.branch_code, 3)?,
                    text("branch name", &t.branch_kana, 15, true)?,
                    spaces(4), // 手形交換所番号: not used
                    number("account_type", &t.account_type.to_string(), 1)?,
                    number("account_number", &t.account_number, 7)?,
                    text("holder name", &t.holder_kana, 30, false)?,
                    number("amount", &t.amount.0.to_string(), 10)?,
                    "0".into(), // 新規コード
                    text("customer code", &t.customer_code, 10, false)?,
                    spaces(10), // 顧客コード2
                    "7".into(), // 振込指定区分: 電信
                    " ".into(), // 識別表示
                    spaces(7),
                ]
                .concat(),
            );
        }
        if total.0 > 999_999_999_999 {
            return Err(ZenginError::TotalTooLarge);
        }
        records.push(
            [
                "8".to_string(),
                number("count", &transfers.len().to_string(), 6)?,
                number("total", &total.0.to_string(), 12)?,
                spaces(101),
            ]
            .concat(),
        );
        records.push(["9".to_string(), spaces(119)].concat());
        let mut out = Vec::with_capacity(records.len() * (RECORD_BYTES + 2));
        for record in records {
            let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&record);
            assert!(!unmappable, "half-width text always maps to Shift_JIS");
            assert_eq!(bytes.len(), RECORD_BYTES, "a Zengin record is 120 bytes: {record:?}");
            out.extend_from_slice(&bytes);
            out.extend_from_slice(b"\r\n");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn town() -> Originator {
        Originator {
            requester_code: "1234567890".into(),
            name_kana: "バンダイマチ".into(),
            bank_code: "0001".into(),
            bank_kana: "ミズホ".into(),
            branch_code: "001".into(),
            branch_kana: "トウキヨウ".into(),
            account_type: 1,
            account_number: "1234567".into(),
        }
    }

    fn shop(amount: u64, holder: &str) -> Transfer {
        Transfer {
            bank_code: "0005".into(),
            bank_kana: "ミツビシユ－エフジエイ".into(),
            branch_code: "001".into(),
            branch_kana: "ホンテン".into(),
            account_type: 1,
            account_number: "7654321".into(),
            holder_kana: holder.into(),
            amount: Yen(amount),
            customer_code: "SHOP0001".into(),
        }
    }

    /// Field `[from, from + len)` of record `n`, decoded.
    fn field(file: &[u8], n: usize, from: usize, len: usize) -> String {
        let record = &file[n * 122..n * 122 + 120];
        encoding_rs::SHIFT_JIS.decode(&record[from..from + len]).0.into_owned()
    }

    #[test]
    fn records_are_120_bytes_with_crlf_and_fields_in_place() {
        let file = ZenginFile::build(
            &town(),
            "2027-02-10",
            &[shop(67_320, "ヤマダシヨウテン"), shop(49_500, "カ）スーパーマチ")],
        )
        .unwrap();
        assert_eq!(file.len(), 5 * 122);
        for n in 0..5 {
            assert_eq!(&file[n * 122 + 120..n * 122 + 122], b"\r\n");
        }
        let kinds: Vec<u8> = (0..5).map(|n| file[n * 122]).collect();
        assert_eq!(kinds, b"12289");
        // Header.
        assert_eq!(field(&file, 0, 1, 2), "21");
        assert_eq!(field(&file, 0, 3, 1), "0");
        assert_eq!(field(&file, 0, 4, 10), "1234567890");
        assert_eq!(field(&file, 0, 14, 40).trim_end(), "ﾊﾞﾝﾀﾞｲﾏﾁ");
        assert_eq!(field(&file, 0, 54, 4), "0210");
        assert_eq!(field(&file, 0, 58, 4), "0001");
        assert_eq!(field(&file, 0, 62, 15), "ﾐｽﾞﾎ           ");
        assert_eq!(field(&file, 0, 77, 3), "001");
        assert_eq!(field(&file, 0, 95, 1), "1");
        assert_eq!(field(&file, 0, 96, 7), "1234567");
        // Data: bank name cut at 15, amount zero-filled, holder in half-width kana.
        assert_eq!(field(&file, 1, 1, 4), "0005");
        assert_eq!(field(&file, 1, 5, 15), "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ  ");
        assert_eq!(field(&file, 1, 42, 1), "1");
        assert_eq!(field(&file, 1, 43, 7), "7654321");
        assert_eq!(field(&file, 1, 50, 30).trim_end(), "ﾔﾏﾀﾞｼﾖｳﾃﾝ");
        assert_eq!(field(&file, 1, 80, 10), "0000067320");
        assert_eq!(field(&file, 2, 50, 30).trim_end(), "ｶ)ｽ-ﾊﾟ-ﾏﾁ");
        // Trailer: count and total; then the end record.
        assert_eq!(field(&file, 3, 1, 6), "000002");
        assert_eq!(field(&file, 3, 7, 12), "000000116820");
        assert_eq!(file[4 * 122], b'9');
        assert!(file[4 * 122 + 1..4 * 122 + 120].iter().all(|b| *b == b' '));
        // Half-width katakana are single Shift_JIS bytes (ﾔ = 0xD4).
        assert_eq!(file[122 + 50], 0xD4);
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            ZenginFile::build(&town(), "2027-02-30", &[shop(1, "ﾔﾏﾀﾞ")]),
            Err(ZenginError::BadDate("2027-02-30".into()))
        );
        assert_eq!(ZenginFile::build(&town(), "2027-02-10", &[]), Err(ZenginError::TransferCount));
        assert!(matches!(
            ZenginFile::build(&town(), "2027-02-10", &[shop(1, "山田商店")]),
            Err(ZenginError::BadText { .. })
        ));
        assert!(matches!(
            ZenginFile::build(&town(), "2027-02-10", &[shop(10_000_000_000, "ﾔﾏﾀﾞ")]),
            Err(ZenginError::NumberTooLong { .. })
        ));
        let long = "ア".repeat(31);
        assert!(matches!(
            ZenginFile::build(&town(), "2027-02-10", &[shop(1, &long)]),
            Err(ZenginError::TextTooLong { .. })
        ));
    }

    mod properties {
        use proptest::prelude::*;
        use proptest::test_runner::{FileFailurePersistence, RngSeed};

        use super::super::*;

        fn config() -> ProptestConfig {
            let cases =
                std::env::var("MACHI_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
            ProptestConfig {
                cases,
                rng_seed: RngSeed::Fixed(0x6d61_6368_692d_7a67),
                failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/regressions/zengin.txt"
                )))),
                ..ProptestConfig::default()
            }
        }

        /// Names in katakana or letters as a shop registers them, of any length up to a
        /// little past what the field holds once half-width (voiced kana take two).
        fn kana(chars: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
            let alphabet: Vec<char> =
                "アイウカキクガギグパピプッャヴーやまだＡＢ０１AZ09 ()（）-./".chars().collect();
            prop::collection::vec(prop::sample::select(alphabet), chars)
                .prop_map(|cs| cs.into_iter().collect())
        }

        fn digits(width: usize) -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(b"0123456789".to_vec()), 1..=width)
                .prop_map(|d| String::from_utf8(d).expect("digits"))
        }

        fn transfer() -> impl Strategy<Value = Transfer> {
            let bank = (digits(4), kana(1..=20), digits(3), kana(1..=20));
            let account = (prop::sample::select(vec![1u8, 2, 4]), digits(7), kana(1..=27));
            let amount = prop_oneof![1..10_000u64, 1..=9_999_999_999u64];
            let code = "[A-Z0-9]{0,10}";
            (bank, account, amount, code).prop_map(|(bank, account, amount, customer_code)| Transfer {
                bank_code: bank.0,
                bank_kana: bank.1,
                branch_code: bank.2,
                branch_kana: bank.3,
                account_type: account.0,
                account_number: account.1,
                holder_kana: account.2,
                amount: Yen(amount),
                customer_code,
            })
        }

        fn originator() -> impl Strategy<Value = Originator> {
            let bank = (digits(4), kana(1..=20), digits(3), kana(1..=20));
            (digits(10), kana(1..=30), bank, digits(7)).prop_map(
                |(requester_code, name_kana, bank, account_number)| Originator {
                    requester_code,
                    name_kana,
                    bank_code: bank.0,
                    bank_kana: bank.1,
                    branch_code: bank.2,
                    branch_kana: bank.3,
                    account_type: 1,
                    account_number,
                },
            )
        }

        fn half_len(text: &str) -> usize {
            half_width_kana(text).expect("the alphabet converts").chars().count()
        }

        /// Record `n`'s bytes `[from, from + len)`, decoded.
        fn field(file: &[u8], n: usize, from: usize, len: usize) -> String {
            let record = &file[n * 122..n * 122 + 120];
            encoding_rs::SHIFT_JIS.decode(&record[from..from + len]).0.into_owned()
        }

        proptest! {
            #![proptest_config(config())]

            /// A file is built exactly when every name fits its field; then every record
            /// is 120 single Shift_JIS bytes (ASCII or half-width katakana) and CRLF, the
            /// records are header, one per transfer, trailer and end, each data record
            /// holds its amount and holder, and the trailer's count and total are the
            /// transfers' count and sum.
            #[test]
            fn files_are_fixed_records_with_true_totals(
                town in originator(),
                transfers in prop::collection::vec(transfer(), 1..12),
                day in 1..=28u32,
            ) {
                let date = format!("2027-03-{day:02}");
                let built = ZenginFile::build(&town, &date, &transfers);
                let too_long = half_len(&town.name_kana) > 40 || transfers.iter().any(|t| half_len(&t.holder_kana) > 30);
                let file = match built {
                    Ok(file) => file,
                    Err(ZenginError::TextTooLong { .. }) if too_long => return Ok(()),
                    Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
                };
                prop_assert!(!too_long, "a name longer than its field was written");
                let records = transfers.len() + 3;
                prop_assert_eq!(file.len(), records * (RECORD_BYTES + 2));
                for n in 0..records {
                    let record = &file[n * 122..n * 122 + 122];
                    prop_assert_eq!(&record[120..], b"\r\n");
                    prop_assert!(
                        record[..120].iter().all(|&b| (0x20..=0x7e).contains(&b) || (0xa1..=0xdf).contains(&b)),
                        "record {} holds a byte outside ASCII and half-width katakana", n
                    );
                }
                let kinds: Vec<u8> = (0..records).map(|n| file[n * 122]).collect();
                let mut expected = vec![b'1'];
                expected.extend(std::iter::repeat_n(b'2', transfers.len()));
                expected.extend([b'8', b'9']);
                prop_assert_eq!(kinds, expected);
                prop_assert_eq!(field(&file, 0, 54, 4), format!("03{day:02}"));
                let mut sum = 0u64;
                for (i, t) in transfers.iter().enumerate() {
                    let amount: u64 = field(&file, i + 1, 80, 10).parse().unwrap();
                    prop_assert_eq!(amount, t.amount.0);
                    sum += amount;
                    let holder = half_width_kana(&t.holder_kana).unwrap();
                    let written = field(&file, i + 1, 50, 30);
                    prop_assert_eq!(written.trim_end(), holder.trim_end());
                    let bank = half_width_kana(&t.bank_kana).unwrap();
                    let shown: String = bank.chars().take(15).collect();
                    let written = field(&file, i + 1, 5, 15);
                    prop_assert_eq!(written.trim_end(), shown.trim_end(), "bank names are cut at 15");
                }
                let count: usize = field(&file, records - 2, 1, 6).parse().unwrap();
                let total: u64 = field(&file, records - 2, 7, 12).parse().unwrap();
                prop_assert_eq!(count, transfers.len());
                prop_assert_eq!(total, sum);
            }

            /// A text field is its half-width text padded to the width, or, when the text
            /// is longer, an error (names) or its first characters (bank names).
            #[test]
            fn text_fields_fit_their_width_or_are_refused(value in kana(0..=40), width in 1..=40usize) {
                let half = half_width_kana(&value).unwrap();
                let fits = half.chars().count() <= width;
                match text("holder name", &value, width, false) {
                    Ok(field) => {
                        prop_assert!(fits);
                        prop_assert_eq!(field.chars().count(), width);
                        prop_assert_eq!(field.trim_end_matches(' '), half.trim_end_matches(' '));
                    }
                    Err(e) => {
                        prop_assert!(!fits);
                        prop_assert_eq!(e, ZenginError::TextTooLong { field: "holder name", value: value.clone(), width });
                    }
                }
                let cut = text("bank name", &value, width, true).unwrap();
                prop_assert_eq!(cut.chars().count(), width);
                let first: String = half.chars().take(width).collect();
                prop_assert_eq!(cut.trim_end_matches(' '), first.trim_end_matches(' '));
            }
        }
    }
}
