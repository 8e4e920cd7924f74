//! The console's chat page with the real binary, a real gateway and a fake
//! model provider on loopback (`clawplane_testkit::fake_openai`, configured
//! in the instance's `openclaw.json` as the gateway's default model, since
//! the real model APIs are out of reach): without provider keys the page
//! says how to add one; a message sent as `console.js` sends it streams the
//! fake's answer back piece by piece; the plain form renders the answer, in
//! the same conversation; the gateway token is in no answer and no log.
//! Everything stays on 127.0.0.1.

mod common;
#[path = "chat/console.rs"]
mod console;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clawplane_testkit::fake_openai::FakeOpenAi;
use common::api::Api;
use common::{Reaper, Server};
use console::{csrf, events, text_of, Visitor};
use reqwest::{Client, Method};

const INTERNAL_KEY: &str = "internal-key-for-chat-tests-0123456789ab";
const ENCRYPTION_KEY: &str = "5f4e3d2c1b0a99887766554433221100ffeeddccbbaa00112233445566778899";
const PIECES: &[&str] = &["The fake", " provider", " answers", " in", " pieces."];

#[tokio::test]
async fn a_message_in_the_console_streams_back_the_agents_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let _reaper = Reaper(data_dir.clone());
    // The gateway runs in a cell: the fake provider on the host's loopback
    // is reachable from it only as an allowed endpoint.
    let fake = FakeOpenAi::start(PIECES).await;
    let allow = fake
        .base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_owned();
    let server = Server::start(
        &data_dir,
        None,
        &[
            ("OA_INTERNAL_KEY", INTERNAL_KEY),
            ("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("CLAWPLANE_LOG", "debug,sqlx=warn,hyper=warn,reqwest=warn"),
            ("CLAWPLANE_CELL_ALLOW", &allow),
        ],
    );
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut ana = Visitor {
        server: &server,
        client: client.clone(),
        cookies: HashMap::new(),
    };
    let (_, page) = ana.get("/console/sign-up").await;
    let token = csrf(&page);
    let r = ana
        .post(
            "/console/sign-up",
            &[
                ("csrf", &token),
                ("email", "chat@example.com"),
                ("password", "a long enough password"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 303, "signed up");

    // No instance yet: the page says so and offers no form.
    let (status, page) = ana.get("/console/chat").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"chat-unavailable\"") && page.contains("href=\"/console/create\""),
        "{page}"
    );
    assert!(!page.contains("data-chat"), "no form without an instance");

    // The instance, created in the console, reached through the API as its user.
    let (_, account) = ana.get("/console/account").await;
    let user = text_of(&account, "user-id");
    let r = ana
        .post("/console/create", &[("csrf", &csrf(&account))], None)
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let api = Api {
        client: client.clone(),
        server: &server,
        user: &user,
        internal_key: INTERNAL_KEY,
    };
    let ready = api.wait_for("ready", Duration::from_secs(240)).await;
    let id = ready["id"].as_str().expect("an instance id").to_owned();

    // No model at all yet: the gateway's refusal is the same guidance.
    let (_, page) = ana.get("/console/chat").await;
    let token = csrf(&page);
    let r = ana
        .post(
            "/console/chat",
            &[("csrf", &token), ("message", "hello?")],
            Some("text/event-stream"),
        )
        .await;
    let body = r.text().await.unwrap_or_default();
    let refused = events(&body);
    assert_eq!(refused.len(), 1, "{body}");
    assert_eq!(refused[0].0, "error", "{body}");
    assert!(
        refused[0].1["message"]
            .as_str()
            .unwrap_or("")
            .contains("Model provider keys"),
        "{body}"
    );
    assert_eq!(
        refused[0].1["href"], "/console/account#provider-keys",
        "{body}"
    );

    // The fake becomes the gateway's model: the runtime keeps keys it does
    // not manage, and the gateway reads them when it starts again.
    let config = data_dir
        .join("instances")
        .join(&id)
        .join("openclaw/openclaw.json");
    fake.configure(&config).expect("openclaw.json configured");
    let (status, restarted) = api
        .call(Method::POST, "/api/openclaw/runtime/restart")
        .await;
    assert_eq!(status, 200, "{restarted}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, st) = api.call(Method::GET, "/api/openclaw/runtime/status").await;
        if st["data"]["gateway"]["state"] == "running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not run again: {st}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Without provider keys the page says how to add one, and still offers the form.
    let (_, page) = ana.get("/console/chat").await;
    assert!(page.contains("id=\"chat-no-key\""), "{page}");
    assert!(
        page.contains("Model provider keys") && page.contains("href=\"/console/account\""),
        "{page}"
    );
    assert!(
        page.contains("data-chat") && page.contains("name=\"message\""),
        "{page}"
    );
    let token = csrf(&page);

    // A message too long is refused with a sentence, before any gateway.
    let long = "x".repeat(17 * 1024);
    let r = ana
        .post(
            "/console/chat",
            &[("csrf", &token), ("message", &long)],
            Some("text/event-stream"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 413);
    let body = r.text().await.unwrap_or_default();
    assert_eq!(events(&body)[0].0, "error");
    assert!(body.contains("too long"), "{body}");

    // As console.js sends it: the answer streams back, piece by piece.
    let first = format!("first message {}", uuid::Uuid::new_v4().simple());
    let started = Instant::now();
    let mut r = ana
        .post(
            "/console/chat",
            &[("csrf", &token), ("message", &first)],
            Some("text/event-stream"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    let (mut stream, mut chunks) = (Vec::new(), 0);
    while let Some(chunk) = r.chunk().await.expect("the stream reads") {
        stream.extend_from_slice(&chunk);
        chunks += 1;
        assert!(
            chunks < 10_000 && started.elapsed() < Duration::from_secs(120),
            "an endless stream"
        );
    }
    let stream = String::from_utf8(stream).expect("UTF-8");
    let events = events(&stream);
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "delta")
        .filter_map(|(_, d)| d.as_str())
        .collect();
    assert_eq!(
        deltas.concat(),
        fake.answer(),
        "the fake's answer, in order: {stream}"
    );
    assert!(deltas.len() >= 2, "in several pieces: {stream}");
    assert!(chunks >= 2, "relayed as it came, not at once: {stream}");
    assert_eq!(
        events.last().map(|(n, _)| n.as_str()),
        Some("done"),
        "{stream}"
    );
    let asked = fake.requests();
    assert_eq!(asked.len(), 1, "one model call");
    assert_eq!(
        asked[0]["stream"], true,
        "the gateway streamed from the model"
    );
    assert!(
        asked[0].to_string().contains(&first),
        "the user's message reached the model"
    );

    // Without JavaScript: the page with the message and the answer, in the same conversation.
    let second = format!("second message {}", uuid::Uuid::new_v4().simple());
    let r = ana
        .post(
            "/console/chat",
            &[("csrf", &token), ("message", &second)],
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let page = r.text().await.unwrap_or_default();
    assert!(
        page.contains(&second) && page.contains(&fake.answer()),
        "{page}"
    );
    assert!(!page.contains("role=\"alert\""), "no problem shown: {page}");
    let asked = fake.requests();
    assert_eq!(asked.len(), 2);
    assert!(
        asked[1].to_string().contains(&second) && asked[1].to_string().contains(&first),
        "one conversation: the first message is history"
    );

    // The gateway token is in no answer and no log.
    let (_, secret) = api
        .control(&format!(
            "/control/openclaw/instance/secret?user_id={user}&name=gateway_token"
        ))
        .await;
    let gateway_token = secret["data"]["value"]
        .as_str()
        .expect("the gateway token")
        .to_owned();
    assert!(gateway_token.len() >= 32);
    for body in [&stream, &page] {
        assert!(
            !body.contains(&gateway_token),
            "the gateway token reached the browser"
        );
    }
    let log = server.stderr();
    assert!(
        log.contains("/console/chat"),
        "the serve log is the one of this run"
    );
    assert!(
        !log.contains(&gateway_token),
        "the gateway token is in the serve log"
    );
    let runtime_log = std::fs::read_to_string(
        data_dir
            .join("instances")
            .join(&id)
            .join("logs/runtime.log"),
    )
    .unwrap_or_default();
    assert!(
        !runtime_log.contains(&gateway_token),
        "the gateway token is in the runtime's log"
    );

    let (status, _) = api.call(Method::DELETE, "/api/openclaw/instance").await;
    assert_eq!(status, 200);
}
