//! `POST /v1/storage/backup`, `GET /v1/storage/backups`, `POST /v1/storage/restore`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::Response;
use clawplane_http::v1;
use serde_json::Value;

use super::contract;
use super::error::{ok, ApiError};
use crate::backups;
use crate::gateway::GatewayState;
use crate::shared::Shared;

/// `POST /v1/storage/backup`: the new backup and `lastBackup`.
pub async fn post_backup(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let report = backups::take(&shared, "manual").await?;
    let last_backup = shared.last_backup.read().await.clone();
    Ok(ok(v1::BackupTaken {
        backup: contract::backup(report.backup),
        bytes_uploaded: report.bytes_uploaded,
        blobs_uploaded: report.blobs_uploaded,
        blobs_reused: report.blobs_reused,
        last_backup: last_backup.map(contract::backup),
    }))
}

/// `GET /v1/storage/backups`: newest first.
pub async fn get_backups(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let backups = shared.backups.list().await?;
    Ok(ok(v1::BackupList {
        backups: backups.into_iter().map(contract::backup).collect(),
    }))
}

/// `POST /v1/storage/restore` `{"backupId"?: "..."}` (latest when absent):
/// a protective backup, the gateway stopped, the backup restored into a
/// fresh directory and swapped in, the gateway started again if it ran.
pub async fn post_restore(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| ApiError::new_body_error(rejection.status()))?;
    let backup_id = parse_backup_id(&body)?;
    // Refuse an unknown backup before stopping anything.
    let known = shared.backups.list().await?;
    let exists = match backup_id.as_deref() {
        Some(id) => known.iter().any(|b| b.id == id),
        None => !known.is_empty(),
    };
    if !exists {
        return Err(ApiError::not_found(
            "no such backup: GET /v1/storage/backups lists them",
        ));
    }
    let was_running = shared.supervisor.status().state == GatewayState::Running;
    if was_running {
        backups::take(&shared, "before-restore").await?;
    }
    shared.supervisor.stop().await?;
    let restored = {
        let _guard = shared.storage_lock.lock().await;
        let state_dir = shared.config.state_dir.join("openclaw");
        shared
            .backups
            .restore_and_swap(backup_id.as_deref(), &state_dir)
            .await
    };
    let gateway = if was_running {
        Some(shared.supervisor.start().await?)
    } else {
        None
    };
    let restored = restored?;
    Ok(ok(v1::RestoreReply {
        restored: v1::Restored {
            backup_id: restored.backup_id,
            files: restored.files,
            bytes: restored.bytes,
        },
        gateway: contract::gateway(gateway.unwrap_or_else(|| shared.supervisor.status())),
    }))
}

fn parse_backup_id(body: &Bytes) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // Strict: an object naming a key twice is refused, as on `serve`.
    let value: Value =
        clawplane_http::json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let not_an_id = || {
        ApiError::bad_request("backupId must be the id of a backup from GET /v1/storage/backups")
    };
    // A body that is not an object names no backup: the latest (as ever).
    let request = match value {
        Value::Object(_) => {
            serde_json::from_value::<v1::RestoreRequest>(value).map_err(|_| not_an_id())?
        }
        _ => v1::RestoreRequest::default(),
    };
    match request.backup_id {
        None => Ok(None),
        Some(id) if is_backup_id(&id) => Ok(Some(id)),
        Some(_) => Err(not_an_id()),
    }
}

/// Backup ids look like `20261124T061500.123Z-1a2b3c4d`.
fn is_backup_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && !id.contains("..")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_body_naming_backup_id_twice_is_refused() {
        let twice =
            Bytes::from_static(br#"{"backupId":"20261124T061500.123Z-1a2b3c4d","backupId":"x"}"#);
        let err = parse_backup_id(&twice).unwrap_err();
        let text = format!("{err:?}");
        assert!(
            text.contains("bad_request")
                && text.contains("backupId")
                && text.contains("more than once"),
            "{text}"
        );
        let once = Bytes::from_static(br#"{"backupId":"20261124T061500.123Z-1a2b3c4d"}"#);
        assert_eq!(
            parse_backup_id(&once).unwrap().as_deref(),
            Some("20261124T061500.123Z-1a2b3c4d")
        );
        assert_eq!(parse_backup_id(&Bytes::from_static(b"  ")).unwrap(), None);
    }
}
