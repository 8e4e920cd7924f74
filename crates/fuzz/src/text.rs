//! Input bytes as text a parser will look at twice.
//!
//! Random bytes are rarely a decimal number or an origin, so most of them
//! stop at a parser's first check. [`text`] reads one input two ways,
//! chosen by its first byte: as the bytes themselves (lossy UTF-8), or as
//! a sequence of tokens of a dictionary, one token per byte, so a random
//! or mutated input is a plausible near-miss (`1.25e-7`, `-0`, `1e0006`).
//! The same bytes always give the same text, which libFuzzer's mutations
//! and bolero's shrinking rely on. [`Cursor`] reads bytes as choices, for
//! generators that build their input part by part.

/// One input as text: raw (first byte even) or tokens of `dictionary`.
pub fn text(bytes: &[u8], dictionary: &[&str]) -> String {
    match bytes.split_first() {
        None => String::new(),
        Some((mode, rest)) if mode % 2 == 0 => String::from_utf8_lossy(rest).into_owned(),
        Some((_, rest)) => tokens(rest, dictionary),
    }
}

/// Each byte picks one token of `dictionary` (modulo its length).
pub fn tokens(bytes: &[u8], dictionary: &[&str]) -> String {
    if dictionary.is_empty() {
        return String::new();
    }
    bytes
        .iter()
        .map(|b| dictionary[usize::from(*b) % dictionary.len()])
        .collect()
}

/// Reads input bytes one at a time; zeros once they run out, so every
/// input, however short, is a whole document.
#[derive(Debug)]
pub struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    /// A cursor over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor(bytes)
    }

    /// The next byte, or 0 at the end.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((first, rest)) => {
                self.0 = rest;
                *first
            }
            None => 0,
        }
    }

    /// One of `items`, chosen by the next byte.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.byte()) % items.len()]
    }

    /// Whether any bytes are left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_chooses_raw_or_tokens() {
        assert_eq!(text(b"", &["x"]), "");
        assert_eq!(text(b"\x00ab", &["x"]), "ab");
        assert_eq!(text(b"\x01\x00\x01\x02", &["1", ".", "5"]), "1.5");
        assert_eq!(text(b"\x00\xff", &["x"]), "\u{fffd}");
    }
}
