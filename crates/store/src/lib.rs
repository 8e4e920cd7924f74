//! Storage for clawplane: the only crate that holds SQL.
//!
//! One implementation, [`Store`], runs the same SQL on two backends through
//! sqlx's `Any` driver: a SQLite file in the data directory (the embedded
//! default, WAL mode) and PostgreSQL (when `DATABASE_URL` is `postgres://`).
//! The schema differs only where the engines do (identity columns, `BLOB` vs
//! `BYTEA`); each backend has its own embedded, versioned migrations.
//!
//! Portable column types were chosen so that one code path serves both:
//! ids are text, money is a signed `BIGINT` of micro-USD, timestamps are
//! `BIGINT` milliseconds since the Unix epoch (UTC), JSON is text.
//!
//! - [`connect`]: opening a store, pool settings, pragmas, migrations;
//! - [`instances`]: instance rows and status transitions;
//! - [`secrets`]: sealed secret columns, read and written as [`SealedSecret`]s;
//! - [`vault`]: plaintext in and out, sealing with the key ring (rotation too);
//! - [`ledger`]: credit ledger entries, per-user balances and model holds;
//! - [`access`]: per-user API tokens (digests only) and the audit log;
//! - [`console`]: console accounts and sessions (digests only);
//! - [`door_passes`]: the passes and cookies of instances' doors (digests only).
//!
//! [`SealedSecret`]: clawplane_secrets::SealedSecret

pub mod access;
pub mod connect;
pub mod console;
pub mod door_passes;
pub mod error;
pub mod instances;
pub mod ledger;
pub mod model_tokens;
pub mod secrets;
pub mod vault;

mod time;

pub use access::{NewAudit, MAX_TOKENS_PER_USER};
pub use connect::{Backend, Store, StoreOptions};
pub use console::SessionRecord;
pub use door_passes::PassKind;
pub use error::StoreError;
pub use instances::NewInstance;
pub use ledger::holds::{
    Hold, HoldId, HoldProblem, HoldState, NewHold, Settlement, MAX_REQUEST_ID_LEN, MODEL_SOURCE,
};
pub use ledger::{Appended, BalanceMismatch, CursorAdvance, NewEntry, VerifyReport};
pub use secrets::SecretRef;
pub use vault::{RotationReport, Vault, VaultError};
