//! The gateway's admin HTTP RPC on loopback (`POST /api/v1/admin/rpc`, bearer
//! gateway token): the fast way to drive it, instead of starting the
//! OpenClaw CLI per request.

use std::time::Duration;

use clawplane_secrets::{ExposeSecret, SecretString};
use serde_json::{json, Value};

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// Nothing answered (the gateway is not running, or not yet).
    #[error("the gateway is not answering")]
    Unreachable,
    /// The gateway refused the token (a bug: the agent configures both).
    #[error("the gateway refused the agent's token")]
    Unauthorized,
    /// The gateway is suspended or starting; try again.
    #[error("the gateway is temporarily unavailable: {0}")]
    Unavailable(String),
    /// The gateway refused the call.
    #[error("{message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The gateway's error code (`INVALID_REQUEST`...).
        code: String,
        /// The gateway's message.
        message: String,
    },
    /// An answer that is not the documented shape.
    #[error("the gateway's answer could not be read")]
    Invalid,
}

/// A client of one gateway's admin RPC.
#[derive(Clone)]
pub struct GatewayRpc {
    client: reqwest::Client,
    url: String,
    token: SecretString,
}

impl std::fmt::Debug for GatewayRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayRpc")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl GatewayRpc {
    /// A client of the gateway on `127.0.0.1:port`.
    pub fn new(port: u16, token: SecretString) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .unwrap_or_default();
        GatewayRpc {
            client,
            url: format!("http://127.0.0.1:{port}/api/v1/admin/rpc"),
            token,
        }
    }

    /// Calls `method` with `params`; returns the reply's `payload`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(self.token.expose_secret())
            .json(&json!({ "method": method, "params": params }))
            .send()
            .await
            .map_err(|_| RpcError::Unreachable)?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|_| RpcError::Invalid)?;
        if status == 200 && body["ok"] == true {
            return Ok(body.get("payload").cloned().unwrap_or(Value::Null));
        }
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let message = body["error"]["message"]
            .as_str()
            .or_else(|| body["error"]["type"].as_str())
            .unwrap_or("the gateway refused the call")
            .to_owned();
        Err(match status {
            401 | 403 => RpcError::Unauthorized,
            503 => RpcError::Unavailable(message),
            _ => RpcError::Refused {
                status,
                code,
                message,
            },
        })
    }

    /// `device.pair.list`: `{pending, paired}`.
    pub async fn devices(&self) -> Result<Value, RpcError> {
        self.call("device.pair.list", json!({})).await
    }

    /// `device.pair.approve`.
    pub async fn approve_device(&self, request_id: &str) -> Result<Value, RpcError> {
        self.call("device.pair.approve", json!({ "requestId": request_id }))
            .await
    }

    /// `device.pair.reject`.
    pub async fn reject_device(&self, request_id: &str) -> Result<Value, RpcError> {
        self.call("device.pair.reject", json!({ "requestId": request_id }))
            .await
    }

    /// `status`: the gateway's view of itself (`runtimeVersion`, memory...).
    pub async fn status(&self) -> Result<Value, RpcError> {
        self.call("status", json!({})).await
    }

    /// `health`.
    pub async fn health(&self) -> Result<Value, RpcError> {
        self.call("health", json!({})).await
    }

    /// `usage.cost` for the last `days` days.
    pub async fn usage_cost(&self, days: u32) -> Result<Value, RpcError> {
        self.call("usage.cost", json!({ "days": days })).await
    }

    /// `logs.tail`: the last `limit` lines of the gateway's JSON log.
    pub async fn logs_tail(&self, limit: u32) -> Result<Value, RpcError> {
        self.call("logs.tail", json!({ "limit": limit })).await
    }

    /// `gateway.suspend.prepare`: quiesces writes; returns the suspension id
    /// once the gateway reports `ready`.
    pub async fn suspend(&self, request_id: &str) -> Result<String, RpcError> {
        // Bounded: a busy gateway answers `busy` with a retry hint.
        for _ in 0..20 {
            let reply = self
                .call(
                    "gateway.suspend.prepare",
                    json!({ "requestId": request_id }),
                )
                .await?;
            match reply["status"].as_str() {
                Some("ready") => {
                    return reply["suspensionId"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or(RpcError::Invalid)
                }
                Some("busy") | Some("draining") => {
                    let wait = reply["retryAfterMs"]
                        .as_u64()
                        .unwrap_or(250)
                        .clamp(50, 2000);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                _ => return Err(RpcError::Invalid),
            }
        }
        Err(RpcError::Unavailable(
            "the gateway stayed busy; the snapshot was taken without suspending it".into(),
        ))
    }

    /// `gateway.suspend.resume`.
    pub async fn resume(&self, suspension_id: &str) -> Result<(), RpcError> {
        self.call(
            "gateway.suspend.resume",
            json!({ "suspensionId": suspension_id }),
        )
        .await
        .map(|_| ())
    }
}
