//! The server's JSON routes the flow uses besides the browser, over a
//! loopback HTTP client.

use std::time::Duration;

use serde_json::Value;

use crate::common::CONTROL_KEY;
use crate::INTERNAL_KEY;

pub(crate) fn loopback_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// The server's JSON routes for what the browser cannot do: the control
/// surface (the gateway token for the device) and deleting the instance.
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) user: String,
}

impl Api {
    pub(crate) async fn control(&self, path_and_query: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .header("x-oa-control-key", CONTROL_KEY)
            .send()
            .await
            .expect("control request sent");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON envelope");
        assert_eq!(status, 200, "{path_and_query}: {body}");
        body["data"].clone()
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-oa-internal-key", INTERNAL_KEY)
            .header("x-oa-user-id", &self.user)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON envelope"))
    }

    pub(crate) async fn gateway_pid(&self) -> Option<u64> {
        let (_, status) = self
            .call(reqwest::Method::GET, "/api/openclaw/runtime/status")
            .await;
        status["data"]["gateway"]["pid"].as_u64()
    }
}
