//! One exchange with the provider, in a task that owns the hold: send the
//! request with the operator's key, map a refusal or a failure to the
//! client's error (releasing the hold), read a non-streamed answer whole or
//! relay a stream chunk by chunk through a bounded channel (so a slow
//! client slows the reading of the provider), then settle.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use clawplane_secrets::ExposeSecret;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, Instant};

use super::error::ProxyError;
use super::hold::Hold;
use super::meter::{Caller, UpstreamFailure};
use super::sse::{self, Scanner};
use super::Proxy;
use crate::cost::{self, Usage};

/// Largest error body read from the provider, for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest part of the provider's error message passed on.
const MAX_ERROR_MESSAGE: usize = 300;

/// A request admitted and held, ready to go upstream.
pub(crate) struct Exchange {
    pub proxy: Arc<Proxy>,
    pub model_id: String,
    pub stream: bool,
    pub body: Vec<u8>,
    pub caller: Caller,
    pub request_id: String,
}

impl Exchange {
    /// Runs the exchange; the response head (or the error) goes to `head`.
    pub(crate) async fn run(self, hold: Hold, head: oneshot::Sender<Response>) {
        let proxy = Arc::clone(&self.proxy);
        let Some((model, provider)) = proxy.catalog.route(&self.model_id) else {
            hold.release().await;
            let _ = head.send(ProxyError::Internal.into_response());
            return;
        };
        let settings = &proxy.settings;
        let started = Instant::now();
        let deadline = started + settings.total_timeout;
        let accept = if self.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let send = proxy
            .client
            .post(provider.chat_completions_url())
            .bearer_auth(provider.api_key.expose_secret())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept)
            .body(self.body.clone())
            .send();
        let response = match timeout(settings.first_byte_timeout, send).await {
            Err(_) => Err(UpstreamFailure::Timeout),
            Ok(Err(e)) if e.is_timeout() => Err(UpstreamFailure::Timeout),
            Ok(Err(e)) => {
                tracing::warn!(request_id = %self.request_id, model = %model.id, error = %e, "model provider unreachable");
                Err(UpstreamFailure::Broken)
            }
            Ok(Ok(response)) => Ok(response),
        };
        let response = match response {
            Ok(response) => response,
            Err(failure) => return self.fail(hold, head, failure, failure_error(failure)).await,
        };
        let status = response.status();
        if !status.is_success() {
            let key = provider.api_key.expose_secret().to_string();
            let (failure, error) = refusal(status, response, &key, settings.idle_timeout).await;
            tracing::warn!(request_id = %self.request_id, model = %model.id, status = status.as_u16(), "model provider refused the request");
            return self.fail(hold, head, failure, error).await;
        }
        if self.stream {
            self.relay(hold, head, response, deadline).await;
        } else {
            self.answer_whole(hold, head, response, deadline).await;
        }
    }

    /// A non-streamed answer: read it whole (bounded), settle, answer.
    async fn answer_whole(
        self,
        hold: Hold,
        head: oneshot::Sender<Response>,
        response: reqwest::Response,
        deadline: Instant,
    ) {
        let settings = &self.proxy.settings;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        loop {
            let wait = settings
                .idle_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            match timeout(wait, chunks.next()).await {
                Err(_) => {
                    return self
                        .fail(
                            hold,
                            head,
                            UpstreamFailure::Timeout,
                            ProxyError::UpstreamTimeout,
                        )
                        .await
                }
                Ok(Some(Err(_))) => {
                    return self
                        .fail(
                            hold,
                            head,
                            UpstreamFailure::Broken,
                            ProxyError::UpstreamUnreachable,
                        )
                        .await
                }
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => {
                    if body.len() + chunk.len() > settings.max_response_bytes {
                        return self
                            .fail(
                                hold,
                                head,
                                UpstreamFailure::Broken,
                                ProxyError::UpstreamUnreachable,
                            )
                            .await;
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        let usage = sse::usage_of(&body);
        self.settle(hold, usage).await;
        let mut answer = Response::new(Body::from(body));
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        let _ = head.send(answer);
    }

    /// A stream: relay chunks as they come, scanning for the usage; keep
    /// reading for a while after the client went away; then settle.
    async fn relay(
        self,
        hold: Hold,
        head: oneshot::Sender<Response>,
        response: reqwest::Response,
        deadline: Instant,
    ) {
        let settings = &self.proxy.settings;
        let (tx, rx) =
            mpsc::channel::<Result<Bytes, io::Error>>(settings.stream_buffer_chunks.max(1));
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut answer = Response::new(Body::from_stream(body));
        let headers = answer.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        let mut client: Option<mpsc::Sender<_>> = Some(tx);
        let mut deadline = deadline;
        if head.send(answer).is_err() {
            client = None;
            deadline = deadline.min(Instant::now() + settings.drain_timeout);
        }
        let mut scanner = Scanner::default();
        let mut chunks = response.bytes_stream();
        let mut failure = None;
        loop {
            if client.is_none() && scanner.usage.is_some() {
                break;
            }
            let wait = settings
                .idle_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let chunk = match timeout(wait, chunks.next()).await {
                Err(_) => {
                    failure = Some(UpstreamFailure::Timeout);
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(_))) => {
                    failure = Some(UpstreamFailure::Broken);
                    break;
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            scanner.feed(&chunk);
            if let Some(tx) = &client {
                let wait = settings
                    .idle_timeout
                    .min(deadline.saturating_duration_since(Instant::now()));
                if !matches!(timeout(wait, tx.send(Ok(chunk))).await, Ok(Ok(()))) {
                    // The client went away (or stopped reading): keep reading for the usage.
                    client = None;
                    deadline = deadline.min(Instant::now() + settings.drain_timeout);
                }
            }
        }
        if let Some(failure) = failure {
            self.proxy.meter.upstream_failed(&self.model_id, failure);
            tracing::warn!(request_id = %self.request_id, model = %self.model_id, failure = failure.label(), "model stream ended early");
            if let Some(tx) = &client {
                let error = failure_error(failure).body();
                let _ = tx.try_send(Ok(Bytes::from(format!("data: {error}\n\n"))));
            }
        }
        if scanner.usage.is_some() || scanner.answered || scanner.done {
            self.settle(hold, scanner.usage).await;
        } else {
            hold.release().await;
        }
        // The client's stream ends here, after the hold is finished.
        drop(client);
    }

    /// Bills the usage (capped at the hold), or the whole hold without one.
    async fn settle(&self, hold: Hold, usage: Option<Usage>) {
        match usage {
            Some(usage) => {
                let model = self.proxy.catalog.model(&self.model_id);
                let cost = model.map_or(hold.amount(), |m| cost::usage_cost(&m.prices, &usage));
                self.proxy.limits.spend(
                    &self.caller.instance_id,
                    usage.total_tokens(),
                    std::time::Instant::now(),
                );
                hold.settle(Some(&usage), cost).await;
            }
            None => {
                tracing::warn!(request_id = %self.request_id, model = %self.model_id, "the model provider reported no usage: billing the hold");
                let amount = hold.amount();
                hold.settle(None, amount).await;
            }
        }
    }

    async fn fail(
        self,
        hold: Hold,
        head: oneshot::Sender<Response>,
        failure: UpstreamFailure,
        error: ProxyError,
    ) {
        self.proxy.meter.upstream_failed(&self.model_id, failure);
        hold.release().await;
        let _ = head.send(error.into_response());
    }
}

fn failure_error(failure: UpstreamFailure) -> ProxyError {
    match failure {
        UpstreamFailure::Timeout => ProxyError::UpstreamTimeout,
        UpstreamFailure::RateLimited => ProxyError::UpstreamRateLimited(None),
        UpstreamFailure::ServerError | UpstreamFailure::Refused => ProxyError::UpstreamFailed,
        UpstreamFailure::Broken => ProxyError::UpstreamUnreachable,
    }
}

/// The client's error for a provider's non-2xx answer, reading (bounded)
/// its message for a 4xx; the key is scrubbed from what is passed on.
async fn refusal(
    status: StatusCode,
    response: reqwest::Response,
    key: &str,
    wait: Duration,
) -> (UpstreamFailure, ProxyError) {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs.min(3600)));
        return (
            UpstreamFailure::RateLimited,
            ProxyError::UpstreamRateLimited(retry),
        );
    }
    if status.is_server_error() {
        return (UpstreamFailure::ServerError, ProxyError::UpstreamFailed);
    }
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return (UpstreamFailure::Refused, ProxyError::UpstreamKeyRefused);
    }
    let message = timeout(wait, read_bounded(response, MAX_ERROR_BODY))
        .await
        .ok()
        .flatten()
        .and_then(|body| error_message(&body, key))
        .unwrap_or_else(|| format!("it answered {status}."));
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_GATEWAY
    };
    (
        UpstreamFailure::Refused,
        ProxyError::UpstreamRefused(status, message),
    )
}

async fn read_bounded(response: reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.ok()?;
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Some(body)
}

/// `error.message` of an OpenAI-shaped error body: printable, bounded, and
/// never holding the key (a provider may quote the key it was given).
fn error_message(body: &[u8], key: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?;
    let mut message = if key.is_empty() {
        message.to_string()
    } else {
        message.replace(key, "[key]")
    };
    message = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_MESSAGE)
        .collect();
    let message = message.trim().to_string();
    if message.is_empty() {
        return None;
    }
    Some(if message.ends_with('.') {
        message
    } else {
        format!("{message}.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_providers_message_is_passed_on_without_the_key() {
        let body = br#"{"error":{"message":"Invalid key sk-secret-123 for model x\n","type":"invalid_request_error"}}"#;
        let message = error_message(body, "sk-secret-123").unwrap();
        assert_eq!(message, "Invalid key [key] for model x.");
    }
}
