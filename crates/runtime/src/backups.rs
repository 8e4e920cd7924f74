//! Backups from the agent's side: a protective snapshot before every stop
//! and restart, a schedule (every interval, only when something changed), and
//! the hook that suspends the gateway's writes around a snapshot.

use std::sync::Arc;

use async_trait::async_trait;
use clawplane_backup::{BackupReport, Quiesce};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::gateway::GatewayState;
use crate::rpc::GatewayRpc;
use crate::shared::Shared;

/// Suspends the gateway through its RPC for the duration of a snapshot.
pub struct GatewayQuiesce {
    rpc: GatewayRpc,
    suspension: Mutex<Option<String>>,
}

impl GatewayQuiesce {
    /// A hook over `rpc`.
    pub fn new(rpc: GatewayRpc) -> Self {
        GatewayQuiesce {
            rpc,
            suspension: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Quiesce for GatewayQuiesce {
    async fn suspend(&self) -> Result<(), String> {
        let request = format!("clawplane-backup-{}", uuid::Uuid::new_v4().simple());
        let id = self
            .rpc
            .suspend(&request)
            .await
            .map_err(|e| e.to_string())?;
        *self.suspension.lock().await = Some(id);
        Ok(())
    }

    async fn resume(&self) -> Result<(), String> {
        match self.suspension.lock().await.take() {
            Some(id) => self.rpc.resume(&id).await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// A quiesce hook for snapshots while the gateway runs (none while it
/// does not: nothing writes then).
fn quiesce(shared: &Shared) -> Option<GatewayQuiesce> {
    (shared.supervisor.status().state == GatewayState::Running)
        .then(|| GatewayQuiesce::new(shared.rpc.clone()))
}

/// Takes a backup now (one at a time) and records it as the latest.
pub async fn take(
    shared: &Shared,
    trigger: &str,
) -> Result<BackupReport, clawplane_backup::BackupError> {
    let _guard = shared.storage_lock.lock().await;
    let state_dir = shared.config.state_dir.join("openclaw");
    let quiesce = quiesce(shared);
    let report = shared
        .backups
        .backup_with(
            &state_dir,
            trigger,
            quiesce.as_ref().map(|q| q as &dyn Quiesce),
        )
        .await?;
    *shared.last_backup.write().await = Some(report.backup.clone());
    if let Err(e) = shared.backups.prune(&shared.retention()).await {
        tracing::warn!(error = %e, "pruning old backups failed; retried after the next backup");
    }
    tracing::info!(backup = %report.backup.id, trigger, bytes_uploaded = report.bytes_uploaded, "backup taken");
    Ok(report)
}

/// Every interval: a backup if the state changed since the last one.
pub async fn schedule(shared: Arc<Shared>, shutdown: CancellationToken) {
    let interval = shared.config.backup_interval;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let state_dir = shared.config.state_dir.join("openclaw");
        match shared.backups.has_changed(&state_dir).await {
            Ok(true) => {
                if let Err(e) = take(&shared, "scheduled").await {
                    tracing::warn!(error = %e, "scheduled backup failed; retried at the next interval");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot tell whether the state changed"),
        }
    }
}
