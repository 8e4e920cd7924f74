//! The typed client of a runtime agent's `/v1` API, as the control plane
//! uses it: the service token in `X-OpenAgents-Service-Token`, timeouts on
//! every call, and bounded retries for idempotent reads only. Paths, headers
//! and bodies are the runtime contract's ([`clawplane_http::v1`]), which the
//! runtime's handlers build: an answer of another shape is `InvalidResponse`.
//!
//! Errors map as the seed's did: a runtime's error keeps its status
//! (400-599) and message; a reply that is not the envelope becomes 502
//! `invalid_response`; a runtime that does not answer is 502
//! `runtime_unreachable`. (`instance not found`, `runtime url not set` and
//! `service token not set` are decided before a call is made.)

use std::time::Duration;

use clawplane_http::v1::{self, headers, paths};
use clawplane_secrets::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

pub use clawplane_http::v1::GatewayAction;

/// Where one instance's runtime is and how to authenticate to it.
#[derive(Clone)]
pub struct RuntimeTarget {
    /// Base URL of the agent, e.g. `http://127.0.0.1:8787`.
    pub base_url: String,
    /// The instance's service token.
    pub service_token: SecretString,
}

impl std::fmt::Debug for RuntimeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeTarget")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Why a runtime call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime answered with an error envelope.
    #[error("{message}")]
    Status {
        /// Its HTTP status.
        status: u16,
        /// Its error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// Nothing answered in time.
    #[error("the runtime did not answer")]
    Unreachable,
    /// An answer that is not the envelope.
    #[error("the runtime's answer could not be read")]
    InvalidResponse,
}

/// Timeouts and retries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Connecting.
    pub connect_timeout: Duration,
    /// A quick call (status, devices, backups list).
    pub quick_timeout: Duration,
    /// A call that waits for the gateway (start, restart, restore, backup).
    pub slow_timeout: Duration,
    /// Attempts for idempotent reads.
    pub read_attempts: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            quick_timeout: Duration::from_secs(15),
            slow_timeout: Duration::from_secs(300),
            read_attempts: 3,
        }
    }
}

/// The client; cheap to clone.
#[derive(Clone, Debug)]
pub struct RuntimeClient {
    http: reqwest::Client,
    options: ClientOptions,
}

impl RuntimeClient {
    /// A client with these options.
    pub fn new(options: ClientOptions) -> Self {
        // Idle connections are let go before the runtime's listener closes
        // them (its keep-alive wait is 10 s), so a request never races a close.
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .unwrap_or_default();
        RuntimeClient { http, options }
    }

    /// `GET /v1/status`.
    pub async fn status(&self, t: &RuntimeTarget) -> Result<v1::Status, RuntimeError> {
        self.read(t, paths::STATUS).await
    }

    /// `GET /v1/devices`.
    pub async fn devices(&self, t: &RuntimeTarget) -> Result<v1::DeviceList, RuntimeError> {
        self.read(t, paths::DEVICES).await
    }

    /// `POST /v1/devices/{id}/approve`. `request_id` must already be a parsed UUID.
    pub async fn approve_device(
        &self,
        t: &RuntimeTarget,
        request_id: uuid::Uuid,
    ) -> Result<v1::DeviceDecision, RuntimeError> {
        self.write(t, &paths::device_approve(request_id), None, false)
            .await
    }

    /// `POST /v1/devices/{id}/reject`.
    pub async fn reject_device(
        &self,
        t: &RuntimeTarget,
        request_id: uuid::Uuid,
    ) -> Result<v1::DeviceDecision, RuntimeError> {
        self.write(t, &paths::device_reject(request_id), None, false)
            .await
    }

    /// `POST /v1/storage/backup`.
    pub async fn backup(&self, t: &RuntimeTarget) -> Result<v1::BackupTaken, RuntimeError> {
        self.write(t, paths::STORAGE_BACKUP, None, true).await
    }

    /// `GET /v1/storage/backups`.
    pub async fn backups(&self, t: &RuntimeTarget) -> Result<v1::BackupList, RuntimeError> {
        self.read(t, paths::STORAGE_BACKUPS).await
    }

    /// `POST /v1/storage/restore` (`None`: the latest backup).
    pub async fn restore(
        &self,
        t: &RuntimeTarget,
        backup_id: Option<&str>,
    ) -> Result<v1::RestoreReply, RuntimeError> {
        let body = v1::RestoreRequest {
            backup_id: backup_id.map(str::to_owned),
        };
        self.write(t, paths::STORAGE_RESTORE, Some(json!(body)), true)
            .await
    }

    /// `POST /v1/gateway/{restart,stop,start}`.
    pub async fn gateway(
        &self,
        t: &RuntimeTarget,
        action: GatewayAction,
    ) -> Result<v1::GatewayReply, RuntimeError> {
        self.write(t, action.path(), None, true).await
    }

    /// `GET /v1/usage`.
    pub async fn usage(&self, t: &RuntimeTarget) -> Result<v1::Usage, RuntimeError> {
        self.read(t, paths::USAGE).await
    }

    /// `GET /v1/logs?lines=N` (`lines` brought within 1-2000).
    pub async fn logs(&self, t: &RuntimeTarget, lines: u32) -> Result<v1::Logs, RuntimeError> {
        self.read(t, &paths::logs(lines)).await
    }

    /// `POST {runtime}/gateway{path}` as the gateway's owner with a JSON
    /// body, sent once; the answer as it comes (any status, body not read
    /// yet), everything bounded by `limit`. `Unreachable` when nothing
    /// answered.
    pub async fn gateway_post(
        &self,
        t: &RuntimeTarget,
        path: &str,
        body: &Value,
        limit: Duration,
    ) -> Result<reqwest::Response, RuntimeError> {
        self.http
            .post(format!(
                "{}{}",
                t.base_url.trim_end_matches('/'),
                paths::through_gateway(path)
            ))
            .timeout(limit)
            .header(headers::SERVICE_TOKEN, t.service_token.expose_secret())
            .header(headers::GATEWAY_OWNER, headers::GATEWAY_OWNER_YES)
            .json(body)
            .send()
            .await
            .map_err(|_| RuntimeError::Unreachable)
    }

    /// An idempotent read: retried (bounded) when nothing answered or the
    /// runtime was briefly unavailable.
    async fn read<T: DeserializeOwned>(
        &self,
        t: &RuntimeTarget,
        path: &str,
    ) -> Result<T, RuntimeError> {
        let mut last = RuntimeError::Unreachable;
        for attempt in 0..self.options.read_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            let request = self
                .http
                .get(format!("{}{path}", t.base_url.trim_end_matches('/')))
                .timeout(self.options.quick_timeout);
            match send(request, t).await {
                Err(RuntimeError::Unreachable) => last = RuntimeError::Unreachable,
                Err(RuntimeError::Status {
                    status: 502..=504, ..
                }) if attempt + 1 < self.options.read_attempts => {}
                other => return other,
            }
        }
        Err(last)
    }

    /// A write: sent once (the caller decides whether to retry).
    async fn write<T: DeserializeOwned>(
        &self,
        t: &RuntimeTarget,
        path: &str,
        body: Option<Value>,
        slow: bool,
    ) -> Result<T, RuntimeError> {
        let timeout = if slow {
            self.options.slow_timeout
        } else {
            self.options.quick_timeout
        };
        let mut request = self
            .http
            .post(format!("{}{path}", t.base_url.trim_end_matches('/')))
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request, t).await
    }
}

/// Sends `request` with the service token; the envelope's `data` read as `T`.
async fn send<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    t: &RuntimeTarget,
) -> Result<T, RuntimeError> {
    let response = request
        .header(headers::SERVICE_TOKEN, t.service_token.expose_secret())
        .send()
        .await
        .map_err(|_| RuntimeError::Unreachable)?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|_| RuntimeError::Unreachable)?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| RuntimeError::InvalidResponse)?;
    match body.get("ok").and_then(Value::as_bool) {
        Some(true) if (200..300).contains(&status) => {
            let data = body.get("data").cloned().unwrap_or(Value::Null);
            serde_json::from_value(data).map_err(|_| RuntimeError::InvalidResponse)
        }
        Some(false) if status >= 400 => Err(RuntimeError::Status {
            status,
            code: body["error"]["code"]
                .as_str()
                .unwrap_or("runtime_error")
                .to_owned(),
            message: body["error"]["message"]
                .as_str()
                .unwrap_or("the runtime refused the call")
                .to_owned(),
        }),
        _ => Err(RuntimeError::InvalidResponse),
    }
}
