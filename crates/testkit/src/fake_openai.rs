//! A fake OpenAI-compatible model provider on loopback, for tests that run a
//! real gateway (the real model APIs are out of reach, and a test must not
//! spend anyone's credits). `POST /v1/chat/completions` answers a fixed text:
//! streamed (`stream: true`) as `chat.completion.chunk` events, one piece
//! each, a usage chunk and `data: [DONE]`; otherwise as one
//! `chat.completion`. Every request body is recorded.
//!
//! [`FakeOpenAi::start_tool_runner`] adds a script that makes the agent run
//! shell commands: when the conversation ends with a user message holding
//! `RUN: <command>` ([`RUN_PREFIX`], the command running to the end of its
//! line), the answer is a call of the gateway's [`EXEC_TOOL`] with that
//! command (`delta.tool_calls` when streamed, `message.tool_calls`
//! otherwise, `finish_reason: "tool_calls"`); the context the gateway adds
//! after a message, as user messages without a command, is skipped;
//! when it ends with the tool's result (role `tool`), the answer is
//! [`OUTPUT_PREFIX`] followed by that result verbatim in a code fence
//! ([`output_in`] reads it back), so the chat reply carries the command's
//! output. Anything else gets the fixed text.
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
/// In a user message, this and the rest of its line ask the tool runner to
/// run that command.
pub const RUN_PREFIX: &str = "RUN: ";
/// The tool runner's answer to a tool result: this, then the result
/// verbatim in a code fence.
pub const OUTPUT_PREFIX: &str = "OUTPUT:\n";
/// OpenClaw's shell tool (2026.9.6): `{"command": "<shell command>", ...}`
/// (also `yieldMs`, after which it goes to the background, and
/// `timeoutSeconds`), run by the gateway without approval in its default
/// configuration (`tools.exec.mode` `full`).
pub const EXEC_TOOL: &str = "exec";

type Recorded = Arc<Mutex<Vec<Value>>>;

#[derive(Clone)]
struct Fake {
    pieces: Arc<Vec<String>>,
    tools: bool,
    requests: Recorded,
}

/// A running fake provider; stops when dropped.
pub struct FakeOpenAi {
    /// `http://127.0.0.1:<port>/v1`.
    pub base_url: String,
    /// `127.0.0.1:<port>`, the address the gateway connects to.
    pub address: String,
    /// The pieces of every answer, in order.
    pub pieces: Vec<String>,
    requests: Recorded,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOpenAi {
    /// Starts on a free loopback port; every answer is `pieces`, joined.
    pub async fn start(pieces: &[&str]) -> FakeOpenAi {
        Self::launch(pieces, false).await
    }

    /// Starts on a free loopback port as a tool runner (see the module
    /// docs); answers that are not part of the script are `pieces`, joined.
    pub async fn start_tool_runner(pieces: &[&str]) -> FakeOpenAi {
        Self::launch(pieces, true).await
    }

    async fn launch(pieces: &[&str], tools: bool) -> FakeOpenAi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake provider on loopback");
        let port = listener.local_addr().expect("its address").port();
        let requests = Recorded::default();
        let pieces: Vec<String> = pieces.iter().map(|p| (*p).to_owned()).collect();
        let fake = Fake {
            pieces: Arc::new(pieces.clone()),
            tools,
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
            address: format!("127.0.0.1:{port}"),
            pieces,
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

    /// The result of the latest [`EXEC_TOOL`] call of `command`, as the
    /// gateway handed it to this model: the command's output before the
    /// gateway redacts anything in its own answer (a tenant may bring its
    /// own model, so this is what a tenant can read).
    pub fn tool_result(&self, command: &str) -> Option<String> {
        tool_result(&self.requests(), command)
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

/// The answer to a tool's result: [`OUTPUT_PREFIX`], then the result in a
/// code fence longer than any run of backticks in it. The fence keeps the
/// result verbatim: the gateway drops some lines from its answers (its own
/// `(no output)` placeholder, for one), but only outside code.
fn output_answer(result: &str) -> String {
    let longest = result.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{OUTPUT_PREFIX}{fence}\n{result}\n{fence}")
}

/// The tool's result in an answer of the tool runner to it, `None` when
/// `answer` is not one.
pub fn output_in(answer: &str) -> Option<&str> {
    let (fence, rest) = answer.strip_prefix(OUTPUT_PREFIX)?.split_once('\n')?;
    if fence.len() < 3 || fence.chars().any(|c| c != '`') {
        return None;
    }
    rest.strip_suffix(fence)?.strip_suffix('\n')
}

/// The result of the latest [`EXEC_TOOL`] call of `command` in `requests`.
fn tool_result(requests: &[Value], command: &str) -> Option<String> {
    requests.iter().rev().find_map(|body| {
        let messages = body["messages"].as_array()?;
        let id = messages.iter().rev().find_map(|m| {
            m["tool_calls"].as_array()?.iter().find_map(|call| {
                let arguments: Value =
                    serde_json::from_str(call["function"]["arguments"].as_str()?).ok()?;
                (call["function"]["name"] == EXEC_TOOL && arguments["command"] == command)
                    .then(|| call["id"].clone())
            })
        })?;
        messages
            .iter()
            .rev()
            .find(|m| m["role"] == "tool" && m["tool_call_id"] == id)
            .map(|m| text_of(&m["content"]))
    })
}

/// What one model call answers.
enum Turn {
    Text(Vec<String>),
    Call { id: String, arguments: String },
}

/// The text of a message's `content`: a string, or the `text` of its parts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().or_else(|| p.as_str()))
            .collect(),
        _ => String::new(),
    }
}

/// The names of the tools a request offers.
fn offered(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().or(t["name"].as_str()))
        .map(str::to_owned)
        .collect()
}

/// The command of a user message: the rest of the line after [`RUN_PREFIX`]
/// (the gateway puts a timestamp before the text, and context after it).
fn command_in(message: &Value) -> Option<String> {
    let text = text_of(&message["content"]);
    let line = text.lines().find(|l| l.contains(RUN_PREFIX))?;
    let (_, command) = line.split_once(RUN_PREFIX)?;
    Some(command.trim().to_owned())
}

fn turn(fake: &Fake, body: &Value, call_number: usize) -> Turn {
    let fixed = Turn::Text(fake.pieces.to_vec());
    if !fake.tools {
        return fixed;
    }
    // The conversation's last word, past the instructions and the context
    // (user messages without a command) the gateway adds around it.
    let Some(last) = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|m| match m["role"].as_str() {
            Some("system" | "developer") => false,
            Some("user") => command_in(m).is_some(),
            _ => true,
        })
    else {
        return fixed;
    };
    match last["role"].as_str() {
        Some("tool") => Turn::Text(vec![output_answer(&text_of(&last["content"]))]),
        Some("user") => {
            let tools = offered(body);
            if !tools.iter().any(|t| t == EXEC_TOOL) {
                return Turn::Text(vec![format!(
                    "the gateway offered no {EXEC_TOOL} tool, only {tools:?}"
                )]);
            }
            // In the foreground (never a background session), within a minute.
            let arguments = json!({
                "command": command_in(last).unwrap_or_default(),
                "yieldMs": 120_000, "timeoutSeconds": 60,
            });
            Turn::Call {
                id: format!("call_fake_{call_number}"),
                arguments: arguments.to_string(),
            }
        }
        _ => fixed,
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
    let call_number = match fake.requests.lock() {
        Ok(mut requests) => {
            requests.push(body.clone());
            requests.len()
        }
        Err(_) => 0,
    };
    let turn = turn(&fake, &body, call_number);
    let pieces = match &turn {
        Turn::Text(pieces) => pieces.len(),
        Turn::Call { .. } => 1,
    };
    let usage =
        json!({ "prompt_tokens": 10, "completion_tokens": pieces, "total_tokens": 10 + pieces });
    if !streamed {
        let (message, finish) = match turn {
            Turn::Text(pieces) => (
                json!({ "role": "assistant", "content": pieces.concat() }),
                "stop",
            ),
            Turn::Call { id, arguments } => (
                json!({ "role": "assistant", "content": null, "tool_calls": [{
                    "id": id, "type": "function",
                    "function": { "name": EXEC_TOOL, "arguments": arguments },
                }] }),
                "tool_calls",
            ),
        };
        return Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            "usage": usage,
        }))
        .into_response();
    }
    let mut events: Vec<String> = match turn {
        Turn::Text(pieces) => {
            let mut events: Vec<String> = pieces
                .iter()
                .map(|p| chunk(json!({ "role": "assistant", "content": p }), None, None))
                .collect();
            events.push(chunk(json!({}), Some("stop"), None));
            events
        }
        Turn::Call { id, arguments } => {
            // The name first, the arguments in two halves, as real providers stream them.
            let half = (0..=arguments.len() / 2)
                .rev()
                .find(|i| arguments.is_char_boundary(*i))
                .unwrap_or(0);
            let (head, tail) = arguments.split_at(half);
            let call = |v: Value| json!({ "tool_calls": [v] });
            vec![
                chunk(
                    json!({ "role": "assistant", "content": null, "tool_calls": [{
                        "index": 0, "id": id, "type": "function",
                        "function": { "name": EXEC_TOOL, "arguments": "" },
                    }] }),
                    None,
                    None,
                ),
                chunk(
                    call(json!({ "index": 0, "function": { "arguments": head } })),
                    None,
                    None,
                ),
                chunk(
                    call(json!({ "index": 0, "function": { "arguments": tail } })),
                    None,
                    None,
                ),
                chunk(json!({}), Some("tool_calls"), None),
            ]
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(tools: bool) -> Fake {
        Fake {
            pieces: Arc::new(vec!["fixed".into()]),
            tools,
            requests: Recorded::default(),
        }
    }

    /// A request as OpenClaw 2026.9.6 sends it: the user's text after a
    /// timestamp, then a context message, and its tools.
    fn asked(stream: bool, command: &str) -> Value {
        json!({
            "model": MODEL, "stream": stream,
            "messages": [
                { "role": "system", "content": "You are an agent." },
                { "role": "user", "content": format!("[Tue 2026-12-01 11:03 UTC] {RUN_PREFIX}{command}\n\nRuntime: agent=main") },
                { "role": "user", "content": [{ "type": "text", "text": "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>" }] },
            ],
            "tools": [{ "type": "function", "function": { "name": EXEC_TOOL, "parameters": {} } }],
        })
    }

    async fn answer(fake: &Fake, body: Value) -> String {
        let response = completions(State(fake.clone()), Json(body)).await;
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("the whole answer");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    /// The chunks of a streamed answer.
    fn chunks(text: &str) -> Vec<Value> {
        text.split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).expect("a JSON chunk"))
            .collect()
    }

    #[tokio::test]
    async fn a_command_becomes_an_exec_call_in_one_message() {
        let answer = answer(&fake(true), asked(false, "echo \"hi\" ü")).await;
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let choice = &answer["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], EXEC_TOOL);
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments["command"], "echo \"hi\" ü");
    }

    #[tokio::test]
    async fn a_command_becomes_an_exec_call_streamed() {
        let answer = answer(&fake(true), asked(true, "echo \"hi\" ü")).await;
        assert!(answer.ends_with("data: [DONE]\n\n"), "{answer}");
        let chunks = chunks(&answer);
        let deltas: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(deltas[0]["function"]["name"], EXEC_TOOL);
        assert!(deltas[0]["id"].is_string());
        let arguments: String = deltas
            .iter()
            .filter_map(|d| d["function"]["arguments"].as_str())
            .collect();
        let arguments: Value = serde_json::from_str(&arguments).unwrap();
        assert_eq!(arguments["command"], "echo \"hi\" ü");
        assert!(chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
        assert!(chunks.iter().any(|c| c["usage"].is_object()));
    }

    #[tokio::test]
    async fn a_tool_result_comes_back_verbatim() {
        let mut body = asked(true, "id -u");
        let messages = body["messages"].as_array_mut().unwrap();
        messages.push(
            json!({ "role": "assistant", "content": null, "tool_calls": [{
            "id": "callfake1", "type": "function",
            "function": { "name": EXEC_TOOL, "arguments": "{\"command\":\"id -u\"}" },
        }] }),
        );
        messages.push(json!({ "role": "tool", "tool_call_id": "callfake1", "content": "1234\n" }));
        let fake = fake(true);
        let answer = answer(&fake, body).await;
        let text: String = chunks(&answer)
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(output_in(&text), Some("1234\n"));
        assert!(text.starts_with(OUTPUT_PREFIX), "{text}");

        let recorded = fake.requests.lock().unwrap().clone();
        assert_eq!(tool_result(&recorded, "id -u").as_deref(), Some("1234\n"));
        assert_eq!(tool_result(&recorded, "id"), None);
    }

    #[test]
    fn a_result_is_fenced_beyond_its_own_backticks() {
        for result in ["", "(no output)", "a ``` b\n````", "x\n"] {
            let answer = output_answer(result);
            assert_eq!(output_in(&answer), Some(result), "{answer}");
        }
        assert!(output_answer("a ```` b").contains("\n`````\n"));
        assert_eq!(output_in("OUTPUT:\nplain"), None);
    }

    #[tokio::test]
    async fn without_the_script_every_answer_is_the_fixed_text() {
        let answer = answer(&fake(false), asked(false, "id -u")).await;
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], "fixed");
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    }
}
