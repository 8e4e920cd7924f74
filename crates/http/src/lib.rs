//! What every HTTP surface of clawplane shares (the control plane's `/api`
//! and `/control`, the runtime agent's `/v1`).
//!
//! The JSON envelope (this module): `{"ok": true, "data": ...}` for a success
//! and `{"ok": false, "error": {"code", "message", "details"}}` for an error.
//! Each surface keeps its own error type (its variants differ) and renders it
//! here. The listener ([`listen`]): [`serve`] a router on a socket within
//! [`ListenerLimits`]. JSON bodies ([`json`]): one strict parser for every
//! surface, refusing a key named twice at any depth. The runtime contract
//! ([`v1`]): the paths, headers and bodies of the runtime agent's `/v1`.

pub mod json;
pub mod listen;
pub mod v1;

pub use listen::{serve, BodyTimeout, ListenerLimits};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

/// `{"ok": true, "data": data}` with status 200.
pub fn ok<T: Serialize>(data: T) -> Response {
    Json(json!({ "ok": true, "data": data })).into_response()
}

/// `{"ok": false, "error": {"code", "message", "details"}}` with `status`.
pub fn error(status: StatusCode, code: &str, message: &str, details: &Value) -> Response {
    let body = json!({
        "ok": false,
        "error": { "code": code, "message": message, "details": details },
    });
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn both_shapes() {
        let (status, v) = body(ok(json!({"a": 1}))).await;
        assert_eq!(
            (status, v),
            (StatusCode::OK, json!({"ok": true, "data": {"a": 1}}))
        );
        let (status, v) = body(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such thing",
            &Value::Null,
        ))
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            v,
            json!({"ok": false, "error": {"code": "not_found", "message": "no such thing", "details": null}})
        );
    }
}
