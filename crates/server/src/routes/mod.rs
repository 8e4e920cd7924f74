//! The route table. Handlers live in one module per resource and are named
//! verb_noun; every reply, including unknown routes and methods, is the envelope.

pub mod billing;
pub mod health;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::{ok, ApiError};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The seed's route map, answered at `GET /api/openclaw`.
const API_ROUTES: &[&str] = &[
    "GET /api/openclaw",
    "GET /api/openclaw/billing/summary",
    "GET /api/openclaw/billing/ledger",
];

/// Builds the application's router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let api = Router::new()
        .route("/api/openclaw", get(get_route_map))
        .route(
            "/api/openclaw/billing/summary",
            get(billing::get_api_summary),
        )
        .route("/api/openclaw/billing/ledger", get(billing::get_api_ledger));
    let control = Router::new()
        .route(
            "/control/openclaw/billing/summary",
            get(billing::get_control_summary),
        )
        .route(
            "/control/openclaw/billing/grant",
            post(billing::post_control_grant),
        )
        .route(
            "/control/openclaw/billing/burn",
            post(billing::post_control_burn),
        )
        .route(
            "/control/openclaw/billing/reverse",
            post(billing::post_control_reverse),
        );
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-oa-internal-key"),
            HeaderName::from_static("x-oa-user-id"),
            HeaderName::from_static("x-openagents-service-token"),
            HeaderName::from_static("idempotency-key"),
        ]);
    Router::new()
        .merge(api.merge(control).layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )))
        .route("/healthz", get(health::get_healthz))
        .route("/readyz", get(health::get_readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors)
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, Duration::from_secs(60)))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // The path only: a query string could carry anything.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            })
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

async fn get_route_map() -> Response {
    ok(serde_json::json!({ "routes": API_ROUTES }))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; GET /api/openclaw lists the API's routes")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
