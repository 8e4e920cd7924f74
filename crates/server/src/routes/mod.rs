//! The route table. Handlers live in one module per resource and are named
//! verb_noun; every reply, including unknown routes and methods, is the envelope.

pub mod billing;
pub mod control;
pub mod health;
pub mod instance;
pub mod runtime;
pub mod schemas;
pub mod tokens;

use std::sync::Arc;

use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ok, ApiError};
use crate::state::AppState;

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
        .routes(routes!(billing::get_api_usage))
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

/// The API's routes: the authenticated surfaces, the route map at
/// `GET /api/openclaw`, health, metrics and the OpenAPI document. The
/// application (`crate::app`) puts them beside the console and the ingress.
pub fn api() -> Router<AppState> {
    let (authenticated, doc) = surfaces().split_for_parts();
    let doc = {
        let mut doc = doc;
        doc.info = openapi().info;
        Arc::new(doc.to_json().unwrap_or_else(|_| "{}".into()))
    };
    let api_routes: Arc<Vec<String>> = Arc::new(route_map(&openapi()));
    Router::new()
        .merge(
            authenticated
                .route(
                    "/api/openclaw",
                    get(move || async move { ok(serde_json::json!({ "routes": *api_routes })) }),
                )
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                )),
        )
        .route("/healthz", get(health::get_healthz))
        .route("/readyz", get(health::get_readyz))
        .route("/metrics", get(health::get_metrics))
        .route(
            "/api/openapi.json",
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], (*doc).clone()).into_response()
            }),
        )
}

/// The headers a browser may send to the API from another origin.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
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
        ])
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

/// Any other path: the envelope's 404.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; GET /api/openclaw lists the API's routes")
}

/// A known path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
