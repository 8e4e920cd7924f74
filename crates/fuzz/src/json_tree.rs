//! JSON documents built from input bytes, with the answer a strict parser
//! owes them.
//!
//! Random bytes are seldom JSON, and when they are they seldom repeat a
//! key, so the strict parser's one rule would go untested. Here the bytes
//! choose a tree ([`node`]): objects whose keys come from a small set (so
//! repeats are common), spelled plainly, as `\u` escapes (surrogate pairs
//! included) or mixed, so `"a"` and `"\u0061"` must be seen as one key.
//! [`render`] writes the text and says which key a strict parser must
//! name: the first one repeated in the text's order, the order a one-pass
//! parser meets it.

use std::collections::HashSet;
use std::fmt::Write;

use crate::text::Cursor;

/// Keys of generated objects: few, so that they repeat; some need escapes,
/// one has a control character (echoed without it), one is long (echoed
/// shortened).
pub const KEYS: &[&str] = &[
    "a",
    "b",
    "amount_usd",
    "user_id",
    "é",
    "\u{1F600}",
    "a\nb",
    "",
    "/",
    "\"",
    "OPENAI_API_KEY",
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
];

/// Number texts, kept exact (the workspace enables `arbitrary_precision`).
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "12.345678",
    "1e2",
    "1E+2",
    "1e-7",
    "9223372036854.775807",
    "9223372036854.775808",
    "1e400",
    "-1.5e-400",
    "123456789012345678901234567890",
];

/// How a string is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// With the escapes JSON requires, nothing else.
    Plain,
    /// Every character as `\uXXXX` (a surrogate pair above the BMP).
    Escaped,
    /// Every other character escaped.
    Mixed,
}

/// A string of a generated document: its text and how it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The decoded text.
    pub text: String,
    /// How it is written.
    pub spelling: Spelling,
}

/// Where whitespace goes between the tokens of an array or object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// None.
    Compact,
    /// A space after `:` and `,`.
    Spaced,
    /// A line break before each member.
    Lines,
}

/// A generated JSON value. Objects are lists, so a key may repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as text.
    Number(String),
    /// A string.
    Text(Word),
    /// An array.
    Array(Vec<Node>, Layout),
    /// An object, members in order (repeats allowed).
    Object(Vec<(Word, Node)>, Layout),
}

/// A word chosen by the cursor: one of [`KEYS`], spelled some way.
pub fn word(cursor: &mut Cursor) -> Word {
    Word {
        text: cursor.pick(KEYS).to_owned(),
        spelling: cursor.pick(&[Spelling::Plain, Spelling::Escaped, Spelling::Mixed]),
    }
}

/// A value chosen by the cursor; below `depth_left` levels only scalars.
pub fn node(cursor: &mut Cursor, depth_left: usize) -> Node {
    let kind = cursor.byte() % 8;
    let containers = depth_left > 0 && !cursor.is_empty();
    match kind {
        0 => Node::Null,
        1 => Node::Bool(cursor.byte() % 2 == 0),
        2 => Node::Number(cursor.pick(NUMBERS).to_owned()),
        3 => Node::Text(word(cursor)),
        4 if containers => {
            let layout = layout(cursor);
            let len = cursor.byte() % 4;
            let items = (0..len).map(|_| node(cursor, depth_left - 1)).collect();
            Node::Array(items, layout)
        }
        5..=7 if containers => {
            let layout = layout(cursor);
            let len = cursor.byte() % 5;
            let members = (0..len)
                .map(|_| (word(cursor), node(cursor, depth_left - 1)))
                .collect();
            Node::Object(members, layout)
        }
        _ => Node::Null,
    }
}

fn layout(cursor: &mut Cursor) -> Layout {
    cursor.pick(&[Layout::Compact, Layout::Spaced, Layout::Lines])
}

/// A document's text and what a strict parser must say of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The JSON text.
    pub text: String,
    /// The first key repeated within one object, in the text's order.
    pub duplicate: Option<String>,
}

/// Writes `node` as JSON text.
pub fn render(node: &Node) -> Rendered {
    let mut out = Rendered {
        text: String::new(),
        duplicate: None,
    };
    write_node(node, &mut out);
    out
}

fn write_node(node: &Node, out: &mut Rendered) {
    match node {
        Node::Null => out.text.push_str("null"),
        Node::Bool(b) => out.text.push_str(if *b { "true" } else { "false" }),
        Node::Number(n) => out.text.push_str(n),
        Node::Text(w) => write_word(w, &mut out.text),
        Node::Array(items, layout) => {
            out.text.push('[');
            for (i, item) in items.iter().enumerate() {
                separate(i, *layout, &mut out.text);
                write_node(item, out);
            }
            out.text.push(']');
        }
        Node::Object(members, layout) => {
            out.text.push('{');
            let mut seen = HashSet::new();
            for (i, (key, value)) in members.iter().enumerate() {
                separate(i, *layout, &mut out.text);
                write_word(key, &mut out.text);
                if !seen.insert(key.text.as_str()) && out.duplicate.is_none() {
                    out.duplicate = Some(key.text.clone());
                }
                out.text.push_str(if *layout == Layout::Compact {
                    ":"
                } else {
                    ": "
                });
                write_node(value, out);
            }
            out.text.push('}');
        }
    }
}

fn separate(index: usize, layout: Layout, text: &mut String) {
    if index > 0 {
        text.push(',');
    }
    match layout {
        Layout::Compact => {}
        Layout::Spaced if index > 0 => text.push(' '),
        Layout::Spaced => {}
        Layout::Lines => text.push_str("\n  "),
    }
}

/// Writes `word` as a JSON string in its spelling.
pub fn write_word(word: &Word, text: &mut String) {
    text.push('"');
    for (i, c) in word.text.chars().enumerate() {
        let escape = match word.spelling {
            Spelling::Plain => false,
            Spelling::Escaped => true,
            Spelling::Mixed => i % 2 == 0,
        };
        if escape {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(text, "\\u{unit:04x}");
            }
        } else {
            match c {
                '"' => text.push_str("\\\""),
                '\\' => text.push_str("\\\\"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(text, "\\u{:04x}", u32::from(c));
                }
                c => text.push(c),
            }
        }
    }
    text.push('"');
}

/// A repeated key as the strict parser may echo it: without control
/// characters, at most 64 of them, `…` when shortened.
pub fn echoed(key: &str) -> String {
    let printable: Vec<char> = key.chars().filter(|c| !c.is_control()).collect();
    let mut out: String = printable.iter().take(64).collect();
    if printable.len() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, spelling: Spelling) -> Word {
        Word {
            text: text.to_owned(),
            spelling,
        }
    }

    #[test]
    fn escaped_keys_are_the_same_key() {
        let doc = Node::Object(
            vec![
                (w("a", Spelling::Plain), Node::Null),
                (w("a", Spelling::Escaped), Node::Bool(true)),
            ],
            Layout::Spaced,
        );
        let out = render(&doc);
        assert_eq!(out.text, r#"{"a": null, "\u0061": true}"#);
        assert_eq!(out.duplicate.as_deref(), Some("a"));
    }

    #[test]
    fn the_first_repeat_in_text_order_is_the_one_named() {
        let inner = Node::Object(
            vec![
                (w("x", Spelling::Plain), Node::Null),
                (w("x", Spelling::Plain), Node::Null),
            ],
            Layout::Compact,
        );
        let doc = Node::Object(
            vec![
                (w("a", Spelling::Plain), inner),
                (w("a", Spelling::Plain), Node::Null),
            ],
            Layout::Compact,
        );
        assert_eq!(render(&doc).duplicate.as_deref(), Some("x"));
        let emoji = Node::Text(w("\u{1F600}", Spelling::Escaped));
        assert_eq!(render(&emoji).text, r#""\ud83d\ude00""#);
    }
}
