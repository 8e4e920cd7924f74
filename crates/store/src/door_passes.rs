//! The passes of an instance's door, in their own table (`door_passes`):
//! the console's one-time passes and the door cookies they become, each
//! bound to one account and one instance host (its runtime name). They are
//! looked up by the SHA-256 digest of their value; the value itself is
//! never stored.
//!
//! Lookups see only live (not expired) passes; expired ones are deleted by
//! [`Store::delete_expired_door_passes`], and each account's are trimmed by
//! [`Store::keep_newest_door_passes`], so no account can grow the table
//! without bound. Signing out deletes the account's passes with its
//! session ([`Store::delete_session_and_passes`]).

use chrono::{DateTime, Utc};
use clawplane_domain::UserId;
use sqlx::Row;

use crate::time::{now, to_millis};
use crate::{Store, StoreError};

/// The two kinds of door pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// A one-time pass from the console to an instance's door.
    Handoff,
    /// A door cookie of an instance's host.
    Door,
}

impl PassKind {
    /// The `kind` column's value (a fixed string, never built from input).
    fn as_str(self) -> &'static str {
        match self {
            PassKind::Handoff => "handoff",
            PassKind::Door => "door",
        }
    }
}

fn owner(row: &sqlx::any::AnyRow) -> Result<UserId, StoreError> {
    let user_id: String = row.try_get("user_id")?;
    UserId::parse(&user_id).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    /// Records a pass of `kind` for `user` to `runtime_name`'s door.
    pub async fn create_door_pass(
        &self,
        digest: &str,
        user: &UserId,
        kind: PassKind,
        runtime_name: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO door_passes (digest, user_id, kind, runtime_name, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(digest.to_owned())
        .bind(user.as_str().to_owned())
        .bind(kind.as_str())
        .bind(runtime_name.to_owned())
        .bind(to_millis(now()))
        .bind(to_millis(expires_at))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The owner of the live pass of `kind` with this digest to
    /// `runtime_name`'s door; `None` for an unknown or expired digest, a
    /// pass of the other kind, or one to another host.
    pub async fn door_pass_owner(
        &self,
        digest: &str,
        kind: PassKind,
        runtime_name: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id FROM door_passes \
             WHERE digest = $1 AND kind = $2 AND runtime_name = $3 AND expires_at > $4",
        )
        .bind(digest.to_owned())
        .bind(kind.as_str())
        .bind(runtime_name.to_owned())
        .bind(to_millis(now()))
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(owner).transpose()
    }

    /// Uses a pass once: deletes the live pass of `kind` with this digest to
    /// `runtime_name`'s door and returns its owner, in one statement, so two
    /// requests with the same pass cannot both have it. Whatever
    /// [`Store::door_pass_owner`] would not find is left alone.
    pub async fn take_door_pass(
        &self,
        digest: &str,
        kind: PassKind,
        runtime_name: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM door_passes \
             WHERE digest = $1 AND kind = $2 AND runtime_name = $3 AND expires_at > $4 \
             RETURNING user_id",
        )
        .bind(digest.to_owned())
        .bind(kind.as_str())
        .bind(runtime_name.to_owned())
        .bind(to_millis(now()))
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(owner).transpose()
    }

    /// How many live (not expired) passes of `kind` `user` holds.
    pub async fn live_door_passes(&self, user: &UserId, kind: PassKind) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM door_passes \
             WHERE user_id = $1 AND kind = $2 AND expires_at > $3",
        )
        .bind(user.as_str().to_owned())
        .bind(kind.as_str())
        .bind(to_millis(now()))
        .fetch_one(&self.read)
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Keeps `user`'s `keep` newest passes of `kind` and deletes the others
    /// (expired or not); returns how many went. Other accounts' passes and
    /// the other kind are untouched.
    pub async fn keep_newest_door_passes(
        &self,
        user: &UserId,
        kind: PassKind,
        keep: u32,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM door_passes WHERE user_id = $1 AND kind = $2 \
             AND digest NOT IN (SELECT digest FROM door_passes \
             WHERE user_id = $1 AND kind = $2 \
             ORDER BY created_at DESC, expires_at DESC, digest DESC LIMIT $3)",
        )
        .bind(user.as_str().to_owned())
        .bind(kind.as_str())
        .bind(i64::from(keep))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes every expired pass and door cookie; returns how many went.
    pub async fn delete_expired_door_passes(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM door_passes WHERE expires_at <= $1")
            .bind(to_millis(now()))
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }
}
