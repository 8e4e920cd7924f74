//! Every way a proxied request fails, mapped once to a status and to
//! OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`,
//! so that OpenAI clients (the gateway among them) show the sentence.
//! Messages say what happened and what to do; none holds a key or the
//! upstream's raw answer beyond its own scrubbed message.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The sentence the console's chat shows when the credits are gone.
pub const NO_CREDITS_MESSAGE: &str = "Your credits have run out: top up on the Billing page.";

/// Which per-minute limit a caller reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
}

/// Why a request was not answered by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// No `Authorization: Bearer`, or a token that is nobody's.
    BadToken,
    /// The body is longer than the limit (bytes).
    TooLarge(usize),
    /// The body is not a chat completion request; the sentence says why.
    BadRequest(String),
    /// No model with this id in the catalog.
    UnknownModel(String),
    /// The caller used up a per-minute limit; retry after this long.
    RateLimited(Limit, Duration),
    /// The balance does not cover the request's largest cost.
    NoCredits,
    /// The accounts cannot be reached.
    Unavailable,
    /// The provider answered 429 (its `Retry-After`, if any).
    UpstreamRateLimited(Option<Duration>),
    /// The provider refused the request with this 4xx and message.
    UpstreamRefused(StatusCode, String),
    /// The provider refused the operator's key (401, 403).
    UpstreamKeyRefused,
    /// The provider answered 5xx.
    UpstreamFailed,
    /// The provider did not answer in time.
    UpstreamTimeout,
    /// The provider could not be reached, or its answer was unreadable.
    UpstreamUnreachable,
    /// The proxy itself failed (a task ended without an answer).
    Internal,
}

impl ProxyError {
    /// Status, `type`, `code` and message.
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use ProxyError::*;
        match self {
            BadToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                "The model token is missing or not valid: send the instance's model token as \"Authorization: Bearer <token>\".".into(),
            ),
            TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                format!("The request body is larger than {limit} bytes: send a shorter conversation."),
            ),
            BadRequest(why) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                why.clone(),
            ),
            UnknownModel(model) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("The model \"{model}\" does not exist here: GET /v1/models lists the models available."),
            ),
            RateLimited(limit, retry) => {
                let (kind, what) = match limit {
                    Limit::Requests => ("requests", "requests"),
                    Limit::Tokens => ("tokens", "tokens"),
                };
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    kind,
                    "rate_limit_exceeded",
                    format!(
                        "This instance has used its {what} per minute: try again in {} seconds.",
                        retry.as_secs().max(1)
                    ),
                )
            }
            NoCredits => (
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_quota",
                "insufficient_quota",
                NO_CREDITS_MESSAGE.into(),
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "service_unavailable",
                "Billing cannot be reached right now, so the request was not sent: try again in a moment.".into(),
            ),
            UpstreamRateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "upstream_rate_limited",
                "The model provider is rate limiting requests right now: try again in a moment. Nothing was billed.".into(),
            ),
            UpstreamRefused(status, message) => (
                *status,
                "invalid_request_error",
                "upstream_refused",
                format!("The model provider refused the request: {message} Nothing was billed."),
            ),
            UpstreamKeyRefused => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_key_refused",
                "The model provider refused the operator's key: tell the operator. Nothing was billed.".into(),
            ),
            UpstreamFailed => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_error",
                "The model provider failed to answer: try again in a moment. Nothing was billed.".into(),
            ),
            UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
                "The model provider did not answer in time: try again in a moment. Nothing was billed.".into(),
            ),
            UpstreamUnreachable => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_unreachable",
                "The model provider could not be reached: try again in a moment. Nothing was billed.".into(),
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
                "The model proxy failed while answering: try again in a moment.".into(),
            ),
        }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The error as JSON, OpenAI's shape.
    pub fn body(&self) -> serde_json::Value {
        let (_, kind, code, message) = self.parts();
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ProxyError::RateLimited(_, retry) => Some(*retry),
            ProxyError::UpstreamRateLimited(retry) => *retry,
            _ => None,
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(retry) = self.retry_after() {
            let secs = retry.as_secs().max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if self == ProxyError::BadToken {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
