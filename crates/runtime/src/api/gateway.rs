//! `POST /v1/gateway/{restart,stop,start}`. Restart and stop take a
//! protective backup first (when the gateway runs), then wait for the outcome.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use clawplane_http::v1;

use super::contract;
use super::error::{ok, ApiError};
use crate::backups;
use crate::gateway::GatewayState;
use crate::shared::Shared;

/// The protective backup before a stop or restart; `None` when the gateway
/// does not run (nothing changes, so none is taken).
async fn protective_backup(
    shared: &Shared,
    trigger: &str,
) -> Result<Option<v1::BackupSummary>, ApiError> {
    if shared.supervisor.status().state != GatewayState::Running {
        return Ok(None);
    }
    let report = backups::take(shared, trigger).await?;
    Ok(Some(contract::backup(report.backup)))
}

/// `POST /v1/gateway/restart`.
pub async fn post_restart(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let backup = protective_backup(&shared, "before-restart").await?;
    let status = shared.supervisor.restart().await?;
    Ok(ok(v1::GatewayReply {
        gateway: contract::gateway(status),
        backup: Some(backup),
    }))
}

/// `POST /v1/gateway/stop`.
pub async fn post_stop(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let backup = protective_backup(&shared, "before-stop").await?;
    let status = shared.supervisor.stop().await?;
    Ok(ok(v1::GatewayReply {
        gateway: contract::gateway(status),
        backup: Some(backup),
    }))
}

/// `POST /v1/gateway/start` (no backup: the field is left out).
pub async fn post_start(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let status = shared.supervisor.start().await?;
    Ok(ok(v1::GatewayReply {
        gateway: contract::gateway(status),
        backup: None,
    }))
}
