//! Bad input on every route that takes a body or an id: malformed JSON,
//! wrong shapes, wrong or missing content types and oversized bodies are a
//! 4xx envelope that changes nothing; unknown routes and methods answer in the
//! envelope; hostile user ids, request ids and token ids are never a 5xx nor
//! echoed whole; provider keys are validated and their values never returned.

use clawplane_store::Backend;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use crate::helpers::{envelope, send, spawn_app, TestApp, CONTROL_KEY, INTERNAL_KEY};

const BODY_ROUTES: &[(&str, &str)] = &[
    ("PUT", "/api/openclaw/provider-keys"),
    ("POST", "/api/openclaw/runtime/restore"),
    ("POST", "/api/openclaw/tokens"),
    ("POST", "/control/openclaw/instance"),
    ("POST", "/control/openclaw/instance/status"),
    ("POST", "/control/openclaw/instance/secret"),
    ("POST", "/control/openclaw/billing/grant"),
    ("POST", "/control/openclaw/billing/burn"),
    ("POST", "/control/openclaw/billing/reverse"),
];

/// A request to `path` with the right credentials for its surface, as "ana".
fn authed(app: &TestApp, m: &str, path: &str) -> RequestBuilder {
    let m: Method = m.parse().unwrap();
    if path.starts_with("/control") {
        app.control(m, path).header("idempotency-key", "bad-input")
    } else {
        app.api(m, path, "ana")
    }
}

/// What "nothing changed" means for ana.
async fn assert_ana_untouched(app: &TestApp) {
    let (_, instance) =
        send(app.control(Method::GET, "/control/openclaw/instance?user_id=ana")).await;
    assert!(instance["data"].is_null(), "{instance}");
    let (_, tokens) = send(app.api(Method::GET, "/api/openclaw/tokens", "ana")).await;
    assert_eq!(tokens["data"]["tokens"], json!([]));
    let (_, audit) = send(app.control(Method::GET, "/control/openclaw/audit?user_id=ana")).await;
    assert_eq!(audit["data"]["entries"], json!([]));
    let (_, summary) =
        send(app.control(Method::GET, "/control/openclaw/billing/summary?user_id=ana")).await;
    assert_eq!(summary["data"]["balance_micro_usd"], 0);
}

#[tokio::test]
async fn every_body_route_refuses_malformed_untyped_and_oversized_bodies() {
    let app = spawn_app(Backend::Sqlite).await;
    let huge = format!(
        r#"{{"user_id":"ana","name":"{}"}}"#,
        "a".repeat(1024 * 1024)
    );
    for (m, path) in BODY_ROUTES {
        let r = || authed(&app, m, path);
        let json_body = |b: &str| {
            r().header("content-type", "application/json")
                .body(b.to_owned())
        };
        let cases: Vec<(&str, RequestBuilder, u16, &str)> = vec![
            ("malformed", json_body("{not json"), 400, "bad_request"),
            ("truncated", json_body(r#"{"user_id":"#), 400, "bad_request"),
            ("empty", json_body(""), 400, "bad_request"),
            (
                "trailing garbage",
                json_body(r#"{"user_id":"ana"} x"#),
                400,
                "bad_request",
            ),
            (
                "no content type",
                r().body(r#"{"user_id":"ana"}"#),
                415,
                "unsupported_media_type",
            ),
            (
                "text/plain",
                r().header("content-type", "text/plain").body("{}"),
                415,
                "unsupported_media_type",
            ),
            (
                "form",
                r().form(&[("user_id", "ana")]),
                415,
                "unsupported_media_type",
            ),
            ("over 1 MiB", json_body(&huge), 413, "payload_too_large"),
        ];
        for (what, request, expected, code) in cases {
            let (status, b) = send(request).await;
            assert_eq!(
                (status, b["error"]["code"].as_str()),
                (expected, Some(code)),
                "{m} {path}: {what}: {b}"
            );
            assert!(b.to_string().len() < 1000, "{what}: the reply stays small");
        }
        for top in [
            json!([1, 2]),
            json!("string"),
            json!(5),
            json!(null),
            json!(true),
        ] {
            let (status, b) = send(r().json(&top)).await;
            assert_eq!(status, 400, "{m} {path} with {top}: {b}");
        }
    }
    assert_ana_untouched(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_shapes_are_a_400_never_a_422_and_create_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let cases: Vec<(&str, &str, Value)> = vec![
        ("PUT", "/api/openclaw/provider-keys", json!({})),
        ("PUT", "/api/openclaw/provider-keys", json!({"keys": []})),
        (
            "PUT",
            "/api/openclaw/provider-keys",
            json!({"keys": "OPENAI_API_KEY=sk"}),
        ),
        (
            "PUT",
            "/api/openclaw/provider-keys",
            json!({"keys": {"OPENAI_API_KEY": 5}}),
        ),
        (
            "PUT",
            "/api/openclaw/provider-keys",
            json!({"keys": {"OPENAI_API_KEY": null}}),
        ),
        (
            "PUT",
            "/api/openclaw/provider-keys",
            json!({"keys": {}, "extra": 1}),
        ),
        (
            "POST",
            "/api/openclaw/runtime/restore",
            json!({"backupId": 5}),
        ),
        (
            "POST",
            "/api/openclaw/runtime/restore",
            json!({"backupId": "../../etc/passwd"}),
        ),
        (
            "POST",
            "/api/openclaw/runtime/restore",
            json!({"backupId": ""}),
        ),
        (
            "POST",
            "/api/openclaw/runtime/restore",
            json!({"backupId": "x".repeat(129)}),
        ),
        (
            "POST",
            "/api/openclaw/runtime/restore",
            json!({"backup_id": "b1"}),
        ),
        ("POST", "/api/openclaw/tokens", json!({})),
        ("POST", "/api/openclaw/tokens", json!({"name": 5})),
        ("POST", "/api/openclaw/tokens", json!({"name": ["a"]})),
        (
            "POST",
            "/api/openclaw/tokens",
            json!({"name": "ok", "extra": true}),
        ),
        ("POST", "/control/openclaw/instance", json!({"user_id": 5})),
        (
            "POST",
            "/control/openclaw/instance",
            json!({"user_id": "ana", "runtime_url": 5}),
        ),
        (
            "POST",
            "/control/openclaw/instance",
            json!({"user_id": "ana", "runtime_url": "ftp://x"}),
        ),
        (
            "POST",
            "/control/openclaw/instance",
            json!({"user_id": "ana", "runtime_url": "javascript:alert(1)"}),
        ),
        (
            "POST",
            "/control/openclaw/instance",
            json!({"user_id": "ana", "runtime_name": "Bad_Name"}),
        ),
        (
            "POST",
            "/control/openclaw/instance",
            json!({"user_id": "ana", "cf_account_id": "a\u{0}b"}),
        ),
        (
            "POST",
            "/control/openclaw/instance",
            json!({"user_id": "ana", "r2_bucket_name": "x".repeat(2049)}),
        ),
        (
            "POST",
            "/control/openclaw/instance",
            json!({"user_id": "ana", "cf_worker_name": "  "}),
        ),
        (
            "POST",
            "/control/openclaw/instance",
            json!({"user_id": "a\u{7}na"}),
        ),
        (
            "POST",
            "/control/openclaw/instance/status",
            json!({"user_id": "ana", "status": 5}),
        ),
        (
            "POST",
            "/control/openclaw/instance/status",
            json!({"user_id": "ana", "status": "running"}),
        ),
        (
            "POST",
            "/control/openclaw/instance/secret",
            json!({"user_id": "ana", "name": 5, "value": "v"}),
        ),
        (
            "POST",
            "/control/openclaw/instance/secret",
            json!({"user_id": "ana", "name": "service_token"}),
        ),
        (
            "POST",
            "/control/openclaw/billing/grant",
            json!({"user_id": "ana", "amount_usd": [1]}),
        ),
        (
            "POST",
            "/control/openclaw/billing/burn",
            json!({"user_id": "ana", "amount_usd": {}}),
        ),
        (
            "POST",
            "/control/openclaw/billing/reverse",
            json!({"user_id": "ana", "entry_id": 1.5}),
        ),
    ];
    for (m, path, body) in cases {
        let (status, b) = send(authed(&app, m, path).json(&body)).await;
        assert_eq!(status, 400, "{m} {path} {body}: {b}");
        assert!(!b.to_string().contains("etc/passwd"), "{b}");
    }
    assert_ana_untouched(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_the_envelope() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in [
        "/api/openclaw/nope",
        "/api/openclaw/instance/extra",
        "/api/openclaw/runtime",
        "/api/openclaw/runtime/devices/x/approve/more",
        "/api/openclaw/tokens/a/b",
        "/control/openclaw/nope",
        "/control/openclaw/instance/secret/service_token",
        "/control/openclaw",
        "/api/openclaw/instance%2Fextra",
    ] {
        let (status, b) = send(
            app.api(Method::GET, path, "ana")
                .header("x-oa-control-key", CONTROL_KEY),
        )
        .await;
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    for (m, path) in [
        ("PATCH", "/api/openclaw/instance"),
        ("PUT", "/api/openclaw/instance"),
        ("POST", "/api/openclaw/provider-keys"),
        ("POST", "/api/openclaw/runtime/status"),
        ("GET", "/api/openclaw/runtime/backup"),
        (
            "GET",
            "/api/openclaw/runtime/devices/6f1c1c3e-0000-4000-8000-000000000001/approve",
        ),
        ("PUT", "/api/openclaw/tokens"),
        (
            "GET",
            "/api/openclaw/tokens/6f1c1c3e-0000-4000-8000-000000000001",
        ),
        ("DELETE", "/control/openclaw/instance"),
        ("PUT", "/control/openclaw/instance/status"),
        ("DELETE", "/control/openclaw/instance/secret"),
        ("POST", "/control/openclaw/audit"),
        ("GET", "/control/openclaw/billing/grant"),
        ("POST", "/api/openclaw"),
    ] {
        let request = app
            .client
            .request(m.parse().unwrap(), format!("{}{path}", app.address));
        let (status, b) = send(
            request
                .header("x-oa-internal-key", INTERNAL_KEY)
                .header("x-oa-user-id", "ana"),
        )
        .await;
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (405, Some("method_not_allowed")),
            "{m} {path}"
        );
    }
    app.stop().await;
}

fn hostile() -> Vec<String> {
    vec![
        "../../etc/passwd".into(),
        "..%2F..%2Fetc".into(),
        "x".repeat(10 * 1024),
        "é".repeat(5 * 1024),
        "ünïcødé-用户-🦀".into(),
        "%00".into(),
        "a%00b".into(),
        "\u{0}".into(),
        "ana' OR '1'='1".into(),
        "'; DROP TABLE instances; --".into(),
        "1; SELECT * FROM api_tokens".into(),
    ]
}

/// Sends, requires the envelope and a 4xx (or a 200 where `ok_allowed`),
/// and that no long stretch of `input` comes back.
async fn hostile_reply(
    request: RequestBuilder,
    input: &str,
    ok_allowed: bool,
    what: &str,
) -> (u16, Value) {
    let (status, b) = envelope(request.send().await.expect("sent")).await;
    assert!(
        (400..500).contains(&status) || (ok_allowed && status == 200),
        "{what}: {status} {b}"
    );
    let text = b.to_string();
    if input.len() > 100 {
        let stretch: String = input.chars().take(100).collect();
        assert!(!text.contains(&stretch), "{what}: input echoed");
    }
    assert!(text.len() < 2000, "{what}: a {} byte reply", text.len());
    (status, b)
}

fn encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn hostile_ids_are_a_4xx_envelope_never_a_5xx_nor_echoed() {
    let app = spawn_app(Backend::Sqlite).await;
    send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await;
    // (`%2e%2e` is not here: the client resolves it as `..` before sending.)
    let raw_segments = [
        "..%2F..",
        "%00",
        "%FF",
        "%C3%A9",
        "'%20OR%20'1'='1",
        "%25",
        "a%2Fb",
    ];
    let mut segments: Vec<(String, String)> =
        hostile().iter().map(|h| (encoded(h), h.clone())).collect();
    segments.extend(raw_segments.iter().map(|s| (s.to_string(), s.to_string())));
    for (segment, input) in &segments {
        for action in ["approve", "reject"] {
            let path = format!("/api/openclaw/runtime/devices/{segment}/{action}");
            let (status, _) =
                hostile_reply(app.api(Method::POST, &path, "ana"), input, false, &path).await;
            assert_eq!(status, 400, "{path}");
        }
        let path = format!("/api/openclaw/tokens/{segment}");
        let (status, _) =
            hostile_reply(app.api(Method::DELETE, &path, "ana"), input, false, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    for input in hostile() {
        let what = format!(
            "user id header {}",
            input.chars().take(20).collect::<String>()
        );
        let Ok(value) = reqwest::header::HeaderValue::from_bytes(input.as_bytes()) else {
            continue;
        };
        for path in [
            "/api/openclaw/instance",
            "/api/openclaw/tokens",
            "/api/openclaw/billing/ledger",
        ] {
            let request = app
                .client
                .get(format!("{}{path}", app.address))
                .header("x-oa-internal-key", INTERNAL_KEY)
                .header("x-oa-user-id", value.clone());
            let (status, b) = hostile_reply(request, &input, true, &what).await;
            if status == 200 && path == "/api/openclaw/instance" {
                assert!(b["data"].is_null(), "{what} sees an instance: {b}");
            }
        }
    }
    let mut queries: Vec<(String, String)> = hostile()
        .iter()
        .map(|h| {
            (
                serde_urlencoded::to_string([("user_id", h)]).unwrap(),
                h.clone(),
            )
        })
        .collect();
    for raw in [
        "user_id=%FF",
        "user_id=%",
        "user_id=a%00b",
        "user_id=%2e%2e%2F",
        "userId=%E2%80%AE",
        "user_id&user_id=",
        "=&&==",
    ] {
        queries.push((raw.into(), raw.into()));
    }
    for (query, input) in &queries {
        for path in [
            "/control/openclaw/instance",
            "/control/openclaw/audit",
            "/control/openclaw/billing/summary",
        ] {
            let url = format!("{path}?{query}");
            let (status, b) =
                hostile_reply(app.control(Method::GET, &url), input, true, &url).await;
            if status == 200 && path == "/control/openclaw/instance" {
                assert!(b["data"].is_null(), "{url} sees an instance: {b}");
            }
        }
        let url = format!("/control/openclaw/instance/secret?name=service_token&{query}");
        hostile_reply(app.control(Method::GET, &url), input, false, &url).await;
    }
    // ana is still there, and only hers.
    let (_, b) = send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await;
    assert_eq!(b["data"]["user_id"], "ana");
    app.stop().await;
}

fn one(name: String, value: &str) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(name, json!(value));
    Value::Object(map)
}

#[tokio::test]
async fn provider_keys_are_validated_and_their_values_never_returned() {
    let app = spawn_app(Backend::Sqlite).await;
    let path = "/api/openclaw/provider-keys";
    let (status, _) = send(
        app.api(Method::PUT, path, "ana")
            .json(&json!({"keys": {"OPENAI_API_KEY": "sk-x"}})),
    )
    .await;
    assert_eq!(status, 404, "no instance yet");
    send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await;
    let value = "sk-live-do-not-echo-0123456789";
    let good =
        json!({"keys": {"OPENAI_API_KEY": value, "ANTHROPIC_API_KEY": "sk-ant-do-not-echo-99"}});
    let (status, b) = send(app.api(Method::PUT, path, "ana").json(&good)).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        b["data"]["names"],
        json!(["ANTHROPIC_API_KEY", "OPENAI_API_KEY"])
    );
    let too_many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("KEY_{i}"), json!("v"))).collect();
    let bad_keys = [
        json!({"openai_api_key": "sk-stored-never-1"}),
        one("A".repeat(100), "sk-stored-never-2"),
        json!({"1OPENAI": "sk-stored-never-3"}),
        json!({"OPENAI-KEY": "sk-stored-never-4"}),
        json!({"_OPENAI": "sk-stored-never-5"}),
        json!({"": "sk-stored-never-6"}),
        json!({"GOOD_NAME": "sk-stored-never-7", "bad name": "x"}),
        json!({"GOOD_NAME": ""}),
        json!({"GOOD_NAME": "   "}),
        json!({"GOOD_NAME": "line\nbreak"}),
        json!({"GOOD_NAME": "x".repeat(4097)}),
        json!({}),
        Value::Object(too_many),
    ];
    for keys in bad_keys {
        let (status, b) = send(
            app.api(Method::PUT, path, "ana")
                .json(&json!({"keys": keys})),
        )
        .await;
        assert_eq!(status, 400, "{keys}: {b}");
        assert!(!b.to_string().contains("sk-stored-never"), "{b}");
    }
    let (_, b) = send(app.api(Method::GET, path, "ana")).await;
    assert_eq!(
        b["data"],
        json!({"names": ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]}),
        "unchanged"
    );
    // The stored values are exactly the good ones (read through the one control read).
    let (_, secret) = send(app.control(
        Method::GET,
        "/control/openclaw/instance/secret?user_id=ana&name=provider_keys",
    ))
    .await;
    let stored: Value = serde_json::from_str(secret["data"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(stored, good["keys"]);
    let replies = [
        send(app.api(Method::GET, path, "ana")).await.1,
        send(app.api(Method::GET, "/api/openclaw/instance", "ana"))
            .await
            .1,
        send(app.api(Method::POST, "/api/openclaw/instance", "ana"))
            .await
            .1,
        send(app.control(Method::GET, "/control/openclaw/instance?user_id=ana"))
            .await
            .1,
        send(
            app.control(Method::POST, "/control/openclaw/instance")
                .json(&json!({"user_id": "ana"})),
        )
        .await
        .1,
        send(app.control(Method::GET, "/control/openclaw/audit?user_id=ana"))
            .await
            .1,
        send(app.api(Method::DELETE, path, "ana")).await.1,
    ];
    for reply in replies {
        let text = reply.to_string();
        assert!(
            !text.contains("do-not-echo"),
            "a provider key value in {text}"
        );
    }
    let (_, b) = send(app.api(Method::GET, path, "ana")).await;
    assert_eq!(b["data"]["names"], json!([]), "DELETE removed them");
    app.stop().await;
}
