//! The API and control routes of a running `clawplane serve`, as the
//! end-to-end tests call them.

use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use serde_json::Value;

use super::{Server, CONTROL_KEY};

pub struct Api<'a> {
    pub client: Client,
    pub server: &'a Server,
    /// The `x-oa-user-id` of every call.
    pub user: &'a str,
    /// The `x-oa-internal-key` of every call.
    pub internal_key: &'a str,
}

impl Api<'_> {
    pub async fn call(&self, method: Method, path: &str) -> (u16, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.server.address))
            .header("x-oa-internal-key", self.internal_key)
            .header("x-oa-user-id", self.user)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON envelope");
        assert_eq!(body["ok"], status < 400, "{status} {body}");
        (status, body)
    }

    pub async fn put_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .put(format!("{}{path}", self.server.address))
            .header("x-oa-internal-key", self.internal_key)
            .header("x-oa-user-id", self.user)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON envelope"))
    }

    pub async fn control(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.server.address))
            .header("x-oa-control-key", CONTROL_KEY)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON envelope"))
    }

    /// Polls the instance until `status` (bounded).
    pub async fn wait_for(&self, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (_, body) = self.call(Method::GET, "/api/openclaw/instance").await;
            let instance = body["data"].clone();
            if instance["status"] == status {
                return instance;
            }
            assert_ne!(
                instance["status"], "error",
                "provisioning failed: {instance}"
            );
            assert!(
                Instant::now() < deadline,
                "not {status} in time: {instance}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
