//! Console accounts and sessions. Sessions are looked up by the SHA-256
//! digest of their cookie; the cookie itself is never stored.
//!
//! The same table holds the passes of an instance's door (rows whose
//! form-token field starts with `handoff:` or `door:`, see [`PassKind`]):
//! they are counted and trimmed per account here, so no account can grow
//! the table without bound.

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

/// The two kinds of pass a console session hands out, told apart by the
/// start of their form-token field (the server's `ingress::door` writes
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// A one-time pass from the console to an instance's door
    /// (`handoff:<runtime_name>`).
    Handoff,
    /// A door cookie of an instance's host (`door:<runtime_name>`).
    Door,
}

impl PassKind {
    /// The `LIKE` pattern of this kind's form-token field (a fixed string,
    /// never built from input).
    fn pattern(self) -> &'static str {
        match self {
            PassKind::Handoff => "handoff:%",
            PassKind::Door => "door:%",
        }
    }
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

    /// Deletes one session or pass (a pass is used once); unknown digests
    /// are ignored. Expired rows are [`Store::delete_expired_sessions`]'s.
    pub async fn delete_session(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE digest = $1")
            .bind(digest.to_owned())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Signs out: deletes this session and every pass of its account (the
    /// one-time passes and door cookies, whose form-token field starts with
    /// `handoff:` or `door:`), so the account's gateway doors close with the
    /// console. Other accounts' rows and the account's other console
    /// sessions are kept; unknown digests are ignored.
    pub async fn delete_session_and_passes(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM console_sessions \
             WHERE user_id IN (SELECT user_id FROM console_sessions WHERE digest = $1) \
             AND (digest = $1 OR csrf_token LIKE 'handoff:%' OR csrf_token LIKE 'door:%')",
        )
        .bind(digest.to_owned())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Deletes every expired session, pass and door cookie; returns how
    /// many rows went.
    pub async fn delete_expired_sessions(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(to_millis(now()))
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// How many live (not expired) passes of `kind` the account `user_id` holds.
    pub async fn live_passes(&self, user_id: &str, kind: PassKind) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM console_sessions \
             WHERE user_id = $1 AND csrf_token LIKE $2 AND expires_at > $3",
        )
        .bind(user_id.to_owned())
        .bind(kind.pattern())
        .bind(to_millis(now()))
        .fetch_one(&self.read)
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Keeps the account's `keep` newest passes of `kind` and deletes the
    /// others (expired or not); returns how many went. Other accounts' rows,
    /// the other kind and console sessions are untouched.
    pub async fn keep_newest_passes(
        &self,
        user_id: &str,
        kind: PassKind,
        keep: u32,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM console_sessions WHERE user_id = $1 AND csrf_token LIKE $2 \
             AND digest NOT IN (SELECT digest FROM console_sessions \
             WHERE user_id = $1 AND csrf_token LIKE $2 \
             ORDER BY created_at DESC, expires_at DESC, digest DESC LIMIT $3)",
        )
        .bind(user_id.to_owned())
        .bind(kind.pattern())
        .bind(i64::from(keep))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}
