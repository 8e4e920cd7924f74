//! The `/v1` API the control plane drives (the seed's routes plus what
//! operators need), and an unauthenticated `/healthz` for the agent itself.
//!
//! Every `/v1` request must carry the service token in
//! `X-OpenAgents-Service-Token` or `Authorization: Bearer`, compared in
//! constant time with `OPENAGENTS_SERVICE_TOKEN`. Every reply, errors
//! included, is the envelope. `/gateway/...` is the ingress's last hop to
//! the gateway ([`ingress`]).

mod devices;
pub mod error;
mod gateway;
mod ingress;
pub mod owner;
mod status;
mod storage;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use clawplane_secrets::{constant_time_eq, ExposeSecret};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::agent::Shared;
use error::{ok, ApiError};

/// The service token header (the seed's name).
pub const SERVICE_TOKEN_HEADER: &str = "x-openagents-service-token";

/// Builds the agent's router.
pub fn router(shared: Arc<Shared>) -> Router {
    let body_limit = shared.config.body_limit;
    let v1 = Router::new()
        .route("/v1/status", get(status::get_status))
        .route("/v1/gateway/restart", post(gateway::post_restart))
        .route("/v1/gateway/stop", post(gateway::post_stop))
        .route("/v1/gateway/start", post(gateway::post_start))
        .route("/v1/storage/backup", post(storage::post_backup))
        .route("/v1/storage/backups", get(storage::get_backups))
        .route("/v1/storage/restore", post(storage::post_restore))
        .route("/v1/devices", get(devices::get_devices))
        .route(
            "/v1/devices/{request_id}/approve",
            post(devices::post_approve),
        )
        .route(
            "/v1/devices/{request_id}/reject",
            post(devices::post_reject),
        )
        .route("/v1/logs", get(status::get_logs))
        .route("/v1/usage", get(status::get_usage))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_service_token,
        ));
    Router::new()
        .merge(v1)
        .route("/healthz", get(get_healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        // The ingress streams bodies and answers with the gateway's own
        // headers: outside the envelope's layers.
        .route(ingress::PREFIX, any(ingress::forward))
        .route("/gateway/", any(ingress::forward))
        .route("/gateway/{*rest}", any(ingress::forward))
        .with_state(shared)
}

async fn require_service_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = presented_token(request.headers());
    let expected = shared.config.service_token.expose_secret().as_bytes();
    match given {
        Some(token) if !token.is_empty() && constant_time_eq(token, expected) => Ok(next.run(request).await),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid service token: send X-OpenAgents-Service-Token or Authorization: Bearer",
        )),
    }
}

fn presented_token(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(SERVICE_TOKEN_HEADER) {
        return Some(v.as_bytes());
    }
    headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| {
            v.strip_prefix(b"Bearer ")
                .or_else(|| v.strip_prefix(b"bearer "))
        })
}

async fn get_healthz() -> Response {
    ok(serde_json::json!({ "status": "live" }))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
