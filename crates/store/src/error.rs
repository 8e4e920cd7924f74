//! The store's one error type.
//!
//! Variants that a caller can act on are explicit; everything the database
//! itself reports is [`StoreError::Database`], whose message is for the log
//! only (the HTTP layers map it to a generic 500 or 503 without its text).

use clawplane_domain::{InstanceStatus, MicroUsd, StatusError, UserId};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row with that id.
    #[error("instance not found")]
    NotFound,
    /// The user already has a live (not deleted) instance.
    #[error("user {0} already has a live instance")]
    LiveInstanceExists(UserId),
    /// Another live instance already uses this runtime name.
    #[error("runtime name is already in use")]
    RuntimeNameTaken,
    /// The status change is not allowed.
    #[error(transparent)]
    Transition(#[from] StatusError),
    /// The row changed under us too many times in a row.
    #[error("the instance was changed concurrently; retry")]
    Contended,
    /// The instance is in a status that does not allow this write.
    #[error("the instance is {0}")]
    WrongStatus(InstanceStatus),
    /// The idempotency key was used before for a different request.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyConflict,
    /// The entry would take the balance below the floor.
    #[error("insufficient credits")]
    InsufficientCredits {
        /// The balance before the refused entry.
        balance: MicroUsd,
    },
    /// A console account already uses this email address.
    #[error("an account with this email address already exists")]
    EmailTaken,
    /// No API token with that id for that user.
    #[error("API token not found")]
    TokenNotFound,
    /// The user holds the most tokens allowed.
    #[error("too many API tokens: revoke one first")]
    TooManyTokens,
    /// No ledger entry with that id for that user.
    #[error("ledger entry not found")]
    EntryNotFound,
    /// The entry has already been reversed, or is itself a reversal.
    #[error("ledger entry {0} cannot be reversed: it is a reversal or was already reversed")]
    NotReversible(i64),
    /// A stored value could not be read back (a bug or manual tampering).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database could not be reached or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The store was closed (the process is shutting down).
    #[error("the store is closed")]
    Closed,
    /// The database URL names a backend clawplane does not support.
    #[error("unsupported DATABASE_URL scheme: use sqlite:// (or leave it unset) or postgres://")]
    UnsupportedUrl,
}

impl StoreError {
    /// Whether the database reported a unique-constraint violation.
    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
    }

    /// Whether the database reported that the unique index `index` was violated.
    pub(crate) fn violates(err: &sqlx::Error, index: &str, column: &str) -> bool {
        match err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // PostgreSQL names the index; SQLite names the column.
                db.constraint() == Some(index) || db.message().contains(column)
            }
            _ => false,
        }
    }
}
