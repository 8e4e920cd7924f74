//! JSON bodies parsed strictly: one object may not name a key twice, at any
//! depth, whatever type the body is read into.
//!
//! serde_json keeps the last of two equal keys when it fills a map or a
//! `Value` (a struct refuses them, a map inside it does not), while other
//! parsers keep the first or refuse: a body such as
//! `{"amount_usd":"1","amount_usd":"1000000"}` can mean one thing to the
//! service that checked it and another to the one that acts on it. Every
//! surface (`serve`'s API and control routes, the runtime's `/v1`) parses
//! bodies with [`from_slice`], so such a body is refused everywhere.
//!
//! The check is a first pass over the text that keeps nothing but the keys
//! of the object being read (escapes decoded, so `"a"` and `"\u0061"` are
//! the same key); the value is then read as usual. serde_json's nesting
//! limit (128) bounds both passes.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

/// Longest part of a duplicated key echoed back, in characters.
const KEY_ECHO_LEN: usize = 64;

/// Why a body was refused.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON: a syntax error, an early end, trailing characters or too
    /// deep a nesting.
    Syntax,
    /// An object names the same key twice (the key, shortened and without
    /// control characters: keys are names, never values).
    DuplicateKey(String),
    /// An object names serde_json's private number key beside other keys:
    /// read back, such a value would no longer parse (it is how exact
    /// numbers travel inside serde_json), so it never gets in.
    ReservedKey,
    /// JSON, but not of the expected shape. serde's message may quote the
    /// input, so a surface strips quoted parts before echoing it.
    Shape(serde_json::Error),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax => f.write_str("the request body is not valid JSON"),
            JsonError::DuplicateKey(key) => write!(
                f,
                "the JSON body names the key \"{key}\" more than once in one object: send each key once"
            ),
            JsonError::ReservedKey => write!(
                f,
                "the JSON body names the key \"{NUMBER_TOKEN}\", which is reserved: rename it"
            ),
            JsonError::Shape(e) => write!(f, "the JSON body does not have the expected shape: {e}"),
        }
    }
}

impl std::error::Error for JsonError {}

/// Parses `bytes` as one JSON value of type `T`, refusing an object that
/// names a key twice anywhere in it.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    check_unique_keys(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            JsonError::Shape(e)
        } else {
            JsonError::Syntax
        }
    })
}

/// [`from_slice`] over text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    from_slice(text.as_bytes())
}

/// The first pass: walks the whole value, failing at the first repeated key.
fn check_unique_keys(bytes: &[u8]) -> Result<(), JsonError> {
    let duplicate = RefCell::new(None);
    let reserved = RefCell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walked = Unique {
        duplicate: &duplicate,
        reserved: &reserved,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if reserved.into_inner() {
        return Err(JsonError::ReservedKey);
    }
    match (walked, duplicate.into_inner()) {
        (_, Some(key)) => Err(JsonError::DuplicateKey(key)),
        (Ok(()), None) => Ok(()),
        (Err(_), None) => Err(JsonError::Syntax),
    }
}

/// Accepts any JSON value; records the first key an object repeats.
#[derive(Clone, Copy)]
struct Unique<'a> {
    duplicate: &'a RefCell<Option<String>>,
    reserved: &'a RefCell<bool>,
}

/// The key serde_json's `arbitrary_precision` carries an exact number
/// under: a number arrives here as a one-entry map with this key, so the
/// key alone is a number; beside other keys it is refused.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        // With serde_json's `arbitrary_precision`, a number arrives as a
        // one-entry map: it has no second key, so it passes unchanged.
        while let Some(key) = map.next_key::<String>()? {
            if (key == NUMBER_TOKEN && !seen.is_empty()) || seen.contains(NUMBER_TOKEN) {
                *self.reserved.borrow_mut() = true;
                return Err(serde::de::Error::custom("reserved key"));
            }
            if seen.contains(&key) {
                *self.duplicate.borrow_mut() = Some(echo(&key));
                return Err(serde::de::Error::custom("duplicate key"));
            }
            seen.insert(key);
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// A key as it may be echoed: printable, at most [`KEY_ECHO_LEN`] characters.
fn echo(key: &str) -> String {
    let mut out: String = key
        .chars()
        .filter(|c| !c.is_control())
        .take(KEY_ECHO_LEN)
        .collect();
    if key.chars().filter(|c| !c.is_control()).count() > KEY_ECHO_LEN {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_jsons_number_key_beside_others_is_refused_alone_it_is_a_number() {
        for body in [
            r#"{"z":1,"$serde_json::private::Number":"5"}"#,
            r#"{"$serde_json::private::Number":"5","z":1}"#,
            r#"{"meta":{"a":[{"b":2,"\u0024serde_json::private::Number":"1"}]}}"#,
        ] {
            let refused = super::from_str::<serde_json::Value>(body);
            assert!(
                matches!(refused, Err(super::JsonError::ReservedKey)),
                "{body}: {refused:?}"
            );
        }
        let n: serde_json::Value =
            super::from_str(r#"{"$serde_json::private::Number":"5"}"#).unwrap();
        assert_eq!(n, serde_json::json!(5));
        assert!(super::from_str::<serde_json::Value>(r#"{"n":12.50}"#).is_ok());
    }

    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::{json, Value};

    use super::*;

    fn duplicate(text: &str) -> Option<String> {
        match from_str::<Value>(text) {
            Err(JsonError::DuplicateKey(key)) => Some(key),
            _ => None,
        }
    }

    #[test]
    fn bodies_without_repeated_keys_read_as_usual() {
        let text = r#"{"a":1,"b":{"a":2,"c":[{"a":3},{"a":4}]},"n":0.345,"big":1e400}"#;
        let value: Value = from_str(text).unwrap();
        assert_eq!(value["b"]["c"][1]["a"], 4);
        assert_eq!(value["n"].to_string(), "0.345", "numbers stay exact");
        assert_eq!(from_str::<Value>("[]").unwrap(), json!([]));
        assert_eq!(from_str::<Value>(" null ").unwrap(), Value::Null);
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        let top = r#"{"user_id":"u","amount_usd":"1","amount_usd":"1000000"}"#;
        assert_eq!(duplicate(top).as_deref(), Some("amount_usd"));
        let nested = r#"{"keys":{"OPENAI_API_KEY":"a","OPENAI_API_KEY":"b"}}"#;
        assert_eq!(duplicate(nested).as_deref(), Some("OPENAI_API_KEY"));
        let in_array = r#"[1,{"x":{"y":[{"z":1,"z":2}]}}]"#;
        assert_eq!(duplicate(in_array).as_deref(), Some("z"));
        let escaped = r#"{"a":1,"\u0061":2}"#;
        assert_eq!(
            duplicate(escaped).as_deref(),
            Some("a"),
            "keys are compared decoded"
        );
    }

    #[test]
    fn every_target_type_refuses_a_repeated_key() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Body {
            keys: BTreeMap<String, String>,
        }
        let text = r#"{"keys":{"A":"1","A":"2"}}"#;
        assert!(matches!(
            from_str::<Body>(text),
            Err(JsonError::DuplicateKey(_))
        ));
        let map = r#"{"A":"1","A":"2"}"#;
        let refused = from_str::<BTreeMap<String, String>>(map);
        assert!(matches!(refused, Err(JsonError::DuplicateKey(_))));
    }

    #[test]
    fn equal_keys_in_different_objects_are_fine() {
        let text = r#"{"a":{"id":1},"b":{"id":2},"c":[{"id":3},{"id":4}]}"#;
        assert!(from_str::<Value>(text).is_ok());
    }

    #[test]
    fn malformed_bodies_and_wrong_shapes_are_told_apart() {
        for text in ["", "{", "{\"a\":}", "{\"a\":1} x", "nope", &"[".repeat(200)] {
            assert!(
                matches!(from_str::<Value>(text), Err(JsonError::Syntax)),
                "{text:?}"
            );
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Named {
            name: String,
        }
        let shape = from_str::<Named>(r#"{"name":5}"#).unwrap_err();
        assert!(matches!(shape, JsonError::Shape(_)), "{shape}");
    }

    #[test]
    fn the_echoed_key_is_short_and_printable() {
        let long = "k".repeat(500);
        let text = format!(r#"{{"{long}":1,"{long}":2}}"#);
        let key = duplicate(&text).unwrap();
        assert_eq!(key.chars().count(), KEY_ECHO_LEN + 1, "{key}");
        let control = r#"{"a\nb":1,"a\nb":2}"#;
        assert_eq!(duplicate(control).as_deref(), Some("ab"));
    }
}
