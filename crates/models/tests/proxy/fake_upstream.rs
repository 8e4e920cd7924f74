//! A loopback OpenAI-compatible provider for these tests, told what to do
//! by the last message's content (a cue): answer, stream (optionally one
//! chunk per permit of its gate), fail with 429, 500 or 400, stall, cut the
//! stream, or leave the usage out. It records every request's
//! `Authorization` header and body.

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

/// The operator's key the fake expects.
pub const UPSTREAM_KEY: &str = "sk-upstream-secret-0123456789";
/// The usage every answer reports: 1000 prompt (400 cached), 500 completion.
pub const PROMPT: u64 = 1000;
pub const COMPLETION: u64 = 500;
pub const CACHED: u64 = 400;
/// The pieces of a streamed answer.
pub const PIECES: usize = 3;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<Semaphore>,
}

/// The running fake.
pub struct FakeUpstream {
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// One permit lets one more chunk of a `gated` stream go.
    pub gate: Arc<Semaphore>,
}

impl FakeUpstream {
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
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeUpstream {
            base_url: format!("http://{addr}/v1"),
            seen: fake.seen,
            gate: fake.gate,
        }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn usage() -> Value {
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
        "429" => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                "slow down",
            )
                .into_response()
        }
        "500" => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "400" => {
            let message = format!("Bad messages, and by the way your key is {UPSTREAM_KEY}");
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
            )
                .into_response();
        }
        "stall" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        _ => {}
    }
    if body["stream"] != true {
        let mut answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]});
        if cue != "nousage" {
            answer["usage"] = usage();
        }
        return Json(answer).into_response();
    }
    let gated = cue == "gated";
    let gate = fake.gate.clone();
    let cue_for_stream = cue.clone();
    let events = async_stream(move |tx| async move {
        for i in 0..PIECES {
            if gated && i > 0 {
                let permit = tokio::time::timeout(Duration::from_secs(10), gate.acquire()).await;
                permit
                    .expect("the test lets the next chunk go")
                    .unwrap()
                    .forget();
            }
            if cue_for_stream == "cut" && i == 2 {
                let _ = tx.send(Err(std::io::Error::other("cut"))).await;
                return;
            }
            if cue_for_stream == "stall-mid" && i == 2 {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            let _ = tx.send(Ok(piece(i))).await;
        }
        if gated {
            let permit = tokio::time::timeout(Duration::from_secs(10), gate.acquire()).await;
            permit
                .expect("the test lets the usage go")
                .unwrap()
                .forget();
        }
        if cue_for_stream != "nousage" {
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

type Item = Result<String, std::io::Error>;

/// A body stream fed by a task through a channel of one.
fn async_stream<F, Fut>(make: F) -> impl futures_util::Stream<Item = Item>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Item>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(make(tx));
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
