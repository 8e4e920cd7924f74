//! Console accounts and sessions. Sessions are looked up by the SHA-256
//! digest of their cookie; the cookie itself is never stored.
//!
//! The passes of an instance's door are not sessions: they have their own
//! table ([`crate::door_passes`]); signing out deletes both
//! ([`Store::delete_session_and_passes`]).
//!
//! An account's owner sees its live sessions ([`Store::live_sessions`]) by
//! when they began and what their client was (a short description and an
//! address, [`Store::set_session_client`]), never by digest or token, and
//! can end all but the current one ([`Store::delete_other_sessions_and_passes`]).

use chrono::{DateTime, Utc};
use clawplane_domain::{Account, Email, UserId};
use sqlx::Row;
use uuid::Uuid;

use crate::time::{from_millis, now, to_millis};
use crate::{Store, StoreError};

/// A live session: its account and its CSRF token.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The signed-in account.
    pub account: Account,
    /// The token every form of this session must carry.
    pub csrf_token: String,
}

/// Longest client description and address kept (in characters).
pub const MAX_CLIENT_CHARS: usize = 120;

/// A live session as its owner sees it: nothing that could be used to
/// take it over (no digest, no token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// When it began (signing in or up).
    pub created_at: DateTime<Utc>,
    /// When it ends unless signed out before.
    pub expires_at: DateTime<Utc>,
    /// A short description of the client (its User-Agent), if it sent one.
    pub client: Option<String>,
    /// The client's address at sign-in, if known.
    pub address: Option<String>,
    /// Whether this is the session the listing was asked from.
    pub current: bool,
}

/// What [`Store::delete_other_sessions_and_passes`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignedOut {
    /// Console sessions deleted.
    pub sessions: u64,
    /// Door passes and door cookies deleted.
    pub passes: u64,
}

/// `text` without control characters, at most [`MAX_CLIENT_CHARS`] long;
/// `None` when nothing is left.
fn short(text: Option<&str>) -> Option<String> {
    let kept: String = text?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CLIENT_CHARS)
        .collect();
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_owned())
}

impl Store {
    /// Creates an account; [`StoreError::EmailTaken`] when the address is in use.
    pub async fn create_account(
        &self,
        email: &Email,
        password_hash: &str,
    ) -> Result<Account, StoreError> {
        let id = Uuid::new_v4().to_string();
        let result = sqlx::query(
            "INSERT INTO console_users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.clone())
        .bind(email.as_str().to_owned())
        .bind(password_hash.to_owned())
        .bind(to_millis(now()))
        .execute(&self.write)
        .await;
        match result {
            Ok(_) => Ok(Account {
                id,
                email: email.clone(),
            }),
            Err(e) if StoreError::is_unique_violation(&e) => Err(StoreError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// The account with this address and its password hash, if any.
    pub async fn account_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<(Account, String)>, StoreError> {
        let row = sqlx::query("SELECT id, password_hash FROM console_users WHERE email = $1")
            .bind(email.as_str().to_owned())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| {
            Ok((
                Account {
                    id: r.try_get("id")?,
                    email: email.clone(),
                },
                r.try_get("password_hash")?,
            ))
        })
        .transpose()
    }

    /// Records a new session.
    pub async fn create_session(
        &self,
        digest: &str,
        account: &Account,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO console_sessions (digest, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest.to_owned())
        .bind(account.id.clone())
        .bind(csrf_token.to_owned())
        .bind(to_millis(now()))
        .bind(to_millis(expires_at))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The live (not expired) session with this digest.
    pub async fn session(&self, digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT s.csrf_token, u.id, u.email FROM console_sessions s \
             JOIN console_users u ON u.id = s.user_id WHERE s.digest = $1 AND s.expires_at > $2",
        )
        .bind(digest.to_owned())
        .bind(to_millis(now()))
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            let email: String = r.try_get("email")?;
            Ok(SessionRecord {
                account: Account {
                    id: r.try_get("id")?,
                    email: Email::parse(&email).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                },
                csrf_token: r.try_get("csrf_token")?,
            })
        })
        .transpose()
    }

    /// Signs out: deletes this session and every door pass and door cookie
    /// of its account, in one transaction, so the account's gateway doors
    /// close with the console. Other accounts' rows and the account's other
    /// console sessions are kept; unknown digests are ignored.
    pub async fn delete_session_and_passes(&self, digest: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM door_passes \
             WHERE user_id IN (SELECT user_id FROM console_sessions WHERE digest = $1)",
        )
        .bind(digest.to_owned())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_sessions WHERE digest = $1")
            .bind(digest.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes every expired console session; returns how many went (door
    /// passes are [`Store::delete_expired_door_passes`]'s).
    pub async fn delete_expired_sessions(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(to_millis(now()))
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records what the session with this digest was started from: a short
    /// client description (the User-Agent) and its address, each stripped
    /// of control characters and cut to [`MAX_CLIENT_CHARS`]. An unknown
    /// digest is ignored.
    pub async fn set_session_client(
        &self,
        digest: &str,
        client: Option<&str>,
        address: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_sessions SET client = $1, client_address = $2 WHERE digest = $3",
        )
        .bind(short(client))
        .bind(short(address))
        .bind(digest.to_owned())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// `user`'s live sessions, newest first, at most `limit`; the one with
    /// digest `current` (if any) is marked so.
    pub async fn live_sessions(
        &self,
        user: &UserId,
        current: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT created_at, expires_at, client, client_address, \
             CAST(CASE WHEN digest = $1 THEN 1 ELSE 0 END AS BIGINT) AS is_current \
             FROM console_sessions WHERE user_id = $2 AND expires_at > $3 \
             ORDER BY created_at DESC, digest DESC LIMIT $4",
        )
        // No digest is empty, so without a current session none matches.
        .bind(current.unwrap_or("").to_owned())
        .bind(user.as_str().to_owned())
        .bind(to_millis(now()))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let is_current: i64 = r.try_get("is_current")?;
                Ok(SessionSummary {
                    created_at: from_millis(r.try_get("created_at")?)?,
                    expires_at: from_millis(r.try_get("expires_at")?)?,
                    client: r.try_get("client")?,
                    address: r.try_get("client_address")?,
                    current: is_current == 1,
                })
            })
            .collect()
    }

    /// Signs `user` out everywhere else: deletes every console session of
    /// the account but the one with digest `keep` (all of them when `None`),
    /// and every door pass and door cookie of the account, in one
    /// transaction. Other accounts' rows are untouched.
    pub async fn delete_other_sessions_and_passes(
        &self,
        user: &UserId,
        keep: Option<&str>,
    ) -> Result<SignedOut, StoreError> {
        let mut tx = self.begin_write().await?;
        let passes = sqlx::query("DELETE FROM door_passes WHERE user_id = $1")
            .bind(user.as_str().to_owned())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let sessions =
            sqlx::query("DELETE FROM console_sessions WHERE user_id = $1 AND digest <> $2")
                .bind(user.as_str().to_owned())
                .bind(keep.unwrap_or("").to_owned())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(SignedOut { sessions, passes })
    }
}
