//! `GET /healthz` (the process is up) and `GET /readyz` (the database
//! answers and every background task runs).

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::{ok, ApiError};
use crate::state::AppState;

/// Always 200 while the process serves requests.
pub async fn get_healthz() -> Response {
    ok(serde_json::json!({ "status": "live" }))
}

/// 200 when the database answers and every background task runs; 503
/// otherwise, naming the tasks that are down (each is being started again).
pub async fn get_readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    let tasks = state.tasks.snapshot();
    let down = state.tasks.down();
    if !down.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "task_down",
            format!(
                "background work is down and being started again: {}",
                down.join(", ")
            ),
        )
        .with_details(serde_json::json!({ "tasks": tasks })));
    }
    Ok(ok(serde_json::json!({
        "status": "ready",
        "database": state.store.backend().as_str(),
        "tasks": tasks,
    })))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn get_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let cells = state.instances.cell_readings().await;
    let body = state
        .metrics
        .render(&state.store, &cells)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
