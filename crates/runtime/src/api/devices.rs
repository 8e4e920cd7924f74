//! `GET /v1/devices`, `POST /v1/devices/{requestId}/approve|reject`, through
//! the gateway's admin RPC (milliseconds, where the CLI takes seconds).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use clawplane_http::v1;
use serde_json::Value;

use super::error::{ok, ApiError};
use crate::rpc::RpcError;
use crate::shared::Shared;

/// `GET /v1/devices`: `{pending, paired}` with the gateway's fields.
pub async fn get_devices(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let list = shared.rpc.devices().await?;
    let records = |key: &str| match list.get(key) {
        Some(Value::Array(records)) => records.clone(),
        _ => Vec::new(),
    };
    Ok(ok(v1::DeviceList {
        pending: records("pending"),
        paired: records("paired"),
    }))
}

/// `POST /v1/devices/{requestId}/approve`.
pub async fn post_approve(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    decide(&shared, &request_id, true).await
}

/// `POST /v1/devices/{requestId}/reject`.
pub async fn post_reject(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    decide(&shared, &request_id, false).await
}

/// Approves or rejects a pending request through the gateway's RPC.
async fn decide(shared: &Shared, request_id: &str, approve: bool) -> Result<Response, ApiError> {
    let id = parse_request_id(request_id)?;
    let reply = if approve {
        shared.rpc.approve_device(&id).await
    } else {
        shared.rpc.reject_device(&id).await
    };
    Ok(ok(device_reply(reply.map_err(unknown_request)?)))
}

/// Pairing request ids are UUIDs; anything else is refused before the gateway sees it.
fn parse_request_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            ApiError::bad_request("requestId must be the UUID of a pending pairing request")
        })
}

/// The gateway answers 400 `unknown requestId` for a request that does not
/// exist, expired (after 5 minutes) or was superseded: that is a 404 here.
fn unknown_request(e: RpcError) -> ApiError {
    match &e {
        RpcError::Refused { status: 400 | 404, message, .. } if message.contains("unknown requestId") => {
            ApiError::not_found(
                "no pending pairing request with that id: it may have expired or been superseded; list the devices again",
            )
        }
        _ => e.into(),
    }
}

fn device_reply(reply: Value) -> v1::DeviceDecision {
    let field = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
    v1::DeviceDecision {
        request_id: field(reply.get("requestId")),
        device_id: field(
            reply
                .get("deviceId")
                .or_else(|| reply.pointer("/device/deviceId")),
        ),
        device: field(reply.get("device")),
    }
}
