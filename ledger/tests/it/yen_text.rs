//! Properties of yen as people type them (`Yen::from_str`): every amount shown comes back
//! as the same amount in every form a person might type it, fractions, negatives and
//! amounts past `u64` are refused with their own error, and no text makes parsing panic.
//!
//! Fixed seed; `MACHI_PROPTEST_CASES` runs more cases. A failing case's seed is saved in
//! `ledger/tests/regressions/yen_text.txt` and tried first on every later run.

use machi_ledger::{group_thousands, ParseYenError, Yen};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

fn config() -> ProptestConfig {
    let cases = std::env::var("MACHI_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1024);
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x6d61_6368_692d_796e),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/regressions/yen_text.txt"
        )))),
        ..ProptestConfig::default()
    }
}

/// Amounts of every size: small ones, round ones and any `u64`.
fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![0..100_000u64, (0..20u32).prop_map(|p| 10u64.pow(p)), any::<u64>()]
}

/// How a person writes a number: grouped or not, full-width or not, with a yen sign or
/// 円, spaces around, and zero decimals.
#[derive(Clone, Debug)]
struct Style {
    grouped: bool,
    full_width: bool,
    sign: Option<char>,
    suffix: bool,
    zero_decimals: usize,
    spaces: (usize, usize),
}

fn style() -> impl Strategy<Value = Style> {
    let sign = prop_oneof![Just(None), Just(Some('¥')), Just(Some('￥'))];
    (any::<bool>(), any::<bool>(), sign, any::<bool>(), 0..4usize, (0..3usize, 0..3usize)).prop_map(
        |(grouped, full_width, sign, suffix, zero_decimals, spaces)| Style {
            grouped,
            full_width,
            sign,
            suffix,
            zero_decimals,
            spaces,
        },
    )
}

fn full_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 - '0' as u32 + '０' as u32).expect("digit"),
            ',' => '，',
            '.' => '．',
            _ => c,
        })
        .collect()
}

fn write(amount: u64, style: &Style) -> String {
    let mut number = if style.grouped { group_thousands(amount) } else { amount.to_string() };
    if style.zero_decimals > 0 {
        number.push('.');
        number.push_str(&"0".repeat(style.zero_decimals));
    }
    if style.full_width {
        number = full_width(&number);
    }
    let mut out = " ".repeat(style.spaces.0);
    out.extend(style.sign);
    out.push_str(&number);
    if style.suffix {
        out.push('円');
    }
    out.push_str(&" ".repeat(style.spaces.1));
    out
}

/// The characters amounts are made of, and some that are not.
fn junk() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = "0123456789０１２９,，.．¥￥円 _-+eE\u{3000}a一".chars().collect();
    prop_oneof![
        prop::collection::vec(prop::sample::select(alphabet), 0..40).prop_map(|cs| cs.into_iter().collect()),
        "\\PC{0,40}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// What the wallet shows (`¥12,500`) parses back to the same amount.
    #[test]
    fn shown_amounts_parse_back(amount in amount()) {
        prop_assert_eq!(Yen(amount).to_string().parse::<Yen>(), Ok(Yen(amount)));
    }

    /// `12500`, `12,500`, `¥12,500`, `１２，５００円`, ` 12500.00 `: the same amount.
    #[test]
    fn typed_amounts_parse(amount in amount(), style in style()) {
        let text = write(amount, &style);
        prop_assert_eq!(text.parse::<Yen>(), Ok(Yen(amount)), "{:?}", text);
    }

    /// A fraction of a yen is refused however far after the point it is: none is rounded
    /// away (a decimal of 28 digits once rounded `0.999…9` up to ¥1).
    #[test]
    fn fractions_are_refused(amount in amount(), zeros in 0..64usize, digit in 1..=9u8, style in style()) {
        let text = format!("{}.{}{}", write(amount, &Style { suffix: false, zero_decimals: 0, spaces: (0, 0), ..style }), "0".repeat(zeros), digit);
        prop_assert!(matches!(text.parse::<Yen>(), Err(ParseYenError::Fraction(_))), "{:?}: {:?}", text, text.parse::<Yen>());
    }

    /// A negative amount is refused as negative.
    #[test]
    fn negatives_are_refused(amount in 1..=u64::MAX, style in style()) {
        let text = format!("-{}", write(amount, &Style { sign: None, spaces: (0, 0), ..style }));
        prop_assert_eq!(text.parse::<Yen>(), Err(ParseYenError::Negative(text.clone())));
    }

    /// Amounts past `u64` are refused as too large.
    #[test]
    fn amounts_past_u64_are_refused(over in 1..=u64::MAX, grouped in any::<bool>()) {
        let value = u128::from(u64::MAX) + u128::from(over);
        let digits = value.to_string();
        let text = if grouped {
            let head = digits.len() % 3;
            let mut out = digits[..head].to_string();
            for chunk in digits.as_bytes()[head..].chunks(3) {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(std::str::from_utf8(chunk).unwrap());
            }
            out
        } else {
            digits
        };
        prop_assert_eq!(text.parse::<Yen>(), Err(ParseYenError::TooLarge(text.clone())));
    }

    /// No text makes parsing panic, and whatever parses shows and parses back the same.
    #[test]
    fn junk_never_panics(text in junk()) {
        if let Ok(yen) = text.parse::<Yen>() {
            prop_assert_eq!(yen.to_string().parse::<Yen>(), Ok(yen));
        }
    }
}
