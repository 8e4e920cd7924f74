//! The runtime agent's routes. Constants with `{request_id}` are route
//! patterns for its router; the functions build the paths `serve` calls.

use std::fmt::Display;

/// `GET`: the agent itself is up (no token needed; answers [`super::Health`]).
pub const HEALTHZ: &str = "/healthz";
/// `GET`: [`super::Status`].
pub const STATUS: &str = "/v1/status";
/// `GET ?lines=N`: [`super::Logs`].
pub const LOGS: &str = "/v1/logs";
/// `GET`: [`super::Usage`].
pub const USAGE: &str = "/v1/usage";
/// `GET`: [`super::DeviceList`].
pub const DEVICES: &str = "/v1/devices";
/// `POST` (route pattern): [`super::DeviceDecision`]; see [`device_approve`].
pub const DEVICE_APPROVE: &str = "/v1/devices/{request_id}/approve";
/// `POST` (route pattern): [`super::DeviceDecision`]; see [`device_reject`].
pub const DEVICE_REJECT: &str = "/v1/devices/{request_id}/reject";
/// `POST`: [`super::BackupTaken`].
pub const STORAGE_BACKUP: &str = "/v1/storage/backup";
/// `GET`: [`super::BackupList`].
pub const STORAGE_BACKUPS: &str = "/v1/storage/backups";
/// `POST` [`super::RestoreRequest`]: [`super::RestoreReply`].
pub const STORAGE_RESTORE: &str = "/v1/storage/restore";
/// `POST`: [`super::GatewayReply`] (no protective backup).
pub const GATEWAY_START: &str = "/v1/gateway/start";
/// `POST`: [`super::GatewayReply`] (after a protective backup).
pub const GATEWAY_STOP: &str = "/v1/gateway/stop";
/// `POST`: [`super::GatewayReply`] (after a protective backup).
pub const GATEWAY_RESTART: &str = "/v1/gateway/restart";
/// Any method, `/gateway` and below: the ingress's last hop, passed to the
/// gateway without this prefix (outside the envelope).
pub const GATEWAY_PREFIX: &str = "/gateway";

/// Lines of [`LOGS`] when the query names none.
pub const DEFAULT_LOG_LINES: u32 = 100;
/// Most lines of [`LOGS`] (and the least is 1).
pub const MAX_LOG_LINES: u32 = 2000;

/// [`DEVICE_APPROVE`] for one pairing request.
pub fn device_approve(request_id: impl Display) -> String {
    format!("{DEVICES}/{request_id}/approve")
}

/// [`DEVICE_REJECT`] for one pairing request.
pub fn device_reject(request_id: impl Display) -> String {
    format!("{DEVICES}/{request_id}/reject")
}

/// [`LOGS`] with `lines`, brought within 1..=[`MAX_LOG_LINES`].
pub fn logs(lines: u32) -> String {
    format!("{LOGS}?lines={}", lines.clamp(1, MAX_LOG_LINES))
}

/// `/gateway{path}`: a gateway path through the ingress hop (`path` starts with `/`).
pub fn through_gateway(path: &str) -> String {
    format!("{GATEWAY_PREFIX}{path}")
}
