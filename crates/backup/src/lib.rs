//! Backups of one OpenClaw instance's state directory: consistent, content-addressed,
//! deduplicated, to a local directory or S3-compatible storage (R2, AWS S3, MinIO, ...).
//!
//! ```no_run
//! # async fn demo() -> Result<(), clawplane_backup::BackupError> {
//! use clawplane_backup::{BackupStore, BackupTarget, Retention, S3Settings};
//! let s3 = S3Settings::from_lookup(|name| std::env::var(name).ok());
//! let target = BackupTarget::parse("s3://clawplane-backups/prod", &s3)?;
//! let store = BackupStore::open(&target, "inst-42").await?;
//! let state = std::path::Path::new("/var/lib/clawplane/instances/inst-42/state");
//! if store.has_changed(state).await? {
//!     let report = store.backup(state, "scheduled").await?;
//!     println!("{} uploaded {} bytes", report.backup.id, report.bytes_uploaded);
//! }
//! store.prune(&Retention::default()).await?;
//! // later, with the gateway stopped:
//! store.restore_and_swap(None, state).await?;
//! # Ok(()) }
//! ```
//!
//! What goes in a backup (see [`DEFAULT_EXCLUDES`] for the exclude syntax): every
//! directory, regular file and symlink of the state directory except `/tmp/`, `/cache/`,
//! `*.lock`, the configured excludes and SQLite's `-wal`/`-shm`/`-journal` files. SQLite
//! databases, recognised by their header, are stored as a `VACUUM INTO` snapshot. Symlinks are
//! recorded as links and restored as links; they are never followed.
//!
//! The state directory is hostile input: the tenant writes it, and this crate runs as root
//! outside the tenant's cell. So no symlink is ever followed, at any depth, even one swapped in
//! between the scan and the read (every path is opened from directory handles with
//! `O_NOFOLLOW`); FIFOs, sockets and devices are never opened; a file is read only if `fstat`
//! says it is a regular file; sizes are bounded ([`BackupOptions::max_file_bytes`]: a larger
//! file is left out with a warning; [`BackupOptions::max_total_bytes`]: a larger state fails
//! the backup). A restore writes only through directory handles it created, with `O_EXCL`.
//!
//! Modules: `target` (URLs and clients), `beneath` (opening paths of a hostile tree), `scan`
//! (what is included), `snapshot` (consistent copies), `manifest` (the per-backup record),
//! `objects` (keys, reads, uploads), `store` (backup, list, latest, has_changed), `restore`,
//! `retention` (prune), `error`.
//!
//! Not done here: compression and client-side encryption. Blobs are stored as they are, so the
//! bucket holds the instance's `.env`, credentials and SQLite secrets in plaintext: it must be
//! private, and server-side encryption should be on.

mod beneath;
mod error;
mod manifest;
mod objects;
mod restore;
mod retention;
mod scan;
mod snapshot;
mod store;
mod target;

pub use error::BackupError;
pub use manifest::{BackupSummary, Entry, Manifest, SourceStat};
pub use object_store;
pub use restore::RestoreReport;
pub use retention::{PruneReport, Retention};
pub use scan::DEFAULT_EXCLUDES;
pub use snapshot::RACY_WINDOW;
pub use store::{BackupOptions, BackupReport, BackupStore};
pub use target::{BackupTarget, S3Settings, S3Timeouts};

/// Lets the runtime pause the gateway's writes around the snapshot phase of a backup (for
/// example with the gateway's `gateway.suspend.prepare` / `gateway.suspend.resume`).
///
/// SQLite databases are consistent without it (`VACUUM INTO`); it makes the other files
/// (JSON config, workspace) consistent with the databases and with each other.
#[async_trait::async_trait]
pub trait Quiesce: Send + Sync {
    /// Called before the state directory is read. An error aborts the backup.
    async fn suspend(&self) -> Result<(), String>;
    /// Called after the snapshot, whether it succeeded or not, whenever `suspend` succeeded.
    async fn resume(&self) -> Result<(), String>;
}

/// A name usable as one segment of an object key: letters, digits, `.`, `_`, `-`; not `.`/`..`.
pub(crate) fn valid_key_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
