//! The billing error type. Each message says what happened and what to do;
//! the HTTP surfaces map variants to statuses (400, 402, 404, 409, 500).

use clawplane_domain::{IdempotencyKeyError, MicroUsd, MoneyError};
use clawplane_store::StoreError;

/// Everything a billing operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// The amount is malformed, zero, negative or too large.
    #[error(transparent)]
    Amount(#[from] MoneyError),
    /// The idempotency key is missing or malformed.
    #[error(transparent)]
    IdempotencyKey(#[from] IdempotencyKeyError),
    /// The key was used before for a different request.
    #[error("this Idempotency-Key was already used for a different request; use a new key for a new operation")]
    IdempotencyConflict,
    /// The burn would take the balance below the floor.
    #[error("insufficient credits: the balance is {balance} USD and this burn of {amount} USD would take it below {floor} USD; add credits first")]
    InsufficientCredits {
        /// Balance before the burn.
        balance: MicroUsd,
        /// The refused amount.
        amount: MicroUsd,
        /// The floor.
        floor: MicroUsd,
    },
    /// No such entry for this user.
    #[error("ledger entry not found")]
    EntryNotFound,
    /// The entry is a reversal or already reversed.
    #[error(
        "ledger entry {0} cannot be reversed: it is a reversal itself or was already reversed"
    )]
    NotReversible(i64),
    /// `meta` is not a JSON object of at most 4 KiB.
    #[error("meta must be a JSON object of at most 4096 bytes")]
    InvalidMeta,
    /// The source label is not a short lower-case word.
    #[error("source must be 1-32 characters of a-z, 0-9 and '_'")]
    InvalidSource,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for BillingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyConflict => BillingError::IdempotencyConflict,
            StoreError::EntryNotFound => BillingError::EntryNotFound,
            StoreError::NotReversible(id) => BillingError::NotReversible(id),
            other => BillingError::Store(other),
        }
    }
}
