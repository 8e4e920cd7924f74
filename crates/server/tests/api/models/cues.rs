//! What the tests of model `cued` share: its request bodies, their holds,
//! the fake upstream's usage at its prices, and checks of what the ledger
//! holds open.

use std::time::Duration;

use clawplane_domain::UserId;
use clawplane_models::cost::{self, Usage};
use clawplane_models::proxy::ProxySettings;
use clawplane_testkit::fake_upstream::{CACHED, COMPLETION, PROMPT};
use serde_json::{json, Value};

use super::ModelsApp;

/// The `max_tokens` every `cued` request asks for (the model's cap too).
pub const MAX_TOKENS: u64 = 1000;

/// Short timeouts (a stall is seen in a second), a small body limit, and no
/// per-minute limits (the contention test sends 64 requests at once).
pub fn settings() -> ProxySettings {
    ProxySettings {
        first_byte_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(30),
        max_body_bytes: 64 * 1024,
        requests_per_minute: 0,
        tokens_per_minute: 0,
        ..ProxySettings::default()
    }
}

/// A request to model `cued` whose last message is `cue`, as sent.
pub fn body(cue: &str, stream: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": "cued",
        "stream": stream,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": cue}],
    }))
    .unwrap()
}

/// `error.code` of an error in OpenAI's shape, checking the shape.
pub fn error_code(body: &Value) -> String {
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        error["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    error["code"].as_str().unwrap_or_default().to_owned()
}

impl ModelsApp {
    /// The hold the proxy reserves for `body` (cost.rs: the body's input
    /// estimate at the input price plus `max_tokens` at the output price).
    pub fn hold_of(&self, body: &[u8]) -> i64 {
        cost::max_cost(&self.cued, body.len(), Some(MAX_TOKENS)).micros()
    }

    /// What the fake upstream's usage costs at `cued`'s prices.
    pub fn usage_cost(&self) -> i64 {
        let usage = Usage {
            prompt_tokens: PROMPT,
            completion_tokens: COMPLETION,
            cached_tokens: CACHED,
        };
        cost::usage_cost(&self.cued.prices, &usage).micros()
    }

    /// A raw chat completion request, with this token if any.
    pub async fn post(&self, token: Option<&str>, body: Vec<u8>) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.url))
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(30));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Asserts that no hold is open anywhere and `user` has nothing held.
    pub async fn assert_nothing_held(&self, user: &UserId) {
        let open = self.db.store.open_holds(None, 100).await.unwrap();
        assert!(open.is_empty(), "open holds: {open:?}");
        let held = self.db.store.held_balance(user).await.unwrap();
        assert_eq!(held.micros(), 0, "credits still held");
    }

    /// Asserts that the ledger re-sums and its holds agree.
    pub async fn assert_verify_clean(&self) {
        let report = self.ledger.verify().await.unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
}
