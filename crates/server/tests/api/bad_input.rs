//! Bad input on every route that takes a body or an id: malformed JSON,
//! wrong shapes, wrong or missing content types and oversized bodies are a
//! 4xx envelope that changes nothing; unknown routes and methods answer in the
//! envelope; hostile user ids, request ids and token ids are never a 5xx nor
//! echoed whole; provider keys are validated and their values never returned.

use clawplane_store::Backend;
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use crate::control::{cget, cpost, err, instance_of, ok};
use crate::helpers::{envelope, send, spawn_app, TestApp, CONTROL_KEY, INTERNAL_KEY};

/// The routes that read a JSON body, by a short name.
fn route(name: &str) -> (&'static str, &'static str) {
    match name {
        "keys" => ("PUT", "/api/openclaw/provider-keys"),
        "restore" => ("POST", "/api/openclaw/runtime/restore"),
        "tokens" => ("POST", "/api/openclaw/tokens"),
        "instance" => ("POST", "/control/openclaw/instance"),
        "status" => ("POST", "/control/openclaw/instance/status"),
        "secret" => ("POST", "/control/openclaw/instance/secret"),
        "grant" => ("POST", "/control/openclaw/billing/grant"),
        "burn" => ("POST", "/control/openclaw/billing/burn"),
        "reverse" => ("POST", "/control/openclaw/billing/reverse"),
        _ => unreachable!("{name}"),
    }
}

const BODY_ROUTES: &str = "keys restore tokens instance status secret grant burn reverse";

/// A request to a body route with the right credentials for its surface, as "ana".
fn as_ana(app: &TestApp, name: &str) -> RequestBuilder {
    let (m, path) = route(name);
    match path.starts_with("/control") {
        true => app.control(m.parse().unwrap(), path),
        false => app.api(m.parse().unwrap(), path, "ana"),
    }
    .header("idempotency-key", "k")
}

/// What "nothing changed" means for ana.
async fn assert_ana_untouched(app: &TestApp) {
    assert!(instance_of(app, "ana").await.is_null());
    let tokens = ok(send(app.api(Method::GET, "/api/openclaw/tokens", "ana")).await);
    assert_eq!(tokens["tokens"], json!([]));
    let audit = ok(cget(app, "/control/openclaw/audit?user_id=ana").await);
    assert_eq!(audit["entries"], json!([]));
    let summary = ok(cget(app, "/control/openclaw/billing/summary?user_id=ana").await);
    assert_eq!(summary["balance_micro_usd"], 0);
}

/// The ways to send a bad body, and the status each gets (`None`: no more).
fn bad_body(r: RequestBuilder, case: usize) -> Option<(RequestBuilder, u16)> {
    let json =
        |r: RequestBuilder, body: String| r.header("content-type", "application/json").body(body);
    let huge = format!(r#"{{"name":"{}"}}"#, "a".repeat(1 << 20));
    Some(match case {
        0 => (json(r, "{not json".into()), 400),
        1 => (json(r, r#"{"user_id":"#.into()), 400),
        2 => (json(r, String::new()), 400),
        3 => (json(r, r#"{"user_id":"ana"} x"#.into()), 400),
        4 => (r.body(r#"{"user_id":"ana"}"#), 415),
        5 => (r.header("content-type", "text/plain").body("{}"), 415),
        6 => (r.form(&[("user_id", "ana")]), 415),
        7 => (json(r, huge), 413),
        8 => (r.json(&json!([1, 2])), 400),
        9 => (r.json(&json!("string")), 400),
        10 => (r.json(&json!(5)), 400),
        11 => (r.json(&json!(null)), 400),
        _ => return None,
    })
}

#[tokio::test]
async fn every_body_route_refuses_malformed_untyped_and_oversized_bodies() {
    let app = spawn_app(Backend::Sqlite).await;
    for name in BODY_ROUTES.split(' ') {
        for case in 0.. {
            let Some((request, status)) = bad_body(as_ana(&app, name), case) else {
                break;
            };
            let code = match status {
                413 => "payload_too_large",
                415 => "unsupported_media_type",
                _ => "bad_request",
            };
            let reply = send(request).await;
            assert!(
                reply.1.to_string().len() < 1000,
                "{name} {case}: a small reply"
            );
            assert_eq!(reply.0, status, "{name} case {case}: {}", reply.1);
            err(reply, status, code);
        }
    }
    assert_ana_untouched(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_shapes_are_a_400_never_a_422_and_create_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let ana = "ana";
    let cases = json!([
        ["keys", {}], ["keys", {"keys": []}], ["keys", {"keys": "OPENAI_API_KEY=sk"}],
        ["keys", {"keys": {"OPENAI_API_KEY": 5}}], ["keys", {"keys": {"OPENAI_API_KEY": null}}],
        ["keys", {"keys": {}, "extra": 1}], ["restore", {"backupId": 5}],
        ["restore", {"backupId": "../../etc/passwd"}], ["restore", {"backupId": ""}],
        ["restore", {"backupId": "x".repeat(129)}], ["restore", {"backup_id": "b1"}],
        ["tokens", {}], ["tokens", {"name": 5}], ["tokens", {"name": ["a"]}],
        ["tokens", {"name": "ok", "extra": true}], ["instance", {"user_id": 5}],
        ["instance", {"user_id": ana, "runtime_url": 5}],
        ["instance", {"user_id": ana, "runtime_url": "ftp://x"}],
        ["instance", {"user_id": ana, "runtime_url": "javascript:alert(1)"}],
        ["instance", {"user_id": ana, "runtime_name": "Bad_Name"}],
        ["instance", {"user_id": ana, "cf_account_id": "a\u{0}b"}],
        ["instance", {"user_id": ana, "r2_bucket_name": "x".repeat(2049)}],
        ["instance", {"user_id": ana, "cf_worker_name": "  "}], ["instance", {"user_id": "a\u{7}"}],
        ["status", {"user_id": ana, "status": 5}], ["status", {"user_id": ana, "status": "on"}],
        ["secret", {"user_id": ana, "name": 5, "value": "v"}],
        ["secret", {"user_id": ana, "name": "service_token"}],
        ["grant", {"user_id": ana, "amount_usd": [1]}], ["burn", {"user_id": ana, "amount_usd": {}}],
        ["reverse", {"user_id": ana, "entry_id": 1.5}]
    ]);
    for case in cases.as_array().unwrap() {
        let reply = send(as_ana(&app, case[0].as_str().unwrap()).json(&case[1])).await;
        assert!(!reply.1.to_string().contains("etc/passwd"), "{}", reply.1);
        assert_eq!(reply.0, 400, "{case}: {}", reply.1);
    }
    assert_ana_untouched(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_the_envelope() {
    let app = spawn_app(Backend::Sqlite).await;
    let unknown = "/api/openclaw/nope /api/openclaw/instance/extra /api/openclaw/runtime \
        /api/openclaw/runtime/devices/x/approve/more /api/openclaw/tokens/a/b /control/openclaw \
        /control/openclaw/nope /control/openclaw/instance/secret/x /api/openclaw/instance%2Fx";
    for path in unknown.split_whitespace() {
        let request = app.api(Method::GET, path, "ana");
        let reply = send(request.header("x-oa-control-key", CONTROL_KEY)).await;
        err(reply, 404, "not_found");
    }
    let wrong = "PATCH /api/openclaw/instance, PUT /api/openclaw/instance, \
        POST /api/openclaw/provider-keys, POST /api/openclaw/runtime/status, \
        GET /api/openclaw/runtime/backup, GET /api/openclaw/runtime/devices/x/approve, \
        PUT /api/openclaw/tokens, GET /api/openclaw/tokens/x, DELETE /control/openclaw/instance, \
        PUT /control/openclaw/instance/status, DELETE /control/openclaw/instance/secret, \
        POST /control/openclaw/audit, GET /control/openclaw/billing/grant, POST /api/openclaw";
    for route in wrong.split(", ") {
        let (m, path) = route.split_once(' ').unwrap();
        let request = app.api(m.parse().unwrap(), path, "ana");
        let reply = send(request.header("x-oa-control-key", CONTROL_KEY)).await;
        assert_eq!(reply.0, 405, "{route}");
        err(reply, 405, "method_not_allowed");
    }
    app.stop().await;
}

fn hostile() -> Vec<String> {
    let mut inputs = vec!["x".repeat(10 * 1024), "é".repeat(5 * 1024)];
    let short = "../../etc/passwd|..%2F..%2Fetc|ünïcødé-用户-🦀|%00|a%00b|\u{0}|\
        ana' OR '1'='1|'; DROP TABLE instances; --|1; SELECT * FROM api_tokens";
    inputs.extend(short.split('|').map(str::to_owned));
    inputs
}

/// Sends, requires the envelope and a 4xx (or a 200 where `ok_allowed`),
/// and that no long stretch of `input` comes back.
async fn hostile_reply(r: RequestBuilder, input: &str, ok_allowed: bool) -> (u16, Value) {
    let (status, b) = envelope(r.send().await.expect("sent")).await;
    let accepted = (400..500).contains(&status) || (ok_allowed && status == 200);
    let text = b.to_string();
    let stretch: String = input.chars().take(100).collect();
    assert!(accepted, "{status} {text}");
    let echoed = input.len() > 100 && text.contains(&stretch);
    assert!(!echoed, "input echoed");
    assert!(text.len() < 2000, "a {} byte reply", text.len());
    (status, b)
}

/// Every byte outside the unreserved set, percent-encoded.
fn encoded(s: &str) -> String {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-_.~".contains(&b);
    let byte = |b: u8| match keep(b) {
        true => (b as char).to_string(),
        false => format!("%{b:02X}"),
    };
    s.bytes().map(byte).collect()
}

#[tokio::test]
async fn hostile_ids_are_a_4xx_envelope_never_a_5xx_nor_echoed() {
    let app = spawn_app(Backend::Sqlite).await;
    ok(send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await);
    // Path segments (`%2e%2e` is left out: the client resolves it as `..`;
    // `%FF` has its own test below).
    let mut segments: Vec<(String, String)> =
        hostile().iter().map(|h| (encoded(h), h.clone())).collect();
    for raw in "..%2F.. %00 %C3%A9 '%20OR%20'1'='1 %25 a%2Fb".split(' ') {
        segments.push((raw.to_owned(), raw.to_owned()));
    }
    for (segment, input) in &segments {
        for action in ["approve", "reject"] {
            let path = format!("/api/openclaw/runtime/devices/{segment}/{action}");
            let reply = hostile_reply(app.api(Method::POST, &path, "ana"), input, false).await;
            err(reply, 400, "bad_request");
        }
        let path = format!("/api/openclaw/tokens/{segment}");
        let reply = hostile_reply(app.api(Method::DELETE, &path, "ana"), input, false).await;
        err(reply, 404, "not_found");
    }
    // The user id header (what HTTP can carry of each).
    for input in hostile() {
        let Ok(value) = HeaderValue::from_bytes(input.as_bytes()) else {
            continue;
        };
        for path in ["instance", "tokens", "billing/ledger"] {
            let url = format!("{}/api/openclaw/{path}", app.address);
            let r = app
                .client
                .get(url)
                .header("x-oa-internal-key", INTERNAL_KEY);
            let (status, b) =
                hostile_reply(r.header("x-oa-user-id", value.clone()), &input, true).await;
            let other = status == 200 && path.ends_with("instance") && !b["data"].is_null();
            assert!(!other, "{path} as a hostile user sees an instance: {b}");
        }
    }
    // The control surface's user id query.
    let mut queries: Vec<(String, String)> = hostile()
        .iter()
        .map(|h| (serde_urlencoded::to_string([("user_id", h)]), h.clone()))
        .map(|(q, h)| (q.unwrap(), h))
        .collect();
    for raw in
        "user_id=%FF user_id=% user_id=a%00b userId=%E2%80%AE user_id&user_id= =&&==".split(' ')
    {
        queries.push((raw.to_owned(), raw.to_owned()));
    }
    for (query, input) in &queries {
        for path in ["instance", "audit", "billing/summary"] {
            let url = format!("/control/openclaw/{path}?{query}");
            let (status, b) = hostile_reply(app.control(Method::GET, &url), input, true).await;
            let other = status == 200 && path == "instance" && !b["data"].is_null();
            assert!(!other, "{url} sees an instance: {b}");
        }
        let url = format!("/control/openclaw/instance/secret?name=service_token&{query}");
        hostile_reply(app.control(Method::GET, &url), input, false).await;
    }
    assert_eq!(instance_of(&app, "ana").await["user_id"], "ana");
    app.stop().await;
}

/// A path id that is not UTF-8 is answered in the envelope (not by axum's
/// own `text/plain` rejection).
#[tokio::test]
async fn a_path_id_that_is_not_utf8_is_answered_in_the_envelope() {
    let app = spawn_app(Backend::Sqlite).await;
    for (m, path) in [
        (Method::POST, "/api/openclaw/runtime/devices/%FF/approve"),
        (Method::POST, "/api/openclaw/runtime/devices/%FF/reject"),
        (Method::DELETE, "/api/openclaw/tokens/%FF"),
    ] {
        let (status, _) = send(app.api(m, path, "ana")).await;
        assert!((400..500).contains(&status), "{path}");
    }
    app.stop().await;
}

/// A user id header that is not ASCII (`josé`, a valid user id) is read as
/// UTF-8 by the API and wins over the query in the control lookup.
#[tokio::test]
async fn a_non_ascii_user_id_header_is_not_ignored() {
    let app = spawn_app(Backend::Sqlite).await;
    ok(cpost(
        &app,
        "/control/openclaw/instance",
        json!({"user_id": "josé"}),
    )
    .await);
    let jose = HeaderValue::from_bytes("josé".as_bytes()).unwrap();
    let as_jose = app
        .client
        .get(format!("{}/api/openclaw/instance", app.address));
    let as_jose = as_jose
        .header("x-oa-internal-key", INTERNAL_KEY)
        .header("x-oa-user-id", jose.clone());
    assert_eq!(ok(send(as_jose).await)["user_id"], "josé");
    let read = app.control(Method::GET, "/control/openclaw/instance?user_id=ana");
    let (status, b) = send(read.header("x-oa-user-id", jose)).await;
    let honoured = status == 400 || b["data"]["user_id"] == "josé";
    assert!(honoured, "the header names josé: {b}");
    app.stop().await;
}

#[tokio::test]
async fn provider_keys_are_validated_and_their_values_never_returned() {
    let app = spawn_app(Backend::Sqlite).await;
    let path = "/api/openclaw/provider-keys";
    let put = |keys: Value| {
        let body = json!({ "keys": keys });
        send(app.api(Method::PUT, path, "ana").json(&body))
    };
    err(put(json!({"A": "sk-x"})).await, 404, "not_found");
    ok(send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await);
    let good = json!({"OPENAI_API_KEY": "sk-do-not-echo-0", "ANTHROPIC_API_KEY": "sk-do-not-echo"});
    let names = json!(["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]);
    let stored = ok(put(good.clone()).await);
    assert_eq!(stored, json!({"names": names, "restarting": false}));
    let bad = json!([
        {"openai_api_key": "sk-never-1"}, {"1OPENAI": "sk-never-3"}, {"OPENAI-KEY": "sk-never-4"},
        {"_OPENAI": "sk-never-5"}, {"": "sk-never-6"}, {"GOOD_NAME": "sk-never-7", "bad name": "x"},
        {"GOOD_NAME": ""}, {"GOOD_NAME": "   "}, {"GOOD_NAME": "line\nbreak"}, {},
        {"GOOD_NAME": "x".repeat(4097)}, {"A".repeat(100): "sk-never-2"}
    ]);
    let mut bad = bad.as_array().unwrap().clone();
    let too_many = (0..33).map(|i| (format!("KEY_{i}"), json!("v")));
    bad.push(Value::Object(too_many.collect()));
    for keys in bad {
        let (status, b) = put(keys.clone()).await;
        assert!(!b.to_string().contains("sk-never"), "{b}");
        err((status, b), 400, "bad_request");
    }
    let listed = ok(send(app.api(Method::GET, path, "ana")).await);
    assert_eq!(listed, json!({ "names": names }), "unchanged");
    // The stored values are exactly the good ones (read through the one control read).
    let read = "/control/openclaw/instance/secret?user_id=ana&name=provider_keys";
    let secret = ok(cget(&app, read).await)["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(serde_json::from_str::<Value>(&secret).unwrap(), good);
    let replies = [
        send(app.api(Method::GET, path, "ana")).await,
        send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await,
        send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await,
        cget(&app, "/control/openclaw/instance?user_id=ana").await,
        cget(&app, "/control/openclaw/audit?user_id=ana").await,
        send(app.api(Method::DELETE, path, "ana")).await,
    ];
    for (_, reply) in replies {
        let text = reply.to_string();
        assert!(!text.contains("do-not-echo"), "a key's value in {text}");
    }
    let listed = ok(send(app.api(Method::GET, path, "ana")).await);
    assert_eq!(listed["names"], json!([]));
    app.stop().await;
}
