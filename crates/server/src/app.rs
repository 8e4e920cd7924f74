//! The application's router: the composition root that puts the three
//! surfaces side by side (the API's [`crate::routes`], the
//! [`crate::console`], the [`crate::ingress`] in front of both) under the
//! layers they share. None of the three imports another; this module is
//! the one place that knows all of them.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::routes;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the application's router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let metrics = state.metrics.clone();
    Router::new()
        // The address `serve` prints leads to the console.
        .route("/", get(|| async { Redirect::to("/console") }))
        .merge(routes::api())
        .merge(crate::console::router().layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(metrics, crate::metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(routes::cors())
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

/// A known path with a method it does not take: a console page for the
/// console's paths, the envelope for everything else.
async fn method_not_allowed(uri: Uri) -> Response {
    if crate::console::owns(uri.path()) {
        crate::console::method_not_allowed().await.into_response()
    } else {
        routes::method_not_allowed().await.into_response()
    }
}
