//! The caller's runtime through `/api/openclaw/runtime/*`: status, devices
//! (approve, reject), backups (take, list, restore) and the gateway (restart,
//! stop, start). Each call goes to the instance's runtime agent with its
//! service token; errors keep the seed's mapping (see `runtime_client`).

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{ok, ApiError};
use crate::extract::{ApiUser, JsonBody, PathText};
use crate::instances::runtime_ops::DeviceDecision;
use crate::runtime_client::GatewayAction;
use crate::state::AppState;
use clawplane_domain::is_backup_id;

/// `GET /api/openclaw/runtime/status`: gateway state, last backup, instance type, version.
#[utoipa::path(get, path = "/api/openclaw/runtime/status", tag = "runtime",
    responses((status = 200, description = "The runtime's status", body = super::schemas::RuntimeReply), (status = 404, description = "instance not found"),
        (status = 409, description = "runtime url not set / service token not set"), (status = 502, description = "The runtime did not answer or answered nonsense")))]
pub async fn get_status(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state.instances.runtime_status(&user).await?))
}

/// `GET /api/openclaw/runtime/devices`: pending pairing requests and paired devices.
#[utoipa::path(get, path = "/api/openclaw/runtime/devices", tag = "runtime",
    responses((status = 200, description = "`{pending, paired}`", body = super::schemas::RuntimeReply)))]
pub async fn get_devices(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state.instances.devices(&user).await?))
}

fn request_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::bad_request("requestId must be a pairing request id (a UUID)"))
}

/// `POST /api/openclaw/runtime/devices/{requestId}/approve`.
#[utoipa::path(post, path = "/api/openclaw/runtime/devices/{requestId}/approve", tag = "runtime",
    params(("requestId" = String, Path, description = "The pending request's id")),
    responses((status = 200, description = "Paired", body = super::schemas::RuntimeReply), (status = 404, description = "No such pending request")))]
pub async fn post_approve(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    PathText(raw): PathText,
) -> Result<Response, ApiError> {
    let id = request_id(&raw)?;
    Ok(ok(state
        .instances
        .decide_device(&user, id, DeviceDecision::Approve)
        .await?))
}

/// `POST /api/openclaw/runtime/devices/{requestId}/reject`.
#[utoipa::path(post, path = "/api/openclaw/runtime/devices/{requestId}/reject", tag = "runtime",
    params(("requestId" = String, Path, description = "The pending request's id")),
    responses((status = 200, description = "Rejected", body = super::schemas::RuntimeReply), (status = 404, description = "No such pending request")))]
pub async fn post_reject(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    PathText(raw): PathText,
) -> Result<Response, ApiError> {
    let id = request_id(&raw)?;
    Ok(ok(state
        .instances
        .decide_device(&user, id, DeviceDecision::Reject)
        .await?))
}

/// `POST /api/openclaw/runtime/backup`: a consistent backup now.
#[utoipa::path(post, path = "/api/openclaw/runtime/backup", tag = "runtime",
    responses((status = 200, description = "The backup taken", body = super::schemas::RuntimeReply)))]
pub async fn post_backup(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state.instances.backup(&user).await?))
}

/// `GET /api/openclaw/runtime/backups`: the backup history, newest first.
#[utoipa::path(get, path = "/api/openclaw/runtime/backups", tag = "runtime",
    responses((status = 200, description = "The backups", body = super::schemas::RuntimeReply)))]
pub async fn get_backups(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state.instances.backups(&user).await?))
}

/// The body of a restore: a backup id, or none for the latest.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// The backup to restore (from the list); absent: the latest.
    #[serde(rename = "backupId", default)]
    backup_id: Option<String>,
}

/// `POST /api/openclaw/runtime/restore` `{backupId?}`: the gateway is
/// stopped, the state restored, the gateway started again.
#[utoipa::path(post, path = "/api/openclaw/runtime/restore", tag = "runtime", request_body = RestoreBody,
    responses((status = 200, description = "Restored", body = super::schemas::RuntimeReply), (status = 404, description = "No such backup")))]
pub async fn post_restore(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    JsonBody(body): JsonBody<RestoreBody>,
) -> Result<Response, ApiError> {
    let backup_id = body.backup_id.as_deref().map(str::trim);
    if let Some(id) = backup_id {
        if !is_backup_id(id) {
            return Err(ApiError::bad_request(
                "backupId must be an id from the backup list",
            ));
        }
    }
    Ok(ok(state.instances.restore_backup(&user, backup_id).await?))
}

/// `POST /api/openclaw/runtime/restart`: a protective backup, then the gateway restarted.
#[utoipa::path(post, path = "/api/openclaw/runtime/restart", tag = "runtime",
    responses((status = 200, description = "Restarted", body = super::schemas::RuntimeReply)))]
pub async fn post_restart(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state
        .instances
        .gateway(&user, GatewayAction::Restart)
        .await?))
}

/// `POST /api/openclaw/runtime/stop`: a protective backup, the gateway stopped, the instance `stopped`.
#[utoipa::path(post, path = "/api/openclaw/runtime/stop", tag = "runtime",
    responses((status = 200, description = "Stopped", body = super::schemas::RuntimeReply)))]
pub async fn post_stop(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state
        .instances
        .gateway(&user, GatewayAction::Stop)
        .await?))
}

/// `POST /api/openclaw/runtime/start`: the gateway started, the instance `ready` (needs credits).
#[utoipa::path(post, path = "/api/openclaw/runtime/start", tag = "runtime",
    responses((status = 200, description = "Started", body = super::schemas::RuntimeReply), (status = 402, description = "No credits left")))]
pub async fn post_start(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state
        .instances
        .gateway(&user, GatewayAction::Start)
        .await?))
}
