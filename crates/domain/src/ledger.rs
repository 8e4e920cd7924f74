//! Credit ledger values: entry kinds, idempotency keys, and entries.
//!
//! The ledger is append-only: an entry is never updated or deleted, and a
//! correction is a new `reversal` entry pointing at the entry it cancels.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::{MicroUsd, UserId};

/// What an entry does to a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Credits added (monthly, promotional, manual, top-up): positive amount.
    Grant,
    /// Credits used: negative amount.
    Burn,
    /// Cancels an earlier entry: the opposite amount.
    Reversal,
}

impl EntryKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Grant => "grant",
            EntryKind::Burn => "burn",
            EntryKind::Reversal => "reversal",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(input: &str) -> Option<Self> {
        match input.trim().to_ascii_lowercase().as_str() {
            "grant" => Some(EntryKind::Grant),
            "burn" => Some(EntryKind::Burn),
            "reversal" => Some(EntryKind::Reversal),
            _ => None,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an idempotency key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    /// No key was given.
    #[error("an Idempotency-Key is required: send a unique key per operation, and the same key when retrying it")]
    Missing,
    /// The key is too long or not printable ASCII.
    #[error("Idempotency-Key must be 1-200 printable ASCII characters")]
    Invalid,
}

/// A caller-chosen key that makes a ledger write happen at most once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest key accepted.
    pub const MAX_LEN: usize = 200;

    /// Parses a key from untrusted input (trimmed).
    pub fn parse(input: &str) -> Result<Self, IdempotencyKeyError> {
        let key = input.trim();
        if key.is_empty() {
            return Err(IdempotencyKeyError::Missing);
        }
        if key.len() > Self::MAX_LEN || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(IdempotencyKeyError::Invalid);
        }
        Ok(IdempotencyKey(key.to_owned()))
    }

    /// A key clawplane derives itself (monthly grants, metering). Internal
    /// keys start with a prefix no caller can use (`clawplane:`); they are
    /// built from validated parts and never fail.
    pub fn internal(parts: &[&str]) -> Self {
        let mut key = String::from("clawplane:");
        key.push_str(&parts.join(":"));
        key.truncate(Self::MAX_LEN);
        IdempotencyKey(key)
    }

    /// Whether the key was derived by clawplane.
    pub fn is_internal(&self) -> bool {
        self.0.starts_with("clawplane:")
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = IdempotencyKeyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<IdempotencyKey> for String {
    fn from(value: IdempotencyKey) -> Self {
        value.0
    }
}

/// One ledger entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Monotonic id, the pagination cursor.
    pub id: i64,
    /// Whose balance.
    pub user_id: UserId,
    /// Grant, burn or reversal.
    pub kind: EntryKind,
    /// Why: `monthly`, `promotional`, `manual`, `runtime_time`, `model_spend`, ...
    pub source: String,
    /// Signed change of the balance.
    pub amount: MicroUsd,
    /// The balance right after this entry.
    pub balance_after: MicroUsd,
    /// The key that made it unique.
    pub idempotency_key: String,
    /// For a reversal: the entry it cancels.
    pub reverses_entry_id: Option<i64>,
    /// Free-form JSON from the caller (instance id, interval, note...).
    pub meta: serde_json::Value,
    /// When it was written (UTC).
    pub created_at: DateTime<Utc>,
}

/// Serialised with the seed's names (`amount_usd`, exact decimal) plus the
/// integer micro-USD amounts.
impl Serialize for LedgerEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("LedgerEntry", 12)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("user_id", &self.user_id)?;
        s.serialize_field("kind", &self.kind)?;
        s.serialize_field("source", &self.source)?;
        s.serialize_field("amount_usd", &self.amount.to_exact_usd_json())?;
        s.serialize_field("amount_micro_usd", &self.amount.micros())?;
        s.serialize_field("balance_after_micro_usd", &self.balance_after.micros())?;
        s.serialize_field("idempotency_key", &self.idempotency_key)?;
        s.serialize_field("reverses_entry_id", &self.reverses_entry_id)?;
        s.serialize_field("meta", &self.meta)?;
        s.serialize_field("created_at", &self.created_at.timestamp_millis())?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_printable_and_bounded() {
        assert_eq!(IdempotencyKey::parse(" abc-1 ").unwrap().as_str(), "abc-1");
        assert_eq!(IdempotencyKey::parse(""), Err(IdempotencyKeyError::Missing));
        assert_eq!(
            IdempotencyKey::parse("a\nb"),
            Err(IdempotencyKeyError::Invalid)
        );
        assert_eq!(
            IdempotencyKey::parse("ключ"),
            Err(IdempotencyKeyError::Invalid)
        );
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(201)),
            Err(IdempotencyKeyError::Invalid)
        );
        let internal = IdempotencyKey::internal(&["monthly", "u1", "2026-11"]);
        assert_eq!(internal.as_str(), "clawplane:monthly:u1:2026-11");
        assert!(internal.is_internal());
    }

    #[test]
    fn entries_serialise_with_exact_amounts() {
        let entry = LedgerEntry {
            id: 7,
            user_id: UserId::parse("u").unwrap(),
            kind: EntryKind::Burn,
            source: "manual".into(),
            amount: MicroUsd::from_micros(-1_234_567),
            balance_after: MicroUsd::from_micros(5),
            idempotency_key: "k".into(),
            reverses_entry_id: None,
            meta: serde_json::json!({}),
            created_at: Utc::now(),
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.contains(r#""amount_usd":-1.234567"#), "{json}");
        assert!(json.contains(r#""amount_micro_usd":-1234567"#), "{json}");
        assert!(json.contains(r#""kind":"burn""#));
    }
}
