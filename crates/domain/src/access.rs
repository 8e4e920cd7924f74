//! Access records: per-user API tokens (never their value) and audit entries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::UserId;

/// Longest token name accepted, in characters.
pub const MAX_TOKEN_NAME_LEN: usize = 64;

/// A person's label for an API token: trimmed, 1-64 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TokenName(String);

/// Why a token name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token name must be 1-64 printable characters")]
pub struct TokenNameError;

impl TokenName {
    /// Parses a name from untrusted input.
    pub fn parse(input: &str) -> Result<Self, TokenNameError> {
        let trimmed = input.trim();
        let len = trimmed.chars().count();
        if len == 0 || len > MAX_TOKEN_NAME_LEN || trimmed.chars().any(char::is_control) {
            return Err(TokenNameError);
        }
        Ok(TokenName(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An API token as listed to its owner: a label and the last characters of
/// the token, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Its id (for revoking).
    pub id: Uuid,
    /// The owner.
    pub user_id: UserId,
    /// The owner's label.
    pub name: TokenName,
    /// `cpk_…` and the last four characters, to tell tokens apart.
    pub hint: String,
    /// When it was created.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub created_at: DateTime<Utc>,
    /// When it was last used (updated at most once a minute).
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked token authenticates nothing.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One audit record: who did what to whose secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// When.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub at: DateTime<Utc>,
    /// Who: `control` (the control key), `user` (the owner), `system`.
    pub actor: String,
    /// What: `secret.read`, `secret.write`, `secret.clear`, ...
    pub action: String,
    /// Whose data.
    pub user_id: UserId,
    /// Which instance, if any.
    pub instance_id: Option<String>,
    /// Which secret or object (a name, never a value).
    pub subject: Option<String>,
    /// The request's id, to find its log lines.
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names_are_bounded_and_printable() {
        assert_eq!(TokenName::parse("  laptop ").unwrap().as_str(), "laptop");
        assert!(TokenName::parse("").is_err());
        assert!(TokenName::parse("   ").is_err());
        assert!(TokenName::parse("a\nb").is_err());
        assert!(TokenName::parse(&"x".repeat(65)).is_err());
        assert!(TokenName::parse(&"é".repeat(64)).is_ok());
    }
}
