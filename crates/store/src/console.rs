//! Console accounts and sessions. Sessions are looked up by the SHA-256
//! digest of their cookie; the cookie itself is never stored.
//!
//! The passes of an instance's door are not sessions: they have their own
//! table ([`crate::door_passes`]); signing out deletes both
//! ([`Store::delete_session_and_passes`]).

use chrono::{DateTime, Utc};
use clawplane_domain::{Account, Email};
use sqlx::Row;
use uuid::Uuid;

use crate::time::{now, to_millis};
use crate::{Store, StoreError};

/// A live session: its account and its CSRF token.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The signed-in account.
    pub account: Account,
    /// The token every form of this session must carry.
    pub csrf_token: String,
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
}
