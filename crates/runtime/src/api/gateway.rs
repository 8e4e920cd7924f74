//! `POST /v1/gateway/{restart,stop,start}`. Restart and stop take a
//! protective backup first (when the gateway runs), then wait for the outcome.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::error::{ok, ApiError};
use crate::agent::Shared;
use crate::backups;
use crate::gateway::GatewayState;

async fn protective_backup(
    shared: &Shared,
    trigger: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    if shared.supervisor.status().state != GatewayState::Running {
        return Ok(None);
    }
    let report = backups::take(shared, trigger).await?;
    Ok(Some(json!(report.backup)))
}

/// `POST /v1/gateway/restart`.
pub async fn post_restart(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let backup = protective_backup(&shared, "before-restart").await?;
    let status = shared.supervisor.restart().await?;
    Ok(ok(json!({ "gateway": status, "backup": backup })))
}

/// `POST /v1/gateway/stop`.
pub async fn post_stop(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let backup = protective_backup(&shared, "before-stop").await?;
    let status = shared.supervisor.stop().await?;
    Ok(ok(json!({ "gateway": status, "backup": backup })))
}

/// `POST /v1/gateway/start`.
pub async fn post_start(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let status = shared.supervisor.start().await?;
    Ok(ok(json!({ "gateway": status })))
}
