//! The runtime surface's one error type and its envelope:
//! `{"ok": false, "error": {"code", "message", "details"}}`. 4xx messages are
//! specific; 5xx messages are generic and the cause is logged once, here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::gateway::SupervisorError;
use crate::rpc::RpcError;

/// An error answered to the control plane.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
}

impl ApiError {
    /// Any status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// 413 when the status says so, else 400.
    pub fn new_body_error(status: StatusCode) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                status,
                "payload_too_large",
                "the request body is larger than 64 KiB",
            )
        } else {
            Self::bad_request("the request body could not be read")
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the gateway is not running.
    pub fn gateway_not_running() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "gateway_not_running",
            "the gateway is not running: start it with POST /v1/gateway/start",
        )
    }

    /// 500 with a generic message; the cause is logged.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the runtime agent failed; see its log",
        )
    }
}

pub use clawplane_http::ok;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        clawplane_http::error(self.status, self.code, &self.message, &self.details)
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Unreachable => ApiError::gateway_not_running(),
            RpcError::Unavailable(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "gateway_unavailable",
                format!("the gateway is busy ({m}); try again shortly"),
            ),
            RpcError::Refused {
                status,
                code,
                message,
            } => {
                let status = StatusCode::from_u16(status)
                    .ok()
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                let mut err = ApiError::new(status, "gateway_refused", message);
                err.details = json!({ "gatewayCode": code });
                err
            }
            RpcError::Unauthorized | RpcError::Invalid => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "invalid_response",
                "the gateway's answer could not be used; see the runtime log",
            ),
        }
    }
}

impl From<SupervisorError> for ApiError {
    fn from(e: SupervisorError) -> Self {
        match e {
            SupervisorError::NotReady(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "gateway_not_ready",
                format!("the gateway did not become ready: {m}; see GET /v1/logs"),
            ),
            SupervisorError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the runtime agent is shutting down",
            ),
        }
    }
}

impl From<clawplane_backup::BackupError> for ApiError {
    fn from(e: clawplane_backup::BackupError) -> Self {
        use clawplane_backup::BackupError as B;
        match &e {
            B::NotFound { .. } | B::NoBackups { .. } => ApiError::not_found(e.to_string()),
            B::InvalidName { .. } => ApiError::bad_request(e.to_string()),
            _ => {
                tracing::warn!(error = %e, "backup operation failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backup_failed",
                    e.to_string(),
                )
            }
        }
    }
}
