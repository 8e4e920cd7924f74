//! Money as integers: micro-USD (one millionth of a dollar) in an `i64`.
//!
//! No floating point is used for amounts anywhere: input is parsed exactly from
//! its decimal text (a JSON number keeps its text because the workspace enables
//! serde_json's `arbitrary_precision`), arithmetic is checked integer
//! arithmetic, and `balance_usd` is rendered by integer rounding to cents.
//!
//! Rounding to cents is half away from zero, the seed's "half-up" rule
//! (1.005 -> 1.01, 12.345 -> 12.35, 12.344 -> 12.34) extended symmetrically to
//! negative balances (-1.005 -> -1.01).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Micro-USD per US dollar.
pub const MICROS_PER_USD: i64 = 1_000_000;
const MICROS_PER_CENT: i64 = 10_000;
/// Longest decimal text accepted; anything longer is hostile or a mistake.
const MAX_INPUT_LEN: usize = 64;

/// An exact amount of US dollars, in micro-USD. May be negative (a balance
/// below zero, a burn entry); operations that need a positive amount use
/// [`MicroUsd::require_positive`].
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MicroUsd(i64);

/// Why a text is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not a plain decimal number.
    #[error("amount must be a decimal number such as 12.5 or \"12.50\"")]
    NotANumber,
    /// More than six non-zero decimals: a micro-USD cannot hold it.
    #[error("amount has more than 6 decimals; the smallest unit is 0.000001 USD")]
    TooPrecise,
    /// Outside the range of an `i64` of micro-USD.
    #[error("amount is too large")]
    Overflow,
    /// Zero or negative where a positive amount is required.
    #[error("{0} must be greater than zero")]
    NotPositive(&'static str),
}

impl MicroUsd {
    /// Zero dollars.
    pub const ZERO: MicroUsd = MicroUsd(0);

    /// Wraps a raw micro-USD count.
    pub const fn from_micros(micros: i64) -> Self {
        MicroUsd(micros)
    }

    /// Whole dollars, for configuration defaults.
    pub const fn from_usd(usd: i64) -> Self {
        MicroUsd(usd * MICROS_PER_USD)
    }

    /// The raw micro-USD count.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Checked addition.
    pub fn checked_add(self, other: MicroUsd) -> Result<MicroUsd, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(MicroUsd)
            .ok_or(MoneyError::Overflow)
    }

    /// Checked subtraction.
    pub fn checked_sub(self, other: MicroUsd) -> Result<MicroUsd, MoneyError> {
        self.0
            .checked_sub(other.0)
            .map(MicroUsd)
            .ok_or(MoneyError::Overflow)
    }

    /// Checked negation.
    pub fn checked_neg(self) -> Result<MicroUsd, MoneyError> {
        self.0
            .checked_neg()
            .map(MicroUsd)
            .ok_or(MoneyError::Overflow)
    }

    /// Refuses zero and negative amounts with `"{field} must be greater than zero"`.
    pub fn require_positive(self, field: &'static str) -> Result<MicroUsd, MoneyError> {
        if self.0 > 0 {
            Ok(self)
        } else {
            Err(MoneyError::NotPositive(field))
        }
    }

    /// Whole cents, rounded half away from zero.
    pub const fn rounded_cents(self) -> i64 {
        let magnitude =
            (self.0.unsigned_abs() + (MICROS_PER_CENT as u64 / 2)) / MICROS_PER_CENT as u64;
        // |i64::MIN| / 10_000 fits in an i64, so the cast cannot wrap.
        let magnitude = magnitude as i64;
        if self.0 < 0 {
            -magnitude
        } else {
            magnitude
        }
    }

    /// The amount rounded to cents as text with exactly two decimals: `"12.35"`.
    pub fn format_cents(self) -> String {
        let cents = self.rounded_cents();
        let sign = if cents < 0 { "-" } else { "" };
        let abs = cents.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }

    /// The amount rounded to cents as a JSON number (`12.35`, `10`, `-0.5`),
    /// the seed's `balance_usd`. Built from decimal text, never from a float.
    pub fn to_rounded_usd_json(self) -> serde_json::Value {
        let text = self.format_cents();
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        let trimmed = if trimmed.is_empty() || trimmed == "-" {
            "0"
        } else {
            trimmed
        };
        let number: serde_json::Number = trimmed
            .parse()
            .unwrap_or_else(|_| serde_json::Number::from(0));
        serde_json::Value::Number(number)
    }

    /// The exact amount as a JSON number (`-1.234567`), from decimal text.
    pub fn to_exact_usd_json(self) -> serde_json::Value {
        let number: serde_json::Number = self
            .to_string()
            .parse()
            .unwrap_or_else(|_| serde_json::Number::from(self.0));
        serde_json::Value::Number(number)
    }

    /// Parses an exact decimal text: an optional sign, digits, an optional
    /// fraction and an optional exponent (`12`, `-0.5`, `1.25e2`). At most six
    /// significant decimals; no `NaN`, no infinities, no overflow.
    pub fn parse_decimal(input: &str) -> Result<MicroUsd, MoneyError> {
        let text = input.trim();
        if text.is_empty() || text.len() > MAX_INPUT_LEN {
            return Err(MoneyError::NotANumber);
        }
        let (negative, rest) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], parse_exponent(&rest[at + 1..])?),
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) if !f.is_empty() => (i, f),
            Some(_) => return Err(MoneyError::NotANumber),
            None => (mantissa, ""),
        };
        if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
            return Err(MoneyError::NotANumber);
        }
        // value = digits * 10^(exponent - frac_len); we want value * 10^6.
        let digits = int_part.bytes().chain(frac_part.bytes());
        let scale = 6 + exponent - frac_part.len() as i64;
        let mut value: i128 = 0;
        let mut dropped_nonzero = false;
        let digit_count = int_part.len() + frac_part.len();
        let keep = (digit_count as i64 + scale.min(0)).max(0) as usize;
        for (index, digit) in digits.enumerate() {
            let d = i128::from(digit - b'0');
            if index < keep {
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(d))
                    .ok_or(MoneyError::Overflow)?;
            } else if d != 0 {
                dropped_nonzero = true;
            }
        }
        if dropped_nonzero {
            return Err(MoneyError::TooPrecise);
        }
        for _ in 0..scale.max(0) {
            value = value.checked_mul(10).ok_or(MoneyError::Overflow)?;
            if value > i128::from(i64::MAX) {
                return Err(MoneyError::Overflow);
            }
        }
        let value = if negative { -value } else { value };
        i64::try_from(value)
            .map(MicroUsd)
            .map_err(|_| MoneyError::Overflow)
    }

    /// Parses a JSON value that is either a number or a decimal string.
    pub fn from_json(value: &serde_json::Value) -> Result<MicroUsd, MoneyError> {
        match value {
            serde_json::Value::Number(n) => Self::parse_decimal(&n.to_string()),
            serde_json::Value::String(s) => Self::parse_decimal(s),
            _ => Err(MoneyError::NotANumber),
        }
    }

    /// A serde `deserialize_with` helper accepting a JSON number or a decimal
    /// string, exactly: `#[serde(deserialize_with = "MicroUsd::deserialize_usd")]`.
    pub fn deserialize_usd<'de, D: Deserializer<'de>>(d: D) -> Result<MicroUsd, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_exponent(text: &str) -> Result<i64, MoneyError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    // An exponent beyond 3 digits can only overflow or lose precision.
    if digits.is_empty() || digits.len() > 3 || !all_digits(digits) {
        return Err(if digits.len() > 3 && all_digits(digits) {
            MoneyError::Overflow
        } else {
            MoneyError::NotANumber
        });
    }
    let magnitude: i64 = digits.parse().map_err(|_| MoneyError::NotANumber)?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// Exact decimal USD, e.g. `12.345678`, `-0.5`, `10`.
impl fmt::Display for MicroUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / MICROS_PER_USD as u64;
        let frac = abs % MICROS_PER_USD as u64;
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let frac = format!("{frac:06}");
            write!(f, "{sign}{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl FromStr for MicroUsd {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_decimal(s)
    }
}

#[cfg(test)]
mod tests {
    use super::{MicroUsd, MoneyError};

    fn usd(s: &str) -> MicroUsd {
        MicroUsd::parse_decimal(s).unwrap()
    }

    #[test]
    fn the_seeds_three_rounding_cases() {
        assert_eq!(usd("1.005").format_cents(), "1.01");
        assert_eq!(usd("12.345").format_cents(), "12.35");
        assert_eq!(usd("12.344").format_cents(), "12.34");
    }

    #[test]
    fn rounding_is_half_away_from_zero_at_every_boundary() {
        assert_eq!(usd("0.004999").rounded_cents(), 0);
        assert_eq!(usd("0.005").rounded_cents(), 1);
        assert_eq!(usd("-0.005").rounded_cents(), -1);
        assert_eq!(usd("-1.005").format_cents(), "-1.01");
        assert_eq!(usd("-0.004").format_cents(), "0.00");
        assert_eq!(usd("0").format_cents(), "0.00");
        assert_eq!(
            MicroUsd::from_micros(i64::MAX).rounded_cents(),
            922_337_203_685_478
        );
        assert_eq!(
            MicroUsd::from_micros(i64::MIN).rounded_cents(),
            -922_337_203_685_478
        );
    }

    #[test]
    fn balance_usd_is_a_json_number_built_without_floats() {
        assert_eq!(usd("12.345").to_rounded_usd_json().to_string(), "12.35");
        assert_eq!(usd("10").to_rounded_usd_json().to_string(), "10");
        assert_eq!(usd("10.1").to_rounded_usd_json().to_string(), "10.1");
        assert_eq!(usd("-0.5").to_rounded_usd_json().to_string(), "-0.5");
        assert_eq!(usd("0.001").to_rounded_usd_json().to_string(), "0");
        assert_eq!(usd("-0.001").to_rounded_usd_json().to_string(), "0");
    }

    #[test]
    fn decimal_text_parses_exactly() {
        assert_eq!(usd("1").micros(), 1_000_000);
        assert_eq!(usd(" 12.5 ").micros(), 12_500_000);
        assert_eq!(usd("0.000001").micros(), 1);
        assert_eq!(usd("-3.25").micros(), -3_250_000);
        assert_eq!(usd("+3").micros(), 3_000_000);
        assert_eq!(usd("1.25e2").micros(), 125_000_000);
        assert_eq!(usd("125E-2").micros(), 1_250_000);
        assert_eq!(usd("1e-6").micros(), 1);
        assert_eq!(
            usd("0.1").micros() + usd("0.2").micros(),
            usd("0.3").micros()
        );
        assert_eq!(
            usd("1.5000000000").micros(),
            1_500_000,
            "trailing zeros are exact"
        );
        assert_eq!(usd("9223372036854.775807").micros(), i64::MAX);
    }

    #[test]
    fn hostile_inputs_are_refused() {
        use MoneyError::*;
        let cases: &[(&str, MoneyError)] = &[
            ("", NotANumber),
            ("   ", NotANumber),
            ("NaN", NotANumber),
            ("nan", NotANumber),
            ("Infinity", NotANumber),
            ("-inf", NotANumber),
            ("1.", NotANumber),
            (".5", NotANumber),
            ("1.2.3", NotANumber),
            ("1,5", NotANumber),
            ("0x10", NotANumber),
            ("1e", NotANumber),
            ("1e+", NotANumber),
            ("--1", NotANumber),
            ("1 000", NotANumber),
            ("١", NotANumber),
            ("1.0000001", TooPrecise),
            ("0.0000005", TooPrecise),
            ("1e-7", TooPrecise),
            ("9223372036854.775808", Overflow),
            ("99999999999999999999", Overflow),
            ("1e300", Overflow),
            ("1e99999", Overflow),
        ];
        for (input, expected) in cases {
            assert_eq!(
                MicroUsd::parse_decimal(input).as_ref(),
                Err(expected),
                "{input:?}"
            );
        }
        let long = "1".repeat(10_000);
        assert_eq!(MicroUsd::parse_decimal(&long), Err(NotANumber));
    }

    #[test]
    fn json_numbers_and_strings_parse_exactly() {
        let v: serde_json::Value = serde_json::from_str("1.005").unwrap();
        assert_eq!(MicroUsd::from_json(&v).unwrap().micros(), 1_005_000);
        let v: serde_json::Value = serde_json::from_str("0.1").unwrap();
        assert_eq!(MicroUsd::from_json(&v).unwrap().micros(), 100_000);
        let v = serde_json::json!("12.345");
        assert_eq!(MicroUsd::from_json(&v).unwrap().micros(), 12_345_000);
        for bad in ["true", "null", "[1]", "{\"a\":1}", "1.0000001"] {
            let v: serde_json::Value = serde_json::from_str(bad).unwrap();
            assert!(MicroUsd::from_json(&v).is_err(), "{bad}");
        }
    }

    #[test]
    fn positive_amounts_are_required_where_asked() {
        assert_eq!(
            usd("0")
                .require_positive("amount_usd")
                .unwrap_err()
                .to_string(),
            "amount_usd must be greater than zero"
        );
        assert!(usd("-1").require_positive("amount_usd").is_err());
        assert!(usd("0.000001").require_positive("amount_usd").is_ok());
    }

    #[test]
    fn display_is_exact() {
        assert_eq!(usd("12.345678").to_string(), "12.345678");
        assert_eq!(usd("-0.5").to_string(), "-0.5");
        assert_eq!(usd("10").to_string(), "10");
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        let max = MicroUsd::from_micros(i64::MAX);
        assert_eq!(max.checked_add(usd("0.000001")), Err(MoneyError::Overflow));
        assert_eq!(
            MicroUsd::from_micros(i64::MIN).checked_neg(),
            Err(MoneyError::Overflow)
        );
        assert_eq!(usd("1").checked_sub(usd("2")).unwrap(), usd("-1"));
    }
}
