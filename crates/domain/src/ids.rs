//! Identifiers: who a user is, which instance, and the runtime's DNS-safe name.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest user id accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// No user id was given, or only whitespace.
    #[error("missing user id")]
    MissingUserId,
    /// The user id is too long or holds control characters.
    #[error("user id must be at most 256 bytes of printable characters")]
    InvalidUserId,
    /// Not a UUID.
    #[error("instance id must be a UUID")]
    InvalidInstanceId,
    /// Not a DNS label of `[a-z0-9-]`.
    #[error(
        "runtime name must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
    )]
    InvalidRuntimeName,
}

/// The operator's identifier for a user (the seed's `user_id`): trimmed,
/// non-empty, printable, at most [`MAX_USER_ID_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// Parses a user id from untrusted input.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(IdError::MissingUserId);
        }
        if trimmed.len() > MAX_USER_ID_LEN || trimmed.chars().any(char::is_control) {
            return Err(IdError::InvalidUserId);
        }
        Ok(UserId(trimmed.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UserId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserId> for String {
    fn from(value: UserId) -> Self {
        value.0
    }
}

/// An instance's primary key: a random UUID, chosen by clawplane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(Uuid);

impl InstanceId {
    /// A fresh random id.
    pub fn new() -> Self {
        InstanceId(Uuid::new_v4())
    }

    /// Parses an id from untrusted input.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        Uuid::parse_str(input.trim())
            .map(InstanceId)
            .map_err(|_| IdError::InvalidInstanceId)
    }

    /// Wraps a UUID read from storage.
    pub const fn from_uuid(id: Uuid) -> Self {
        InstanceId(id)
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for InstanceId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A runtime's name: a DNS label (`[a-z0-9-]`, 1-63 characters, no leading or
/// trailing `-`), so it can be a host name (`<runtime_name>.localhost`), a
/// directory name and a Cloudflare resource name alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RuntimeName(String);

impl RuntimeName {
    /// Parses an exact runtime name.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let ok = !input.is_empty()
            && input.len() <= 63
            && !input.starts_with('-')
            && !input.ends_with('-')
            && input
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(RuntimeName(input.to_owned()))
        } else {
            Err(IdError::InvalidRuntimeName)
        }
    }

    /// Sanitises free text into `[a-z0-9-]` as the seed did: lower-cased,
    /// every other character becomes `-`, runs of `-` collapse, the ends are
    /// trimmed and the result is cut to 63 characters. `None` when nothing is left.
    pub fn sanitize(raw: &str) -> Option<Self> {
        let mut out = String::with_capacity(raw.len().min(63));
        for c in raw.chars().flat_map(char::to_lowercase) {
            let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            };
            if c == '-' && (out.is_empty() || out.ends_with('-')) {
                continue;
            }
            out.push(c);
            if out.len() == 63 {
                break;
            }
        }
        let trimmed = out.trim_end_matches('-');
        Self::parse(trimmed).ok()
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuntimeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RuntimeName {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RuntimeName> for String {
    fn from(value: RuntimeName) -> Self {
        value.0
    }
}

/// Whether `id` is a backup's id as runtimes name them (e.g.
/// `20261124T061500.123Z-1a2b3c4d`): 1-80 ASCII letters, digits, `-`, `_`
/// or `.`, never `..`. The one rule of `serve` and the runtime, checked
/// before an id reaches a path.
pub fn is_backup_id(id: &str) -> bool {
    (1..=80).contains(&id.len())
        && !id.contains("..")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_trimmed_and_refused_when_empty_long_or_binary() {
        assert_eq!(UserId::parse("  user_123 ").unwrap().as_str(), "user_123");
        assert_eq!(UserId::parse("   "), Err(IdError::MissingUserId));
        assert_eq!(UserId::parse(""), Err(IdError::MissingUserId));
        assert_eq!(UserId::parse("a\0b"), Err(IdError::InvalidUserId));
        assert_eq!(UserId::parse("a\nb"), Err(IdError::InvalidUserId));
        assert_eq!(UserId::parse(&"x".repeat(257)), Err(IdError::InvalidUserId));
        assert!(UserId::parse(&"x".repeat(256)).is_ok());
        assert!(UserId::parse("ana@example.com").is_ok());
    }

    #[test]
    fn runtime_names_are_dns_labels() {
        assert!(RuntimeName::parse("oc-user-1").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(RuntimeName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sanitize_keeps_only_a_z_0_9_and_dashes() {
        let name = |s: &str| RuntimeName::sanitize(s).map(|n| n.0);
        assert_eq!(
            name("OpenClaw User_42").as_deref(),
            Some("openclaw-user-42")
        );
        assert_eq!(name("--a..b--").as_deref(), Some("a-b"));
        assert_eq!(name("ünï"), Some("n".to_owned()));
        assert_eq!(name("!!!"), None);
        assert_eq!(name(&"ab-".repeat(100)).unwrap().len(), 62);
    }

    #[test]
    fn backup_ids_are_plain_names_never_paths() {
        assert!(is_backup_id("20261124T061500.123Z-1a2b3c4d"));
        for bad in ["", "..", "a/b", "a..b", "a b", "a:b", &"a".repeat(81)] {
            assert!(!is_backup_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn instance_ids_are_uuids() {
        let id = InstanceId::new();
        assert_eq!(InstanceId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(InstanceId::parse("../etc"), Err(IdError::InvalidInstanceId));
    }
}
