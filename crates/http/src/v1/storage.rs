//! `POST /v1/storage/backup`, `GET /v1/storage/backups`,
//! `POST /v1/storage/restore`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::status::GatewayStatus;

/// One backup, as listed (the backup store's summary; its field names are
/// snake_case, unlike the bodies around it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// The backup id, sortable by time (`20261124T061500.123Z-1a2b3c4d`).
    pub id: String,
    /// When the backup was written.
    pub created_at: DateTime<Utc>,
    /// Why it was taken (`manual`, `scheduled`, `before-stop`...).
    pub trigger: String,
    /// Number of files.
    pub files: u64,
    /// Total size of the files as stored.
    pub bytes: u64,
}

/// `POST /v1/storage/backup`: the backup just taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupTaken {
    /// The new backup.
    pub backup: BackupSummary,
    /// Blob bytes uploaded.
    pub bytes_uploaded: u64,
    /// Distinct blobs uploaded.
    pub blobs_uploaded: u64,
    /// Distinct blobs the store already had.
    pub blobs_reused: u64,
    /// The latest backup after this one (this one, unless another followed).
    pub last_backup: Option<BackupSummary>,
}

/// `GET /v1/storage/backups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupList {
    /// Newest first.
    pub backups: Vec<BackupSummary>,
}

/// The body of `POST /v1/storage/restore` (an empty body means the same as
/// `{"backupId": null}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRequest {
    /// The backup to restore (an id from the list); `None`: the latest.
    #[serde(default)]
    pub backup_id: Option<String>,
}

/// `POST /v1/storage/restore`: what was restored, and the gateway after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReply {
    /// The backup restored.
    pub restored: Restored,
    /// The gateway (started again if it ran before).
    pub gateway: GatewayStatus,
}

/// [`RestoreReply::restored`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// The backup's id.
    pub backup_id: String,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}
