//! Money amounts: `MicroUsd::parse_decimal` (every amount in a body, a
//! query or a form), `MicroUsd::from_json`, and the display forms.
//!
//! The parse is compared with an oracle that works on the decimal text as
//! a string (no integer arithmetic, so it cannot overflow the way the real
//! parser could): an accepted text has exactly the value the oracle
//! reads, it round-trips through its display form, and nothing outside an
//! `i64` of micro-USD is ever accepted.

use bolero::check;
use clawplane_domain::{MicroUsd, MoneyError};
use clawplane_fuzz::text::{text, Cursor};

/// Tokens near the edges of the grammar and of the range.
const DICTIONARY: &[&str] = &[
    "0",
    "1",
    "5",
    "9",
    ".",
    "e",
    "E",
    "-",
    "+",
    " ",
    "\t",
    "\u{a0}",
    "00",
    "000000",
    "9223372036854",
    "775807",
    "775808",
    "922337203685477",
    "5807",
    "e-",
    "e+",
    "e6",
    "e-6",
    "e-7",
    "e999",
    "e0006",
    "1e",
    ".5",
    "NaN",
    "inf",
    "x",
    "١",
    "\u{0}",
    ",",
];

/// Amounts at the edges, which the grammar mode starts from.
const EDGES: &[&str] = &[
    "9223372036854.775807",
    "-9223372036854.775808",
    "9223372036854.775808",
    "-9223372036854.775809",
    "9223372036854775807e-6",
    "-9223372036854775808E-6",
    "0.000001",
    "922337203685.4775807e1",
    "92233720368547758.07e-4",
    "0e999",
    "1e0006",
];

/// An amount's text: raw bytes, dictionary tokens, or (half the time) a
/// number of the grammar built part by part (sign, digits, fraction,
/// exponent, surrounding space), now and then with one token spliced in.
fn amount_text(bytes: &[u8]) -> String {
    let mut c = Cursor::new(bytes);
    if c.byte() % 2 == 0 {
        return text(bytes.get(1..).unwrap_or_default(), DICTIONARY);
    }
    let digits = |c: &mut Cursor, max: u8| -> String {
        let len = c.byte() % max;
        (0..len)
            .map(|_| match c.byte() % 4 {
                0 => '0',
                1 => '9',
                _ => char::from(b'0' + c.byte() % 10),
            })
            .collect()
    };
    let space = [" ", "", "", "\t", "\u{a0}", "\n"];
    let mut out = String::from(c.pick(&space));
    if c.byte() % 4 == 0 {
        out.push_str(c.pick(EDGES));
    } else {
        out.push_str(c.pick(&["", "", "-", "+"]));
        out.push_str(&digits(&mut c, 21));
        if c.byte() % 2 == 0 {
            out.push('.');
            out.push_str(&digits(&mut c, 12));
        }
        if c.byte() % 3 == 0 {
            out.push_str(c.pick(&["e", "E"]));
            out.push_str(c.pick(&["", "-", "+"]));
            out.push_str(&digits(&mut c, 5));
        }
    }
    out.push_str(c.pick(&space));
    if c.byte() % 8 == 0 && !out.is_empty() {
        let at = usize::from(c.byte()) % out.len();
        if out.is_char_boundary(at) {
            out.insert_str(at, c.pick(DICTIONARY));
        }
    }
    out
}

/// Largest and smallest micro-USD amounts, as decimal text of the integer.
const MAX_MICROS: &str = "9223372036854775807";
const MIN_MICROS_ABS: &str = "9223372036854775808";

/// What the oracle reads in a text: `None` when it is no decimal number of
/// the accepted grammar; else the exact value times 10^6, when integral.
#[derive(Debug, PartialEq, Eq)]
enum Reading {
    NotANumber,
    /// More than six decimals that are not zero (and whether the whole
    /// part alone would fit).
    TooPrecise {
        whole_in_range: bool,
    },
    /// The exact micro-USD count, as sign and digits (no leading zeros).
    Micros {
        negative: bool,
        digits: String,
    },
}

/// Reads `input` as the parser documents it: trimmed, an optional sign,
/// digits, an optional `.` and digits, an optional exponent.
fn oracle(input: &str) -> Reading {
    let text = input.trim();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int_part) || frac_part.is_some_and(|f| !digits(f)) {
        return Reading::NotANumber;
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let magnitude = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !digits(magnitude) {
                return Reading::NotANumber;
            }
            // Far beyond any amount; the exact size does not matter.
            let value: i64 = magnitude.parse().unwrap_or(i64::MAX).min(10_000);
            if e.starts_with('-') {
                -value
            } else {
                value
            }
        }
    };
    let frac_part = frac_part.unwrap_or("");
    // All digits, and where the point goes after scaling by 10^6.
    let all: String = format!("{int_part}{frac_part}");
    let point = int_part.len() as i64 + exponent + 6;
    let (whole, fraction) = if point <= 0 {
        (
            String::new(),
            format!("{}{all}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= all.len() {
        (
            format!("{all}{}", "0".repeat(point as usize - all.len())),
            String::new(),
        )
    } else {
        (
            all[..point as usize].to_owned(),
            all[point as usize..].to_owned(),
        )
    };
    let whole = whole.trim_start_matches('0');
    if fraction.bytes().any(|b| b != b'0') {
        return Reading::TooPrecise {
            whole_in_range: in_range(negative, whole),
        };
    }
    Reading::Micros {
        negative: negative && !whole.is_empty(),
        digits: if whole.is_empty() {
            "0".into()
        } else {
            whole.into()
        },
    }
}

/// Whether decimal `digits` (no leading zeros) are at most `limit`.
fn at_most(digits: &str, limit: &str) -> bool {
    (digits.len(), digits) <= (limit.len(), limit)
}

/// Whether the reading fits an `i64` of micro-USD.
fn in_range(negative: bool, digits: &str) -> bool {
    at_most(digits, if negative { MIN_MICROS_ABS } else { MAX_MICROS })
}

/// The limit the parser documents beyond the grammar: at most 64
/// characters once trimmed.
fn within_length_limit(input: &str) -> bool {
    input.trim().len() <= 64
}

/// The limits the parser applies: the length, and an exponent of at most
/// three digits (leading zeros counted).
fn within_applied_limits(input: &str) -> bool {
    let text = input.trim();
    let exponent_digits = text
        .find(['e', 'E'])
        .map(|at| text[at + 1..].trim_start_matches(['+', '-']).len())
        .unwrap_or(0);
    text.len() <= 64 && exponent_digits <= 3
}

/// Checks one text; a refusal of a number in range is excused only when
/// `within_limits` says the text is past a limit.
fn check_amount(input: &str, within_limits: fn(&str) -> bool) {
    let parsed = MicroUsd::parse_decimal(input);
    let reading = oracle(input);
    match (&parsed, &reading) {
        (Ok(amount), Reading::Micros { negative, digits }) => {
            let expected = format!("{}{digits}", if *negative { "-" } else { "" });
            assert_eq!(amount.micros().to_string(), expected, "{input:?}");
            assert!(in_range(*negative, digits), "{input:?} is out of range");
            let shown = amount.to_string();
            assert_eq!(
                shown.parse::<MicroUsd>().as_ref(),
                Ok(amount),
                "{input:?} -> {shown}"
            );
        }
        (Ok(amount), other) => panic!("{input:?} accepted as {amount} but reads {other:?}"),
        (Err(_), Reading::NotANumber) => {}
        (Err(MoneyError::TooPrecise), Reading::TooPrecise { .. }) => {}
        (Err(MoneyError::Overflow), Reading::TooPrecise { whole_in_range }) if !whole_in_range => {}
        (Err(e), Reading::Micros { negative, digits }) => {
            // Refusing a number is right only past the range or the
            // documented limits.
            assert!(
                !in_range(*negative, digits) || !within_limits(input),
                "{input:?} ({digits}) refused: {e}"
            );
        }
        (Err(e), Reading::TooPrecise { .. }) => {
            assert!(!within_limits(input), "{input:?} refused as {e:?}");
        }
    }
}

#[test]
fn decimal_text_parses_exactly_or_not_at_all() {
    check!()
        .with_iterations(30_000)
        .with_max_len(48)
        .for_each(|bytes| check_amount(&amount_text(bytes), within_applied_limits));
}

/// The exponent limit counts leading zeros and applies to zero too:
/// `1e0006` (one million dollars) and `0e1000` (zero) are refused with
/// "amount is too large" (`MoneyError::Overflow`, from `parse_exponent`
/// in crates/domain/src/money.rs), though both are exact and in range.
#[test]
#[ignore = "bug: MicroUsd::parse_decimal refuses \"1e0006\" and \"0e1000\" as too large"]
fn an_exponent_is_judged_by_its_value_not_its_digits() {
    check_amount("1e0006", within_length_limit);
    check_amount("0e1000", within_length_limit);
    check!()
        .with_iterations(30_000)
        .with_max_len(48)
        .for_each(|bytes| check_amount(&amount_text(bytes), within_length_limit));
}

/// A JSON number keeps its text, so an amount sent as a number means what
/// the same text means as a string.
#[test]
fn a_json_number_and_a_json_string_are_the_same_amount() {
    check!()
        .with_iterations(10_000)
        .with_max_len(40)
        .for_each(|bytes| {
            let number = amount_text(bytes);
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&number) else {
                return;
            };
            if !value.is_number() {
                return;
            }
            let as_string = serde_json::Value::String(number.trim().to_owned());
            assert_eq!(
                MicroUsd::from_json(&value),
                MicroUsd::from_json(&as_string),
                "{number:?}"
            );
        });
}

/// Any amount renders: exact text that parses back, cents rounded half
/// away from zero, and `balance_usd` as a JSON number of those cents.
#[test]
fn every_amount_renders_and_parses_back() {
    check!()
        .with_type::<i64>()
        .with_iterations(20_000)
        .for_each(|micros| {
            let amount = MicroUsd::from_micros(*micros);
            assert_eq!(amount.to_string().parse::<MicroUsd>(), Ok(amount));
            let exact = amount.to_exact_usd_json();
            assert_eq!(MicroUsd::from_json(&exact), Ok(amount));
            let cents = i128::from(*micros);
            let rounded = (cents.abs() + 5_000) / 10_000 * cents.signum();
            assert_eq!(i128::from(amount.rounded_cents()), rounded);
            let balance = amount.to_rounded_usd_json();
            let cents_text = amount.format_cents();
            match MicroUsd::from_json(&balance) {
                Ok(back) => {
                    assert_eq!(i128::from(back.micros()), rounded * 10_000, "{balance}");
                    assert_eq!(MicroUsd::parse_decimal(&cents_text), Ok(back));
                }
                // Only the last half cent below the range rounds out of it.
                Err(e) => assert!(
                    (rounded * 10_000).abs() > i128::from(i64::MAX),
                    "{balance} does not parse back: {e}"
                ),
            }
        });
}
