//! `GET /v1/devices`, `POST /v1/devices/{requestId}/approve|reject`. The
//! device records are the gateway's own (`device.pair.*`), passed as they are.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /v1/devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceList {
    /// Pairing requests waiting for a decision (OpenClaw's records:
    /// `requestId`, `displayName`, `platform`, `clientMode`, `remoteIp`, `ts`...).
    pub pending: Vec<Value>,
    /// Paired devices (OpenClaw's records, with `approvedAtMs`).
    pub paired: Vec<Value>,
}

/// `POST /v1/devices/{requestId}/approve` and `.../reject`: the gateway's
/// answer about the request (each `null` when it did not say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDecision {
    /// The request decided.
    pub request_id: Value,
    /// The device it was for.
    pub device_id: Value,
    /// The gateway's device record.
    pub device: Value,
}
