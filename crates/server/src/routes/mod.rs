//! The route table. Handlers live in one module per resource and are named
//! verb_noun; every reply, including unknown routes and methods, is the envelope.

pub mod billing;
pub mod control;
pub mod health;
pub mod instance;
pub mod runtime;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ok, ApiError};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The authenticated surfaces, each route registered together with its
/// OpenAPI description, so the document cannot drift from the routes.
fn surfaces() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .routes(routes!(
            instance::get_instance,
            instance::post_instance,
            instance::delete_instance
        ))
        .routes(routes!(
            instance::get_provider_keys,
            instance::put_provider_keys,
            instance::delete_provider_keys
        ))
        .routes(routes!(runtime::get_status))
        .routes(routes!(runtime::get_devices))
        .routes(routes!(runtime::post_approve))
        .routes(routes!(runtime::post_reject))
        .routes(routes!(runtime::post_backup))
        .routes(routes!(runtime::get_backups))
        .routes(routes!(runtime::post_restore))
        .routes(routes!(runtime::post_restart))
        .routes(routes!(runtime::post_stop))
        .routes(routes!(runtime::post_start))
        .routes(routes!(billing::get_api_summary))
        .routes(routes!(billing::get_api_ledger))
        .routes(routes!(tokens::get_tokens, tokens::post_token))
        .routes(routes!(tokens::delete_token));
    let control = OpenApiRouter::new()
        .routes(routes!(control::get_instance, control::post_instance))
        .routes(routes!(control::post_status))
        .routes(routes!(control::get_secret, control::post_secret))
        .routes(routes!(control::get_audit))
        .routes(routes!(billing::get_control_summary))
        .routes(routes!(billing::post_control_grant))
        .routes(routes!(billing::post_control_burn))
        .routes(routes!(billing::post_control_reverse));
    api.merge(control)
}

/// The OpenAPI document of the authenticated surfaces.
pub fn openapi() -> OpenApi {
    let (_, mut doc) = surfaces().split_for_parts();
    doc.info.title = "clawplane".into();
    doc.info.description = Some(
        "Managed OpenClaw. /api/openclaw/*: X-OA-Internal-Key + X-OA-User-Id, or Authorization: Bearer <API token>. \
         /control/openclaw/*: x-oa-control-key. Every reply is {ok, data} or {ok: false, error: {code, message, details}}."
            .into(),
    );
    doc
}

/// Builds the application's router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let (authenticated, doc) = surfaces().split_for_parts();
    let doc = {
        let mut doc = doc;
        doc.info = openapi().info;
        Arc::new(doc.to_json().unwrap_or_else(|_| "{}".into()))
    };
    let api_routes: Arc<Vec<String>> = Arc::new(route_map(&openapi()));
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-oa-internal-key"),
            HeaderName::from_static("x-oa-user-id"),
            HeaderName::from_static("x-openagents-service-token"),
            HeaderName::from_static("idempotency-key"),
        ]);
    let metrics = state.metrics.clone();
    Router::new()
        .merge(
            authenticated
                .route("/api/openclaw", get(move || async move { ok(serde_json::json!({ "routes": *api_routes })) }))
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                )),
        )
        .merge(crate::console::router().layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )))
        .route("/healthz", get(health::get_healthz))
        .route("/readyz", get(health::get_readyz))
        .route("/metrics", get(health::get_metrics))
        .route(
            "/api/openapi.json",
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], (*doc).clone()).into_response()
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(metrics, crate::metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors)
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, Duration::from_secs(330)))
        // Gateway traffic leaves here: outside the API's CORS, body limit,
        // timeout and metrics; inside request ids and tracing.
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::ingress::route_by_host))
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

/// The seed's route map at `GET /api/openclaw`, from the OpenAPI document.
fn route_map(doc: &OpenApi) -> Vec<String> {
    let mut routes = vec!["GET /api/openclaw".to_owned()];
    for (path, item) in &doc.paths.paths {
        if !path.starts_with("/api/openclaw") {
            continue;
        }
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (method, present) in methods {
            if present {
                routes.push(format!("{method} {path}"));
            }
        }
    }
    routes
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
