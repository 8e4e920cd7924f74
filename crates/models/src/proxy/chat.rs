//! The handlers: admission of a request (token, body, model, rate limit,
//! hold) and the hand-over to the exchange task in [`super::upstream`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::oneshot;

use super::error::ProxyError;
use super::hold::Hold;
use super::meter::{Caller, Refusal};
use super::request::ChatRequest;
use super::{upstream, Proxy};
use crate::cost;

/// The header naming the request.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// `GET /v1/models`: the catalog's ids, OpenAI's list shape.
pub(crate) async fn list_models(State(proxy): State<Arc<Proxy>>, headers: HeaderMap) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let answer = match authenticate(&proxy, &headers).await {
        Err(e) => e.into_response(),
        Ok(_) => {
            let data: Vec<_> = proxy
                .catalog
                .models()
                .iter()
                .map(|m| json!({"id": m.id, "object": "model", "created": 0, "owned_by": "clawplane"}))
                .collect();
            Json(json!({"object": "list", "data": data})).into_response()
        }
    };
    with_request_id(answer, &request_id)
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(proxy): State<Arc<Proxy>>,
    request: Request,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let answer = match admit(&proxy, request, &request_id).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    with_request_id(answer, &request_id)
}

/// Any other path.
pub(crate) async fn no_route() -> Response {
    let body = json!({"error": {
        "message": "No such route: this API answers GET /v1/models and POST /v1/chat/completions.",
        "type": "invalid_request_error", "param": null, "code": "unknown_url"}});
    (axum::http::StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn admit(
    proxy: &Arc<Proxy>,
    request: Request,
    request_id: &str,
) -> Result<Response, ProxyError> {
    let (parts, body) = request.into_parts();
    let caller = authenticate(proxy, &parts.headers).await?;
    let bytes = read_body(body, &parts.headers, proxy.settings.max_body_bytes).await?;
    let chat = ChatRequest::parse(&bytes)?;
    let (model, _) = proxy
        .catalog
        .route(&chat.model)
        .ok_or_else(|| ProxyError::UnknownModel(shown(&chat.model)))?;
    proxy
        .limits
        .admit(&caller.instance_id, Instant::now())
        .map_err(|(limit, retry)| ProxyError::RateLimited(limit, retry))?;
    let amount = cost::max_cost(model, bytes.len(), chat.requested_output);
    let hold_id = proxy
        .meter
        .reserve(&caller, &model.id, amount, request_id)
        .await
        .map_err(|refusal| match refusal {
            Refusal::NoCredits => ProxyError::NoCredits,
            Refusal::Unavailable => ProxyError::Unavailable,
        })?;
    let hold = Hold::new(Arc::clone(&proxy.meter), hold_id, amount);
    let exchange = upstream::Exchange {
        proxy: Arc::clone(proxy),
        model_id: model.id.clone(),
        stream: chat.stream,
        body: chat.upstream_body(model),
        caller,
        request_id: request_id.to_string(),
    };
    // The exchange owns the hold and runs on whether or not this handler
    // is still awaited (a client that goes away drops it).
    let (head, answer) = oneshot::channel();
    tokio::spawn(exchange.run(hold, head));
    answer.await.map_err(|_| ProxyError::Internal)
}

async fn authenticate(proxy: &Proxy, headers: &HeaderMap) -> Result<Caller, ProxyError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ProxyError::BadToken)?;
    match proxy.meter.caller(token).await {
        Ok(Some(caller)) => Ok(caller),
        Ok(None) => Err(ProxyError::BadToken),
        Err(_) => Err(ProxyError::Unavailable),
    }
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ProxyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::TooLarge(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ProxyError::TooLarge(limit))
        }
        Err(_) => Err(ProxyError::BadRequest(
            "The request body could not be read to its end.".into(),
        )),
    }
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// A client's model id as echoed back: bounded, printable.
fn shown(model: &str) -> String {
    model
        .chars()
        .take(64)
        .map(|c| if c.is_control() || c == '"' { '?' } else { c })
        .collect()
}
