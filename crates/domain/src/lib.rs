//! The domain of clawplane: the values every other part agrees on.
//!
//! Everything here is pure (no I/O, no clock reads except where a caller passes
//! the time in) and every type parses its input at the edge, so an invalid value
//! cannot exist inside the program ("parse, don't validate"):
//!
//! - [`status`]: instance statuses and the one table of allowed transitions;
//! - [`money`]: integer micro-USD amounts, exact decimal parsing, cent rounding;
//! - [`ids`]: user ids, instance ids and runtime names;
//! - [`instance`]: the instance record (the seed's `openclaw_instances` row);
//! - [`ledger`]: credit ledger entries and idempotency keys;
//! - [`access`]: per-user API tokens (as listed) and audit entries;
//! - [`console`]: console accounts and email addresses;
//! - [`provider_key`]: the names a user's model provider keys may have.

pub mod access;
pub mod console;
pub mod ids;
pub mod instance;
pub mod ledger;
pub mod money;
pub mod provider_key;
pub mod status;

pub use access::{ApiToken, AuditEntry, TokenName, TokenNameError};
pub use console::{Account, Email, EmailError};
pub use ids::{is_backup_id, IdError, InstanceId, RuntimeName, UserId};
pub use instance::{Instance, InstanceFields, SecretName};
pub use ledger::{EntryKind, IdempotencyKey, IdempotencyKeyError, LedgerEntry};
pub use money::{MicroUsd, MoneyError};
pub use provider_key::{ProviderKeyName, ProviderKeyNameError};
pub use status::{InstanceStatus, StatusError};
