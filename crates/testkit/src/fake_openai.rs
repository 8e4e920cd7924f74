//! A fake OpenAI-compatible model provider on loopback, for tests that run a
//! real gateway (the real model APIs are out of reach, and a test must not
//! spend anyone's credits). `POST /v1/chat/completions` answers a fixed text:
//! streamed (`stream: true`) as `chat.completion.chunk` events, one piece
//! each, a usage chunk and `data: [DONE]`; otherwise as one
//! `chat.completion`. Every request body is recorded.
//!
//! [`FakeOpenAi::configure`] makes it the gateway's model provider in an
//! `openclaw.json` (`models.providers.fakeai` and
//! `agents.defaults.model.primary: "fakeai/fake-model"`, the configuration
//! verified in docs/research/openclaw-2026.9.6.md §6), keeping every other key.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The provider id in the gateway's config.
pub const PROVIDER: &str = "fakeai";
/// The model id.
pub const MODEL: &str = "fake-model";

type Recorded = Arc<Mutex<Vec<Value>>>;

#[derive(Clone)]
struct Fake {
    pieces: Arc<Vec<String>>,
    requests: Recorded,
}

/// A running fake provider; stops when dropped.
pub struct FakeOpenAi {
    /// `http://127.0.0.1:<port>/v1`.
    pub base_url: String,
    /// The pieces of every answer, in order.
    pub pieces: Vec<String>,
    requests: Recorded,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOpenAi {
    /// Starts on a free loopback port; every answer is `pieces`, joined.
    pub async fn start(pieces: &[&str]) -> FakeOpenAi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake provider on loopback");
        let port = listener.local_addr().expect("its address").port();
        let requests = Recorded::default();
        let fake = Fake {
            pieces: Arc::new(pieces.iter().map(|p| (*p).to_owned()).collect()),
            requests: requests.clone(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(fake);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOpenAi {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            pieces: pieces.iter().map(|p| (*p).to_owned()).collect(),
            requests,
            task,
        }
    }

    /// The whole answer.
    pub fn answer(&self) -> String {
        self.pieces.concat()
    }

    /// The request bodies received so far, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Makes this fake the default model of the gateway configured by
    /// `openclaw.json` at `path`, keeping the file's other keys.
    pub fn configure(&self, path: &Path) -> std::io::Result<()> {
        let text = std::fs::read_to_string(path)?;
        let mut config: Value = serde_json::from_str(&text).map_err(std::io::Error::other)?;
        config["models"]["mode"] = json!("merge");
        config["models"]["providers"][PROVIDER] = json!({
            "baseUrl": self.base_url,
            "apiKey": "fake-key",
            "api": "openai-completions",
            "models": [{
                "id": MODEL, "name": "Fake model", "reasoning": false, "input": ["text"],
                "cost": { "input": 1, "output": 2, "cacheRead": 0, "cacheWrite": 0 },
                "contextWindow": 32000, "maxTokens": 1024
            }]
        });
        config["agents"]["defaults"]["model"]["primary"] = json!(format!("{PROVIDER}/{MODEL}"));
        let pretty = serde_json::to_string_pretty(&config).map_err(std::io::Error::other)?;
        std::fs::write(path, pretty)
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn chunk(delta: Value, finish: Option<&str>, usage: Option<Value>) -> String {
    let choices = if usage.is_some() {
        json!([])
    } else {
        json!([{ "index": 0, "delta": delta, "finish_reason": finish }])
    };
    let mut chunk = json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
        "model": MODEL, "choices": choices,
    });
    if let Some(usage) = usage {
        chunk["usage"] = usage;
    }
    format!("data: {chunk}\n\n")
}

async fn completions(State(fake): State<Fake>, Json(body): Json<Value>) -> Response {
    let streamed = body["stream"] == true;
    if let Ok(mut requests) = fake.requests.lock() {
        requests.push(body);
    }
    let usage = json!({ "prompt_tokens": 10, "completion_tokens": fake.pieces.len(), "total_tokens": 10 + fake.pieces.len() });
    if !streamed {
        return Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": fake.pieces.concat() }, "finish_reason": "stop" }],
            "usage": usage,
        }))
        .into_response();
    }
    let mut events: Vec<String> = fake
        .pieces
        .iter()
        .map(|p| chunk(json!({ "role": "assistant", "content": p }), None, None))
        .collect();
    events.push(chunk(json!({}), Some("stop"), None));
    events.push(chunk(Value::Null, None, Some(usage)));
    events.push("data: [DONE]\n\n".to_owned());
    // A little apart, as a real provider writes them.
    let stream = futures::stream::unfold(events.into_iter(), |mut rest| async move {
        let next = rest.next()?;
        tokio::time::sleep(Duration::from_millis(30)).await;
        Some((Ok::<_, std::convert::Infallible>(next), rest))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}
