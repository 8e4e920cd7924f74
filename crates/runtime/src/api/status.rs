//! `GET /v1/status`, `GET /v1/logs`, `GET /v1/usage`. Status never starts or
//! changes anything and answers from memory: the supervisor's published
//! state and the last backup recorded from the backup store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::json;

use super::error::{ok, ApiError};
use crate::agent::Shared;
use crate::gateway::GatewayState;

/// `GET /v1/status`.
pub async fn get_status(State(shared): State<Arc<Shared>>) -> Response {
    let gateway = shared.supervisor.status();
    let last_backup = shared.last_backup.read().await.clone();
    ok(json!({
        "gateway": {
            "state": gateway.state,
            "pid": gateway.pid,
            "uptimeMs": gateway.uptime_ms(),
            "startedAt": gateway.started_at,
            "readyAt": gateway.ready_at,
            "restarts": gateway.restarts,
            "crashes": gateway.crashes,
            "lastExit": gateway.last_exit,
            "lastError": gateway.last_error,
        },
        "lastBackup": last_backup,
        "cell": shared.cell_status(),
        "instanceId": shared.config.instance_id,
        "instanceType": shared.config.instance_type,
        "version": shared.openclaw_version,
        "versions": {
            "openclaw": shared.openclaw_version,
            "clawplane": env!("CARGO_PKG_VERSION"),
        },
    }))
}

/// `GET /v1/logs?lines=N` (1-2000, default 100): the gateway's latest output.
pub async fn get_logs(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let lines = match query.get("lines") {
        None => 100,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=2000).contains(n))
            .ok_or_else(|| ApiError::bad_request("lines must be a whole number from 1 to 2000"))?,
    };
    Ok(ok(json!({ "lines": shared.sink.tail(lines) })))
}

/// `GET /v1/usage`: the model spend the gateway reports (`usage.cost`).
pub async fn get_usage(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    if shared.supervisor.status().state != GatewayState::Running {
        return Err(ApiError::gateway_not_running());
    }
    let usage = shared.rpc.usage_cost(30).await?;
    Ok(ok(json!({ "usage": usage })))
}
