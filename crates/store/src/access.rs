//! Per-user API tokens (by digest only) and the audit log.

use chrono::{DateTime, Utc};
use clawplane_domain::{ApiToken, AuditEntry, TokenName, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use crate::time::{from_millis, now, to_millis};
use crate::{Store, StoreError};

/// Most live (unrevoked) tokens a user may hold.
pub const MAX_TOKENS_PER_USER: i64 = 50;

/// Most revoked tokens kept per user (listed as revoked); older ones are
/// deleted when a token is created, so creating and revoking in a loop
/// never grows the table without bound.
pub const MAX_REVOKED_TOKENS_KEPT: i64 = 50;

/// How often `last_used_at` is written for one token, at most.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// An audit record to write.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    /// `control`, `user`, `system`.
    pub actor: &'a str,
    /// `secret.read`, `secret.write`, ...
    pub action: &'a str,
    /// Whose data.
    pub user_id: &'a UserId,
    /// Which instance.
    pub instance_id: Option<String>,
    /// Which secret (its name).
    pub subject: Option<&'a str>,
    /// The request id.
    pub request_id: Option<&'a str>,
}

const TOKEN_COLUMNS: &str =
    "id, user_id, name, hint, created_at, last_used_at, revoked_at, token_digest";

impl Store {
    /// Records a new token for `user`. Refused while the user holds
    /// [`MAX_TOKENS_PER_USER`] live tokens (revoked ones do not count);
    /// revoked tokens past [`MAX_REVOKED_TOKENS_KEPT`] are deleted, oldest first.
    pub async fn create_api_token(
        &self,
        user: &UserId,
        name: &TokenName,
        digest: &str,
        hint: &str,
    ) -> Result<ApiToken, StoreError> {
        let live: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.as_str().to_owned())
        .fetch_one(&self.write)
        .await?
        .try_get("n")?;
        if live >= MAX_TOKENS_PER_USER {
            return Err(StoreError::TooManyTokens);
        }
        sqlx::query(
            "DELETE FROM api_tokens WHERE user_id = $1 AND revoked_at IS NOT NULL AND id NOT IN \
             (SELECT id FROM api_tokens WHERE user_id = $1 AND revoked_at IS NOT NULL \
              ORDER BY revoked_at DESC, id LIMIT $2)",
        )
        .bind(user.as_str().to_owned())
        .bind(MAX_REVOKED_TOKENS_KEPT)
        .execute(&self.write)
        .await?;
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_digest, hint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_string())
        .bind(user.as_str().to_owned())
        .bind(name.as_str().to_owned())
        .bind(digest.to_owned())
        .bind(hint.to_owned())
        .bind(to_millis(now()))
        .execute(&self.write)
        .await?;
        self.api_token(user, id).await
    }

    async fn api_token(&self, user: &UserId, id: Uuid) -> Result<ApiToken, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1 AND user_id = $2"
        ))
        .bind(id.to_string())
        .bind(user.as_str().to_owned())
        .fetch_optional(&self.write)
        .await?
        .ok_or(StoreError::TokenNotFound)?;
        token_from_row(&row)
    }

    /// The user's tokens, newest first.
    pub async fn api_tokens(&self, user: &UserId) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id"
        ))
        .bind(user.as_str().to_owned())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes one of the user's tokens (another user's id is "not found").
    /// Revoking twice is a no-op.
    pub async fn revoke_api_token(&self, user: &UserId, id: Uuid) -> Result<ApiToken, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3",
        )
        .bind(to_millis(now()))
        .bind(id.to_string())
        .bind(user.as_str().to_owned())
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::TokenNotFound);
        }
        self.api_token(user, id).await
    }

    /// The owner of the live token with this digest, if any; notes its use.
    pub async fn user_for_token_digest(&self, digest: &str) -> Result<Option<UserId>, StoreError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_digest = $1 AND revoked_at IS NULL"
        ))
        .bind(digest.to_owned())
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        let at = to_millis(now());
        let stale = token
            .last_used_at
            .is_none_or(|t| at - to_millis(t) >= LAST_USED_EVERY_MS);
        if stale {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(at)
                .bind(token.id.to_string())
                .execute(&self.write)
                .await?;
        }
        Ok(Some(token.user_id))
    }

    /// Appends an audit record.
    pub async fn audit(&self, entry: NewAudit<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, user_id, instance_id, subject, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(to_millis(now()))
        .bind(entry.actor.to_owned())
        .bind(entry.action.to_owned())
        .bind(entry.user_id.as_str().to_owned())
        .bind(entry.instance_id)
        .bind(entry.subject.map(str::to_owned))
        .bind(entry.request_id.map(str::to_owned))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The user's audit records, newest first, at most `limit`.
    pub async fn audit_entries(
        &self,
        user: &UserId,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, user_id, instance_id, subject, request_id \
             FROM audit_log WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user.as_str().to_owned())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: from_millis(r.try_get("at")?)?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    user_id: parse_user(r.try_get("user_id")?)?,
                    instance_id: r.try_get("instance_id")?,
                    subject: r.try_get("subject")?,
                    request_id: r.try_get("request_id")?,
                })
            })
            .collect()
    }
}

fn parse_user(raw: String) -> Result<UserId, StoreError> {
    UserId::parse(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken, StoreError> {
    let id: String = row.try_get("id")?;
    let name: String = row.try_get("name")?;
    let millis = |col: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<i64> = row.try_get(col)?;
        v.map(from_millis).transpose()
    };
    Ok(ApiToken {
        id: Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        user_id: parse_user(row.try_get("user_id")?)?,
        name: TokenName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        hint: row.try_get("hint")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        last_used_at: millis("last_used_at")?,
        revoked_at: millis("revoked_at")?,
    })
}
