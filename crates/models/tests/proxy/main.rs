//! The metered proxy end to end on loopback: a client, the proxy, a fake
//! provider of our own (`fake_upstream`) and a recording `FakeMeter`.

mod fake_meter;

use std::sync::Arc;
use std::time::Duration;

use clawplane_models::{Catalog, Proxy, ProxySettings, UpstreamFailure, Usage};
use clawplane_testkit::fake_upstream::{
    cue, FakeUpstream, CACHED, COMPLETION, PIECES, PROMPT, UPSTREAM_KEY,
};
use fake_meter::{Event, FakeMeter, TOKEN};
use serde_json::{json, Value};

/// gpt-mini's cost of the fake's usage: 600 * 0.15 + 400 * 0.075 + 500 * 0.6 = 420 micro-USD.
const USAGE_COST: i64 = 420;

struct App {
    url: String,
    meter: Arc<FakeMeter>,
    upstream: FakeUpstream,
    client: reqwest::Client,
}

fn settings() -> ProxySettings {
    ProxySettings {
        first_byte_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(20),
        max_body_bytes: 64 * 1024,
        ..ProxySettings::default()
    }
}

async fn spawn_app() -> App {
    spawn_app_with(1_000_000, settings()).await
}

async fn spawn_app_with(balance: i64, settings: ProxySettings) -> App {
    let upstream = FakeUpstream::start().await;
    let text = format!(
        r#"
default = "gpt-mini"
[[providers]]
id = "fake"
base_url = "{}"
api_key_env = "FAKE_KEY"
[[providers.models]]
id = "gpt-mini"
upstream = "gpt-4o-mini"
input_per_million = 150000
output_per_million = 600000
cached_per_million = 75000
max_output_tokens = 16384
context_window = 128000
"#,
        upstream.base_url
    );
    let env = |name: &str| (name == "FAKE_KEY").then(|| UPSTREAM_KEY.to_string());
    let catalog = Catalog::parse(&text, "models.toml".as_ref(), &env).unwrap();
    let meter = Arc::new(FakeMeter::with_balance(balance));
    let proxy = Proxy::new(catalog, meter.clone(), settings).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = clawplane_models::router(Arc::new(proxy));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        url: format!("http://{addr}"),
        meter,
        upstream,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap(),
    }
}

fn chat(cue: &str, stream: bool) -> Value {
    json!({"model": "gpt-mini", "messages": [{"role": "user", "content": cue}], "stream": stream, "max_tokens": 1000})
}

impl App {
    async fn post(&self, token: Option<&str>, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/v1/chat/completions", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn chat(&self, cue: &str, stream: bool) -> reqwest::Response {
        self.post(Some(TOKEN), chat(cue, stream).to_string()).await
    }
}

/// Status, the headers' text and the body; the key appears in neither.
async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert!(response.headers().contains_key("x-request-id"));
    assert_no_key(&format!("{:?}", response.headers()));
    let text = response.text().await.unwrap();
    assert_no_key(&text);
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_no_key(text: &str) {
    assert!(
        !text.contains(UPSTREAM_KEY),
        "the upstream key reached the client: {text}"
    );
}

fn error_code(body: &Value) -> &str {
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["type"].is_string(), "{body}");
    body["error"]["code"].as_str().unwrap_or("")
}

fn the_usage() -> Usage {
    Usage {
        prompt_tokens: PROMPT,
        completion_tokens: COMPLETION,
        cached_tokens: CACHED,
    }
}

/// Reads the next chunk (at most 5 s).
async fn next_chunk(response: &mut reqwest::Response) -> Option<bytes::Bytes> {
    tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("a chunk within 5 s")
        .unwrap()
}

#[tokio::test]
async fn a_stream_arrives_chunk_by_chunk_and_is_billed_the_upstreams_usage() {
    let app = spawn_app().await;
    let mut response = app.chat(cue::GATED, true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_no_key(&format!("{:?}", response.headers()));
    let mut text = String::new();
    for i in 0..PIECES {
        // Piece i arrives before the fake is allowed to send piece i + 1.
        while !text.contains(&format!("piece-{i}")) {
            let chunk = next_chunk(&mut response).await.expect("the stream goes on");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert!(!text.contains(&format!("piece-{}", i + 1)));
        app.upstream.gate.add_permits(1);
    }
    for _ in 0..100 {
        match next_chunk(&mut response).await {
            Some(chunk) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
            None => break,
        }
    }
    assert_no_key(&text);
    assert!(
        text.contains("\"usage\"") && text.trim_end().ends_with("data: [DONE]"),
        "{text}"
    );

    let events = app.meter.finished(1).await;
    let [Event::Reserved {
        hold,
        model,
        amount,
        ..
    }, Event::Settled {
        hold: settled,
        usage,
        cost,
    }] = &events[..]
    else {
        panic!("{events:?}");
    };
    assert_eq!((model.as_str(), settled), ("gpt-mini", hold));
    assert_eq!(*usage, Some(the_usage()));
    assert_eq!(*cost, USAGE_COST);
    assert!(*amount >= USAGE_COST);
    assert_eq!(app.meter.balance(), 1_000_000 - USAGE_COST);

    let seen = app.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert_eq!(seen[0].body["model"], "gpt-4o-mini");
    assert_eq!(seen[0].body["stream_options"]["include_usage"], true);
    assert!(
        !seen[0].body.to_string().contains(TOKEN),
        "the model token stays with the proxy"
    );
}

#[tokio::test]
async fn a_whole_answer_is_relayed_and_billed_the_upstreams_usage() {
    let app = spawn_app().await;
    let (status, body) = read(app.chat("hi", false).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    assert_eq!(body["usage"]["prompt_tokens"], PROMPT);
    let events = app.meter.finished(1).await;
    assert!(
        matches!(&events[1], Event::Settled { usage: Some(u), cost: USAGE_COST, .. } if *u == the_usage()),
        "{events:?}"
    );
    assert_eq!(
        app.upstream.seen()[0].authorization.as_deref(),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
}

#[tokio::test]
async fn the_models_list_holds_the_catalogs_ids() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/v1/models", app.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["id"], "gpt-mini");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let response = app
        .client
        .get(format!("{}/v1/models", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_bad_or_missing_token_gets_401_and_nothing_is_held() {
    let app = spawn_app().await;
    for token in [None, Some("not-a-token")] {
        let (status, body) = read(app.post(token, chat("hi", false).to_string()).await).await;
        assert_eq!(status, 401);
        assert_eq!(error_code(&body), "invalid_api_key");
    }
    assert!(app.meter.events().is_empty());
    assert!(app.upstream.seen().is_empty());
}

#[tokio::test]
async fn bad_input_gets_its_4xx_in_openais_shape_and_nothing_is_held() {
    let app = spawn_app().await;
    let unknown = json!({"model": "gpt-huge", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = read(app.post(Some(TOKEN), unknown.to_string()).await).await;
    assert_eq!((status, error_code(&body)), (404, "model_not_found"));

    for malformed in [
        "{not json",
        r#"{"model":"gpt-mini","model":"gpt-mini","messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"gpt-mini"}"#,
    ] {
        let (status, body) = read(app.post(Some(TOKEN), malformed.to_string()).await).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "invalid_request"),
            "{malformed}"
        );
    }

    let huge = json!({"model": "gpt-mini", "messages": [{"role": "user", "content": "x".repeat(70 * 1024)}]});
    let (status, body) = read(app.post(Some(TOKEN), huge.to_string()).await).await;
    assert_eq!((status, error_code(&body)), (413, "request_too_large"));

    assert!(app.meter.events().is_empty());
    assert!(app.upstream.seen().is_empty());
}

#[tokio::test]
async fn without_credits_the_answer_is_402_and_the_upstream_is_never_called() {
    let app = spawn_app_with(100, settings()).await;
    let (status, body) = read(app.chat("hi", true).await).await;
    assert_eq!(status, 402);
    assert_eq!(error_code(&body), "insufficient_quota");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(
        body["error"]["message"],
        "Your credits have run out: top up on the Billing page."
    );
    assert!(app.upstream.seen().is_empty());
    assert!(app.meter.events().is_empty());
    assert_eq!(app.meter.balance(), 100);
}

#[tokio::test]
async fn upstream_failures_release_the_hold_and_bill_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            cue::TOO_MANY,
            false,
            429,
            "upstream_rate_limited",
            UpstreamFailure::RateLimited,
        ),
        (
            cue::SERVER_ERROR,
            true,
            502,
            "upstream_error",
            UpstreamFailure::ServerError,
        ),
        (
            cue::STALL,
            false,
            504,
            "upstream_timeout",
            UpstreamFailure::Timeout,
        ),
        (
            cue::STALL,
            true,
            504,
            "upstream_timeout",
            UpstreamFailure::Timeout,
        ),
        (
            cue::BAD_REQUEST,
            false,
            400,
            "upstream_refused",
            UpstreamFailure::Refused,
        ),
    ];
    for (n, (cue, stream, expected, code, failure)) in cases.into_iter().enumerate() {
        let response = app.chat(cue, stream).await;
        if expected == 429 {
            assert_eq!(response.headers()["retry-after"], "7");
        }
        let (status, body) = read(response).await;
        assert_eq!(
            (status, error_code(&body)),
            (expected, code),
            "{cue}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Nothing was billed"),
            "{body}"
        );
        let events = app.meter.finished(n + 1).await;
        assert!(
            matches!(events.last(), Some(Event::Released { .. })),
            "{cue}: {events:?}"
        );
        assert_eq!(app.meter.failures().last(), Some(&failure));
    }
    assert_eq!(app.meter.balance(), 1_000_000);
    assert!(!app
        .meter
        .events()
        .iter()
        .any(|e| matches!(e, Event::Settled { .. })));
}

#[tokio::test]
async fn a_stream_cut_before_its_usage_is_billed_the_hold_and_says_why() {
    let app = spawn_app().await;
    for cue in [cue::CUT, cue::STALL_MID] {
        let response = app.chat(cue, true).await;
        assert_eq!(response.status(), 200);
        let (_, body) = read(response).await;
        let text = body.as_str().unwrap().to_string();
        assert!(
            text.contains("piece-1") && text.contains("\"error\""),
            "{text}"
        );
    }
    let events = app.meter.finished(2).await;
    let held: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reserved { amount, .. } => Some(*amount),
            _ => None,
        })
        .collect();
    let billed: Vec<(Option<Usage>, i64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Settled { usage, cost, .. } => Some((*usage, *cost)),
            _ => None,
        })
        .collect();
    assert_eq!(billed, vec![(None, held[0]), (None, held[1])]);
}

#[tokio::test]
async fn an_answer_without_usage_is_billed_the_hold() {
    let app = spawn_app().await;
    let (status, _) = read(app.chat(cue::NO_USAGE, false).await).await;
    assert_eq!(status, 200);
    let events = app.meter.finished(1).await;
    let (
        Event::Reserved { amount, .. },
        Event::Settled {
            usage: None, cost, ..
        },
    ) = (&events[0], &events[1])
    else {
        panic!("{events:?}");
    };
    assert_eq!(cost, amount);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_is_billed_what_the_upstream_reported() {
    let app = spawn_app().await;
    let mut response = app.chat(cue::GATED, true).await;
    let first = next_chunk(&mut response).await.unwrap();
    assert!(std::str::from_utf8(&first).unwrap().contains("piece-0"));
    drop(response);
    // The rest of the stream, and its usage, come only after the client left.
    app.upstream.gate.add_permits(PIECES);
    let events = app.meter.finished(1).await;
    assert!(
        matches!(&events[1], Event::Settled { usage: Some(u), cost: USAGE_COST, .. } if *u == the_usage()),
        "{events:?}"
    );
}

#[tokio::test]
async fn requests_past_the_per_minute_limit_get_429() {
    let app = spawn_app_with(
        1_000_000,
        ProxySettings {
            requests_per_minute: 2,
            ..settings()
        },
    )
    .await;
    for _ in 0..2 {
        assert_eq!(read(app.chat("hi", false).await).await.0, 200);
    }
    let response = app.chat("hi", false).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = read(response).await;
    assert_eq!((status, error_code(&body)), (429, "rate_limit_exceeded"));
    assert_eq!(app.upstream.seen().len(), 2);
}
