//! The `/v1` API the control plane drives (the seed's routes plus what
//! operators need), and an unauthenticated `/healthz` for the agent itself.
//!
//! Every `/v1` request must carry the service token in
//! `X-OpenAgents-Service-Token` or `Authorization: Bearer`, compared in
//! constant time with `OPENAGENTS_SERVICE_TOKEN`. Every reply, errors
//! included, is the envelope. `/gateway/...` is the ingress's last hop to
//! the gateway ([`ingress`]). The paths, headers and bodies are the
//! contract's (`clawplane_http::v1`), which `serve`'s client reads too.

mod contract;
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
use clawplane_http::v1::{self, headers, paths};
use clawplane_secrets::{constant_time_eq, ExposeSecret};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::shared::Shared;
use error::{ok, ApiError};

/// Builds the agent's router.
pub fn router(shared: Arc<Shared>) -> Router {
    let body_limit = shared.config.body_limit;
    let api = Router::new()
        .route(paths::STATUS, get(status::get_status))
        .route(paths::GATEWAY_RESTART, post(gateway::post_restart))
        .route(paths::GATEWAY_STOP, post(gateway::post_stop))
        .route(paths::GATEWAY_START, post(gateway::post_start))
        .route(paths::STORAGE_BACKUP, post(storage::post_backup))
        .route(paths::STORAGE_BACKUPS, get(storage::get_backups))
        .route(paths::STORAGE_RESTORE, post(storage::post_restore))
        .route(paths::DEVICES, get(devices::get_devices))
        .route(paths::DEVICE_APPROVE, post(devices::post_approve))
        .route(paths::DEVICE_REJECT, post(devices::post_reject))
        .route(paths::LOGS, get(status::get_logs))
        .route(paths::USAGE, get(status::get_usage))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_service_token,
        ));
    Router::new()
        .merge(api)
        .route(paths::HEALTHZ, get(get_healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        // The ingress streams bodies and answers with the gateway's own
        // headers: outside the envelope's layers.
        .route(paths::GATEWAY_PREFIX, any(ingress::forward))
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

fn presented_token(given: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = given.get(headers::SERVICE_TOKEN) {
        return Some(v.as_bytes());
    }
    given
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| {
            v.strip_prefix(b"Bearer ")
                .or_else(|| v.strip_prefix(b"bearer "))
        })
}

async fn get_healthz() -> Response {
    ok(v1::Health {
        status: "live".to_owned(),
    })
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
