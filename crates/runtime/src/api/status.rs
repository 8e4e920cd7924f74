//! `GET /v1/status`, `GET /v1/logs`, `GET /v1/usage`. Status never starts or
//! changes anything and answers from memory: the supervisor's published
//! state and the last backup recorded from the backup store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use clawplane_http::v1;

use super::contract;
use super::error::{ok, ApiError};
use crate::gateway::GatewayState;
use crate::shared::Shared;

/// `GET /v1/status`.
pub async fn get_status(State(shared): State<Arc<Shared>>) -> Response {
    let gateway = shared.supervisor.status();
    let last_backup = shared.last_backup.read().await.clone();
    ok(v1::Status {
        gateway: contract::gateway_with_uptime(gateway),
        last_backup: last_backup.map(contract::backup),
        cell: contract::cell(shared.cell_status()),
        instance_id: shared.config.instance_id.clone(),
        instance_type: shared.config.instance_type.clone(),
        version: shared.openclaw_version.clone(),
        versions: v1::Versions {
            openclaw: shared.openclaw_version.clone(),
            clawplane: env!("CARGO_PKG_VERSION").to_owned(),
        },
    })
}

/// `GET /v1/logs?lines=N` (1-2000, default 100): the gateway's latest output.
pub async fn get_logs(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let lines = match query.get("lines") {
        None => v1::paths::DEFAULT_LOG_LINES,
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=v1::paths::MAX_LOG_LINES).contains(n))
            .ok_or_else(|| ApiError::bad_request("lines must be a whole number from 1 to 2000"))?,
    };
    Ok(ok(v1::Logs {
        lines: shared.sink.tail(lines as usize),
    }))
}

/// `GET /v1/usage`: the model spend the gateway reports (`usage.cost`).
pub async fn get_usage(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    if shared.supervisor.status().state != GatewayState::Running {
        return Err(ApiError::gateway_not_running());
    }
    let usage = shared.rpc.usage_cost(30).await?;
    Ok(ok(v1::Usage { usage }))
}
