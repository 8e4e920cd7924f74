//! A loopback OpenAI-compatible upstream that fails on cue, for the model
//! proxy's tests and benchmark (the real providers are out of reach, and a
//! test must not spend anyone's credits). The last message's content is the
//! cue ([`cue`] lists them): answer, stream (optionally one chunk per permit
//! of its [`FakeUpstream::gate`]), fail with 429, 500 or 400, stall before
//! the answer or mid-stream, cut the stream, or leave the usage out. Every
//! answer reports the same [`usage`](PROMPT). It records every request's
//! `Authorization` header and body.
//!
//! Unlike [`crate::fake_openai`] (a provider a real gateway is configured
//! with, answering fixed text and running tools), this one is an upstream
//! of `serve`'s model proxy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// The cues: the last message's content that makes the fake do something
/// other than answer.
pub mod cue {
    /// 429 with `retry-after: 7`.
    pub const TOO_MANY: &str = "429";
    /// 500 with a plain-text body.
    pub const SERVER_ERROR: &str = "500";
    /// 400 in OpenAI's error shape, whose message quotes the upstream key.
    pub const BAD_REQUEST: &str = "400";
    /// Nothing for [`super::STALL`] before the answer.
    pub const STALL: &str = "stall";
    /// A stream that stops for [`super::STALL`] after two pieces.
    pub const STALL_MID: &str = "stall-mid";
    /// A stream cut (the connection fails) after two pieces.
    pub const CUT: &str = "cut";
    /// An answer without usage.
    pub const NO_USAGE: &str = "nousage";
    /// A stream whose every piece after the first, and its usage, waits for
    /// a permit of the gate (at most [`super::GATE_WAIT`]; then it ends
    /// without usage).
    pub const GATED: &str = "gated";
}

/// How long the stall cues stall.
pub const STALL: Duration = Duration::from_secs(30);
/// How long a gated stream waits for a permit before it gives up.
pub const GATE_WAIT: Duration = Duration::from_secs(60);

/// The operator's key the fake expects.
pub const UPSTREAM_KEY: &str = "sk-upstream-secret-0123456789";
/// The usage every answer reports: 1000 prompt tokens (400 of them
/// cached) and 500 completion tokens.
pub const PROMPT: u64 = 1000;
/// See [`PROMPT`].
pub const COMPLETION: u64 = 500;
/// See [`PROMPT`].
pub const CACHED: u64 = 400;
/// The pieces of a streamed answer.
pub const PIECES: usize = 3;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// Its JSON body.
    pub body: Value,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<Semaphore>,
}

/// The running fake; stops when dropped.
pub struct FakeUpstream {
    /// `http://127.0.0.1:<port>/v1`.
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// One permit lets one more chunk of a `gated` stream go.
    pub gate: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    /// Starts on a free loopback port.
    pub async fn start() -> FakeUpstream {
        let fake = Fake {
            seen: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Each piece goes out at once (as a provider's would), not after
        // the peer's delayed acknowledgement.
        let listener = axum::serve::ListenerExt::tap_io(listener, |s| {
            let _ = s.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeUpstream {
            base_url: format!("http://{addr}/v1"),
            seen: fake.seen,
            gate: fake.gate,
            task,
        }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The usage every answer reports, in OpenAI's shape.
pub fn usage() -> Value {
    json!({"prompt_tokens": PROMPT, "completion_tokens": COMPLETION, "total_tokens": PROMPT + COMPLETION,
           "prompt_tokens_details": {"cached_tokens": CACHED}})
}

fn piece(i: usize) -> String {
    let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024",
        "choices": [{"index": 0, "delta": {"content": format!("piece-{i} ")}, "finish_reason": null}], "usage": null});
    format!("data: {chunk}\n\n")
}

async fn chat(State(fake): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    fake.seen.lock().unwrap().push(Seen {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: body.clone(),
    });
    let cue = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    match cue.as_str() {
        cue::TOO_MANY => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                "slow down",
            )
                .into_response()
        }
        cue::SERVER_ERROR => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        cue::BAD_REQUEST => {
            let message = format!("Bad messages, and by the way your key is {UPSTREAM_KEY}");
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
            )
                .into_response();
        }
        cue::STALL => {
            tokio::time::sleep(STALL).await;
        }
        _ => {}
    }
    if body["stream"] != true {
        let mut answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]});
        if cue != cue::NO_USAGE {
            answer["usage"] = usage();
        }
        return Json(answer).into_response();
    }
    let gated = cue == cue::GATED;
    let gate = fake.gate.clone();
    let cue_for_stream = cue.clone();
    let events = async_stream(move |tx| async move {
        for i in 0..PIECES {
            if gated && i > 0 && !pass(&gate).await {
                return;
            }
            if cue_for_stream == cue::CUT && i == 2 {
                let _ = tx.send(Err(std::io::Error::other("cut"))).await;
                return;
            }
            if cue_for_stream == cue::STALL_MID && i == 2 {
                tokio::time::sleep(STALL).await;
            }
            let _ = tx.send(Ok(piece(i))).await;
        }
        if gated && !pass(&gate).await {
            return;
        }
        if cue_for_stream != cue::NO_USAGE {
            let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage()});
            let _ = tx.send(Ok(format!("data: {chunk}\n\n"))).await;
        }
        let _ = tx.send(Ok("data: [DONE]\n\n".to_string())).await;
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events))
        .unwrap()
}

/// Waits for one permit of the gate (and uses it up); false after
/// [`GATE_WAIT`] without one.
async fn pass(gate: &Semaphore) -> bool {
    match tokio::time::timeout(GATE_WAIT, gate.acquire()).await {
        Ok(Ok(permit)) => {
            permit.forget();
            true
        }
        _ => false,
    }
}

type Item = Result<String, std::io::Error>;

/// A body stream fed by a task through a channel of one.
fn async_stream<F, Fut>(make: F) -> impl futures::Stream<Item = Item>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Item>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(make(tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
