//! JSON bodies: `clawplane_http::json::from_slice`, the one strict parser
//! every surface reads bodies with, and `serve`'s `JsonBody` extractor end
//! to end.
//!
//! - On any bytes the strict parser never panics, accepts only what
//!   serde_json accepts, with the same value, and refuses nothing serde_json
//!   would read the same way unless a key repeats.
//! - On generated documents (keys that repeat, spelled with and without
//!   escapes, at any depth) it refuses exactly those with a repeated key,
//!   naming the first one, and reads the others as serde_json does.
//! - Through `serve` (a grant on the control surface, a token on the API),
//!   any body and content type is answered 2xx or 4xx in the envelope,
//!   never 5xx; a body naming a key twice is refused, and a grant that is
//!   accepted credits exactly the amount the body names and can be read
//!   back. `a_body_naming_serde_jsons_private_number_key_is_refused_not_500`
//!   found a body that answered 500 (serde_json's private number key beside
//!   another key in `meta`); the strict parser now refuses that key there.

use std::panic::AssertUnwindSafe;

use bolero::check;
use clawplane_domain::MicroUsd;
use clawplane_fuzz::app::{App, CONTROL_KEY, INTERNAL_KEY};
use clawplane_fuzz::json_tree::{self, render, Layout, Node, Spelling, Word};
use clawplane_fuzz::text::{text, Cursor};
use clawplane_fuzz::wire::{RawRequest, Reply};
use clawplane_http::json::{from_slice, JsonError};
use serde_json::Value;

/// Pieces of JSON and near-JSON, for the token mode of raw inputs.
const DICTIONARY: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\"a\"",
    "\"\\u0061\"",
    "\"b\"",
    "1",
    "-0.5e3",
    "1e999",
    "true",
    "null",
    " ",
    "\n",
    "\\",
    "\\u",
    "d83d",
    "\\ud800",
    "\"$serde_json::private::Number\"",
    "\"1\"",
    "{\"a\":1,",
    "\"a\":2}",
    "[[[[",
    "]]]]",
    "\u{0}",
    "\u{feff}",
    "é",
    "x",
];

fn strict(bytes: &[u8]) -> Result<Value, JsonError> {
    from_slice::<Value>(bytes)
}

/// Bytes as they are, tokens of the dictionary, or (half the time) a
/// generated document with a few tokens spliced in or a tail cut off.
fn near_json(bytes: &[u8]) -> Vec<u8> {
    let mut cursor = Cursor::new(bytes);
    let rest = bytes.get(1..).unwrap_or_default();
    match cursor.byte() % 4 {
        0 => return rest.to_vec(),
        1 => return text(rest, DICTIONARY).into_bytes(),
        _ => {}
    }
    let mut doc = render(&json_tree::node(&mut cursor, 4)).text;
    for _ in 0..cursor.byte() % 4 {
        let at = usize::from(cursor.byte()) * doc.len() / 256;
        if !doc.is_char_boundary(at) {
            continue;
        }
        match cursor.byte() % 3 {
            0 => doc.truncate(at),
            1 => doc.insert_str(at, cursor.pick(DICTIONARY)),
            _ => {
                let end = (at + 1 + usize::from(cursor.byte() % 4)).min(doc.len());
                if doc.is_char_boundary(end) {
                    doc.replace_range(at..end, cursor.pick(DICTIONARY));
                }
            }
        }
    }
    doc.into_bytes()
}

#[test]
fn strict_json_agrees_with_serde_json_on_any_bytes() {
    check!()
        .with_iterations(20_000)
        .with_max_len(200)
        .for_each(|bytes| {
            let input = near_json(bytes);
            let ours = strict(&input);
            let theirs = serde_json::from_slice::<Value>(&input);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{input:?}"),
                (Ok(a), Err(e)) => panic!("{input:?} accepted as {a} but serde_json says {e}"),
                (Err(JsonError::DuplicateKey(key)), _) => {
                    assert!(!key.chars().any(char::is_control), "{key:?}");
                    assert!(key.chars().count() <= 65, "{key:?}");
                }
                (Err(JsonError::Syntax), Ok(value)) => {
                    panic!("{input:?} refused as not JSON, serde_json reads {value}")
                }
                (Err(_), _) => {}
            }
            // What serde_json reads has no repeats left: written out again,
            // the strict parser must take it, as the same value (except
            // around serde_json's private number key, which it writes
            // back in another order).
            let quirk = input
                .windows(NUMBER_TOKEN.len())
                .any(|w| w == NUMBER_TOKEN.as_bytes());
            if let (Ok(value), false) = (&theirs, quirk) {
                let again = serde_json::to_vec(value).expect("a value serialises");
                assert_eq!(strict(&again).as_ref().ok(), Some(value), "{input:?}");
            }
        });
}

#[test]
fn a_repeated_key_is_refused_at_any_depth_and_nothing_else_is() {
    check!()
        .with_iterations(20_000)
        .with_max_len(256)
        .for_each(|bytes| {
            let mut cursor = Cursor::new(bytes);
            // Some documents sit deep inside arrays: serde_json's nesting
            // limit (128) bounds both passes.
            let wrap = match cursor.byte() % 8 {
                0 => 130 + usize::from(cursor.byte()),
                1 => usize::from(cursor.byte() % 100),
                _ => 0,
            };
            let doc = json_tree::node(&mut cursor, 5);
            let rendered = render(&doc);
            let text = format!("{}{}{}", "[".repeat(wrap), rendered.text, "]".repeat(wrap));
            let ours = strict(text.as_bytes());
            if wrap >= 130 {
                assert!(matches!(ours, Err(JsonError::Syntax)), "too deep: {ours:?}");
                return;
            }
            match (&rendered.duplicate, &ours) {
                (Some(key), Err(JsonError::DuplicateKey(named))) => {
                    assert_eq!(named, &json_tree::echoed(key), "{text}");
                    let message = JsonError::DuplicateKey(named.clone()).to_string();
                    assert!(message.contains("more than once"), "{message}");
                }
                (Some(key), other) => panic!("{text} repeats {key:?} but reads as {other:?}"),
                (None, Ok(value)) => {
                    let theirs: Value = serde_json::from_str(&text).expect("serde_json reads it");
                    assert_eq!(value, &theirs, "{text}");
                }
                (None, Err(e)) => panic!("{text} has no repeated key but is refused: {e}"),
            }
        });
}

/// The app of an end-to-end target. A failing input ends the target, so
/// no state a panic left behind is ever looked at again.
fn app() -> AssertUnwindSafe<App> {
    AssertUnwindSafe(App::start())
}

/// A content type: JSON most of the time, in its accepted spellings.
fn content_type(cursor: &mut Cursor) -> Option<&'static str> {
    cursor.pick(&[
        Some("application/json"),
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
        Some("application/merge-patch+json"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ])
}

/// `Some(true)` for the JSON content types `JsonBody` accepts.
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        let essence = t
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

/// Asserts the envelope of any reply of `serve`'s JSON surfaces.
fn assert_envelope(reply: &Reply, what: &str) -> Value {
    assert!(
        reply.status < 500,
        "{what}: {} {}",
        reply.status,
        reply.text()
    );
    let body: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|_| panic!("{what}: not JSON ({}): {}", reply.status, reply.text()));
    let ok = body["ok"]
        .as_bool()
        .unwrap_or_else(|| panic!("{what}: no ok: {body}"));
    assert_eq!(ok, reply.status < 400, "{what}: {} {body}", reply.status);
    if !ok {
        assert!(body["error"]["code"].is_string(), "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
        assert!(body["error"].get("details").is_some(), "{what}: {body}");
    }
    body
}

/// The key serde_json's `arbitrary_precision` uses for numbers inside
/// its own data model.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

fn plain(text: &str) -> Word {
    Word {
        text: text.to_owned(),
        spelling: Spelling::Plain,
    }
}

/// A grant's body: an object of the fields a grant reads (and others),
/// values near what they should be, keys that may repeat, any `meta`.
/// With `number_token`, a `meta` may hold serde_json's private number key.
fn grant_body(cursor: &mut Cursor, number_token: bool) -> Node {
    let users = ["fuzz-a", "fuzz-b", " fuzz-c ", "", "x\u{0}y", "ü"];
    let amounts = [
        "1",
        "2.5",
        "0.000001",
        "0.5",
        "0",
        "-1",
        "1e-7",
        "12.345678",
        "1e2",
        "9223372036854.775807",
        "9223372036854.775808",
        "1e0006",
        "\"2.5\"",
        "\"1e3\"",
        "\" 7 \"",
        "\"abc\"",
        "true",
    ];
    let fields = [
        "user_id",
        "amount_usd",
        "source",
        "meta",
        "userId",
        "subject",
        "x",
    ];
    if cursor.byte() % 10 == 0 {
        return json_tree::node(cursor, 3);
    }
    // Usually the two fields a grant needs, then a few of any kind.
    let mut names: Vec<&str> = Vec::new();
    for needed in ["user_id", "amount_usd"] {
        if cursor.byte() % 8 != 0 {
            names.push(needed);
        }
    }
    for _ in 0..cursor.byte() % 4 {
        names.push(cursor.pick(&fields));
    }
    if cursor.byte() % 2 == 0 {
        names.reverse();
    }
    let members = names
        .into_iter()
        .map(|name| {
            let key = Word {
                text: name.to_owned(),
                spelling: cursor.pick(&[Spelling::Plain, Spelling::Plain, Spelling::Escaped]),
            };
            let value = match key.text.as_str() {
                "user_id" | "userId" | "subject" => Node::Text(Word {
                    text: cursor.pick(&users).to_owned(),
                    spelling: Spelling::Plain,
                }),
                "amount_usd" => {
                    let amount = cursor.pick(&amounts);
                    match amount.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
                        Some(text) => Node::Text(Word {
                            text: text.to_owned(),
                            spelling: Spelling::Plain,
                        }),
                        None if amount == "true" => Node::Bool(true),
                        None => Node::Number(amount.to_owned()),
                    }
                }
                // serde_json's private number key, second in an object:
                // read as a plain member, written back first.
                "meta" if number_token && cursor.byte() % 4 == 0 => Node::Object(
                    vec![
                        (plain("z"), Node::Number("1".into())),
                        (
                            plain(NUMBER_TOKEN),
                            Node::Text(plain(cursor.pick(&["abc", "5"]))),
                        ),
                    ],
                    Layout::Compact,
                ),
                _ => json_tree::node(cursor, 3),
            };
            (key, value)
        })
        .collect();
    Node::Object(members, Layout::Compact)
}

/// A GET on the API as `user`.
fn api_get(path: &str, user: &str) -> RawRequest {
    RawRequest {
        method: "GET".into(),
        target: path.as_bytes().to_vec(),
        headers: vec![
            ("Host".to_owned(), b"localhost".to_vec()),
            (
                "x-oa-internal-key".to_owned(),
                INTERNAL_KEY.as_bytes().to_vec(),
            ),
            ("x-oa-user-id".to_owned(), user.as_bytes().to_vec()),
        ],
        body: Vec::new(),
    }
}

#[test]
fn grants_answer_any_body_in_the_envelope_and_credit_what_they_name() {
    fuzz_grants(false);
}

/// A `meta` object whose second key is serde_json's private number key,
/// e.g. the body
/// `{"user_id":"u1","amount_usd":"2","meta":{"z":1,"$serde_json::private::Number":"5"}}`,
/// is read as a plain object, stored with its keys sorted (the number key
/// first), and read back by `entry_from_row` (crates/store/src/ledger/mod.rs)
/// as a malformed number: the grant answers 500 `internal` (nothing is
/// written). Every stored `Value` read back the same way is exposed.
#[test]
fn a_body_naming_serde_jsons_private_number_key_is_refused_not_500() {
    fuzz_grants(true);
}

fn fuzz_grants(number_token: bool) {
    let app = app();
    let mut serial = 0u64;
    check!()
        .with_iterations(1_500)
        .with_max_len(128)
        .for_each(|bytes| {
            serial += 1;
            let mut cursor = Cursor::new(bytes);
            let content_type = content_type(&mut cursor);
            let raw = cursor.byte() % 6 == 0;
            let (body, duplicate) = if raw {
                (text(bytes, DICTIONARY).into_bytes(), None)
            } else {
                let rendered = render(&grant_body(&mut cursor, number_token));
                (rendered.text.into_bytes(), rendered.duplicate)
            };
            // Mostly a fresh key; now and then one used before (a replay).
            let key = if cursor.byte() % 8 == 0 { 1 } else { serial };
            let mut headers = vec![
                ("Host".to_owned(), b"localhost".to_vec()),
                (
                    "x-oa-control-key".to_owned(),
                    CONTROL_KEY.as_bytes().to_vec(),
                ),
                (
                    "Idempotency-Key".to_owned(),
                    format!("fuzz-{key}").into_bytes(),
                ),
            ];
            if let Some(t) = content_type {
                headers.push(("Content-Type".to_owned(), t.as_bytes().to_vec()));
            }
            let request = RawRequest {
                method: "POST".into(),
                target: b"/control/openclaw/billing/grant".to_vec(),
                headers,
                body: body.clone(),
            };
            let what = format!("{} {:?}", String::from_utf8_lossy(&body), content_type);
            let reply = app.send(&request).unwrap_or_else(|e| panic!("{what}: {e}"));
            let envelope = assert_envelope(&reply, &what);
            if !is_json(content_type) {
                assert_eq!(reply.status, 415, "{what}");
                return;
            }
            if duplicate.is_some() {
                assert_eq!(reply.status, 400, "{what}: {envelope}");
                let message = envelope["error"]["message"].as_str().unwrap_or_default();
                // The first refusal in document order is named: a repeat, or
                // serde_json's private number key beside another key.
                let reserved = body
                    .windows(NUMBER_TOKEN.len())
                    .any(|w| w == NUMBER_TOKEN.as_bytes())
                    && message.contains("reserved");
                assert!(
                    message.contains("more than once") || reserved,
                    "{what}: {message}"
                );
                return;
            }
            if reply.status == 200 && envelope["data"]["replayed"] != Value::Bool(true) {
                let sent: Value = serde_json::from_slice(&body).expect("an accepted body is JSON");
                let amount = MicroUsd::from_json(&sent["amount_usd"]).expect("a valid amount");
                assert!(amount.micros() > 0, "{what}: a grant is positive");
                assert_eq!(
                    envelope["data"]["entry"]["amount_micro_usd"].as_i64(),
                    Some(amount.micros()),
                    "{what}: {envelope}"
                );
            }
            // What a grant stored can be read back.
            if let Some(user) = envelope["data"]["user_id"].as_str() {
                let ledger = app
                    .send(&api_get("/api/openclaw/billing/ledger", user))
                    .unwrap_or_else(|e| panic!("{what}: ledger: {e}"));
                let listed = assert_envelope(&ledger, &format!("ledger after {what}"));
                assert_eq!(ledger.status, 200, "{what}: {listed}");
            }
        });
}

#[test]
fn typed_bodies_answer_any_bytes_in_the_envelope() {
    let app = app();
    check!()
        .with_iterations(1_500)
        .with_max_len(128)
        .for_each(|bytes| {
            let mut cursor = Cursor::new(bytes);
            let body = if cursor.byte() % 2 == 0 {
                text(bytes, DICTIONARY).into_bytes()
            } else {
                let name = json_tree::node(&mut cursor, 2);
                let doc = Node::Object(
                    vec![(
                        Word {
                            text: "name".into(),
                            spelling: Spelling::Plain,
                        },
                        name,
                    )],
                    Layout::Compact,
                );
                render(&doc).text.into_bytes()
            };
            let user = format!("fuzz-{}", cursor.byte() % 4);
            let request = RawRequest {
                method: "POST".into(),
                target: b"/api/openclaw/tokens".to_vec(),
                headers: vec![
                    ("Host".to_owned(), b"localhost".to_vec()),
                    (
                        "x-oa-internal-key".to_owned(),
                        INTERNAL_KEY.as_bytes().to_vec(),
                    ),
                    ("x-oa-user-id".to_owned(), user.into_bytes()),
                    ("Content-Type".to_owned(), b"application/json".to_vec()),
                ],
                body: body.clone(),
            };
            let what = String::from_utf8_lossy(&body).into_owned();
            let reply = app.send(&request).unwrap_or_else(|e| panic!("{what}: {e}"));
            let envelope = assert_envelope(&reply, &what);
            if reply.status == 200 {
                let sent: Value = serde_json::from_slice(&body).expect("an accepted body is JSON");
                assert!(sent["name"].is_string(), "{what}: {envelope}");
            }
        });
}
