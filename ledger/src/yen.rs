//! Whole-yen amounts with checked arithmetic, and rates for fees.

use std::fmt;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An amount of money in whole yen. Never a float; every sum is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Yen(pub u64);

impl Yen {
    pub const ZERO: Yen = Yen(0);

    pub fn checked_add(self, other: Yen) -> Option<Yen> {
        self.0.checked_add(other.0).map(Yen)
    }

    pub fn checked_sub(self, other: Yen) -> Option<Yen> {
        self.0.checked_sub(other.0).map(Yen)
    }

    pub fn checked_mul(self, factor: u64) -> Option<Yen> {
        self.0.checked_mul(factor).map(Yen)
    }

    /// Adds where an overflow would be a broken invariant (totals bounded by issued supply).
    #[track_caller]
    pub fn plus(self, other: Yen) -> Yen {
        self.checked_add(other).expect("yen total overflowed: supply invariant broken")
    }

    /// Subtracts where going below zero would be a broken invariant.
    #[track_caller]
    pub fn minus(self, other: Yen) -> Yen {
        self.checked_sub(other).expect("yen balance went negative: invariant broken")
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Yen {
    /// Formats as people read it: `¥12,500`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "¥{}", group_thousands(self.0))
    }
}

/// `12500` → `12,500`.
pub fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseYenError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a number of yen")]
    NotANumber(String),
    #[error("amount {0:?} has a fraction of a yen; amounts are whole yen")]
    Fraction(String),
    #[error("amount {0:?} is negative")]
    Negative(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

impl FromStr for Yen {
    type Err = ParseYenError;

    /// Parses what people type: `12500`, `12,500`, `¥12,500`, `１２，５００円`.
    fn from_str(text: &str) -> Result<Yen, ParseYenError> {
        let cleaned: String = text
            .trim()
            .chars()
            .map(fold_full_width)
            .filter(|c| !matches!(c, ',' | '¥' | '￥' | '円' | ' ' | '_'))
            .collect();
        if cleaned.is_empty() {
            return Err(ParseYenError::Empty);
        }
        // Digits only, so no fraction of any length can be rounded away: `12500.00` is
        // whole yen, `0.9999…` is a fraction however many nines it has.
        let (negative, digits) = match cleaned.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, cleaned.as_str()),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
            return Err(ParseYenError::NotANumber(text.to_string()));
        }
        let zero = whole.bytes().all(|b| b == b'0') && fraction.bytes().all(|b| b == b'0');
        if negative && !zero {
            return Err(ParseYenError::Negative(text.to_string()));
        }
        if fraction.bytes().any(|b| b != b'0') {
            return Err(ParseYenError::Fraction(text.to_string()));
        }
        let whole = whole.trim_start_matches('0');
        if whole.is_empty() {
            return Ok(Yen::ZERO);
        }
        whole.parse::<u64>().map(Yen).map_err(|_| ParseYenError::TooLarge(text.to_string()))
    }
}

fn fold_full_width(c: char) -> char {
    match c {
        '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
        '，' => ',',
        '．' => '.',
        _ => c,
    }
}

/// A rate in basis points (1 bp = 0.01%), as stored on chain: fixed width, exact.
/// Arithmetic with it goes through `rust_decimal`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct RateBp(pub u32);

impl RateBp {
    pub const MAX: RateBp = RateBp(10_000);

    pub fn as_decimal(self) -> Decimal {
        Decimal::new(i64::from(self.0), 4)
    }

    /// The fee on `amount` at this rate, rounded down to the yen.
    pub fn fee_on(self, amount: Yen) -> Yen {
        let fee = (Decimal::from(amount.0) * self.as_decimal()).floor();
        let fee = fee.to_u64().expect("fee at a rate of at most 100% fits in u64");
        assert!(fee <= amount.0, "fee larger than the amount it is taken from");
        Yen(fee)
    }
}

impl fmt::Display for RateBp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", (self.as_decimal() * Decimal::from(100)).normalize())
    }
}

impl FromStr for RateBp {
    type Err = String;

    /// Parses `0.5%`, `0.005` or `2%`.
    fn from_str(text: &str) -> Result<RateBp, String> {
        let text = text.trim();
        let (number, scale) = match text.strip_suffix('%') {
            Some(n) => (n.trim(), Decimal::from(100)),
            None => (text, Decimal::ONE),
        };
        let value = Decimal::from_str(number).map_err(|_| format!("rate {text:?} is not a number"))?;
        let out_of_range = || format!("rate {text:?} must be between 0% and 100%");
        // Checked: a number near Decimal's limit (about 7.9e28) would overflow.
        let bp = (value / scale).checked_mul(Decimal::from(10_000)).ok_or_else(out_of_range)?;
        if bp.fract() != Decimal::ZERO {
            return Err(format!("rate {text:?} is finer than 0.01%"));
        }
        match bp.to_u32() {
            Some(bp) if bp <= RateBp::MAX.0 => Ok(RateBp(bp)),
            _ => Err(out_of_range()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_parse(text: &str, expected: Result<u64, ()>) {
        assert_eq!(text.parse::<Yen>().map(|y| y.0).map_err(|_| ()), expected, "{text}");
    }

    #[test]
    fn parses_what_people_type() {
        check_parse("12500", Ok(12_500));
        check_parse("12,500", Ok(12_500));
        check_parse("¥12500", Ok(12_500));
        check_parse(" ￥12,500円 ", Ok(12_500));
        check_parse("１２，５００", Ok(12_500));
        check_parse("12500.00", Ok(12_500));
        check_parse("12500.5", Err(()));
        check_parse("-1", Err(()));
        check_parse("", Err(()));
        check_parse("abc", Err(()));
        check_parse("99999999999999999999999", Err(()));
        check_parse("18446744073709551615", Ok(u64::MAX));
        check_parse("18446744073709551616", Err(()));
        // A fraction is a fraction however long: none is rounded away.
        check_parse("0.99999999999999999999999999999", Err(()));
        check_parse("7923.00000000000000000000000001", Err(()));
        check_parse("18446744073709551615.0000000001", Err(()));
        check_parse("12500.000000000000000000000000000000", Ok(12_500));
        check_parse(".", Err(()));
        check_parse("1.2.3", Err(()));
        check_parse("-0", Ok(0));
    }

    #[test]
    fn displays_with_separators() {
        assert_eq!(Yen(12_500).to_string(), "¥12,500");
        assert_eq!(Yen(0).to_string(), "¥0");
        assert_eq!(Yen(1_000_000).to_string(), "¥1,000,000");
        assert_eq!(Yen(999).to_string(), "¥999");
    }

    #[test]
    fn fee_rounds_down() {
        let rate: RateBp = "0.5%".parse().unwrap();
        assert_eq!(rate, RateBp(50));
        assert_eq!(rate.fee_on(Yen(12_345)), Yen(61)); // 61.725 → 61
        assert_eq!(RateBp(0).fee_on(Yen(12_345)), Yen(0));
        assert_eq!(RateBp::MAX.fee_on(Yen(7)), Yen(7));
        assert_eq!("0.012".parse::<RateBp>(), Ok(RateBp(120)));
        assert!("0.001%".parse::<RateBp>().is_err());
        assert!("101%".parse::<RateBp>().is_err());
        // Near Decimal's limit: a clear error, not an overflow panic.
        assert!("79228162514264337593543950335".parse::<RateBp>().is_err());
        assert!("79228162514264337593543950335%".parse::<RateBp>().is_err());
        assert!("-0.5%".parse::<RateBp>().is_err());
    }

    #[test]
    fn checked_arithmetic_refuses_overflow() {
        assert_eq!(Yen(u64::MAX).checked_add(Yen(1)), None);
        assert_eq!(Yen(1).checked_sub(Yen(2)), None);
        assert_eq!(Yen(u64::MAX).checked_mul(2), None);
    }
}
