//! The control surface (`/control/openclaw/*`) end to end over HTTP: every
//! route answers, the user id is looked up in the seed's order, instances
//! never carry secret material, secrets are readable only through the control
//! read, every secret read and write is audited (never with its value),
//! refused writes leave no audit entry, statuses follow the transition table,
//! and an unset `OA_CONTROL_KEY` refuses every key with 401.

use std::time::{Duration, Instant};

use clawplane_server::ServerConfig;
use clawplane_store::Backend;
use reqwest::Method;
use serde_json::{json, Value};

use crate::auth::{request, CONTROL_ROUTES};
use crate::helpers::{send, spawn_app, spawn_app_with, TestApp, CONTROL_KEY};

const INSTANCE: &str = "/control/openclaw/instance";
const STATUS: &str = "/control/openclaw/instance/status";
const SECRET: &str = "/control/openclaw/instance/secret";

/// Provisioning against the unreachable runtime gives up within a second.
pub(crate) fn fail_fast(c: &mut ServerConfig) {
    c.instances.provision_timeout = Duration::from_millis(500);
}

pub(crate) async fn cget(app: &TestApp, path: &str) -> (u16, Value) {
    send(app.control(Method::GET, path)).await
}

pub(crate) async fn cpost(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    send(app.control(Method::POST, path).json(&body)).await
}

/// Asserts a 200 and returns its `data`.
pub(crate) fn ok((status, body): (u16, Value)) -> Value {
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// Asserts an error reply's status and code.
pub(crate) fn err((status, body): (u16, Value), wanted: u16, code: &str) {
    let got = body["error"]["code"].as_str().unwrap_or("-");
    assert_eq!((status, got), (wanted, code), "{body}");
}

/// The user's instance as the control surface reads it (`null` without one).
pub(crate) async fn instance_of(app: &TestApp, user: &str) -> Value {
    ok(cget(app, &format!("{INSTANCE}?user_id={user}")).await)
}

/// Waits (bounded in count and time) until the user's instance has `wanted` status.
pub(crate) async fn wait_for_status(app: &TestApp, user: &str, wanted: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    for _ in 0..200 {
        last = instance_of(app, user).await;
        if last["status"] == wanted || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["status"], wanted, "{user}'s instance: {last}");
    last
}

/// A user whose instance has failed provisioning (so nothing else writes it).
async fn errored(app: &TestApp, user: &str) -> Value {
    ok(cpost(app, INSTANCE, json!({ "user_id": user })).await);
    wait_for_status(app, user, "error").await
}

/// Keys that would name secret material anywhere in a JSON value.
pub(crate) fn secret_keys(value: &Value) -> Vec<String> {
    let bad = |k: &String| {
        let k = k.to_lowercase();
        ["encrypted", "_iv", "_alg", "key_id", "token"]
            .iter()
            .any(|b| k.contains(b))
    };
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| bad(k).then(|| k.clone()).into_iter().chain(secret_keys(v)))
            .collect(),
        Value::Array(items) => items.iter().flat_map(secret_keys).collect(),
        _ => vec![],
    }
}

async fn audit(app: &TestApp, user: &str) -> Vec<Value> {
    let data = ok(cget(app, &format!("/control/openclaw/audit?user_id={user}")).await);
    data["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_control_route_answers_with_the_right_key() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    let created = ok(cpost(&app, INSTANCE, json!({"user_id": "ana"})).await);
    assert_eq!(created["user_id"], "ana");
    assert_eq!(created["status"], "provisioning");
    assert_eq!(instance_of(&app, "ana").await["id"], created["id"]);
    assert!(instance_of(&app, "bob").await.is_null());
    let failed = wait_for_status(&app, "ana", "error").await;
    assert_eq!(failed["id"], created["id"], "the same instance");
    assert_eq!(failed["runtime_url"], "http://127.0.0.1:9");
    let value = "svc-0123456789abcdef-ZYX";
    let body = json!({"user_id": "ana", "name": "service_token", "value": value});
    let stored = ok(cpost(&app, SECRET, body).await);
    assert_eq!(stored, json!({"name": "service_token", "stored": true}));
    let secret = ok(cget(&app, &format!("{SECRET}?user_id=ana&name=service_token")).await);
    assert_eq!(secret, json!({"name": "service_token", "value": value}));
    assert_eq!(audit(&app, "ana").await.len(), 2);
    let body = json!({"user_id": "ana", "status": "error", "reason": "operator note"});
    let changed = ok(cpost(&app, STATUS, body).await);
    assert_eq!(changed["status_reason"], "operator note");
    assert_eq!(app.grant("ana", "3", "g").await.0, 200);
    let entry = ok(app.burn("ana", "1", "b").await)["entry"]["id"].clone();
    let reverse = app.control(Method::POST, "/control/openclaw/billing/reverse");
    let body = json!({"user_id": "ana", "entry_id": entry});
    ok(send(reverse.header("idempotency-key", "r").json(&body)).await);
    let summary = ok(cget(&app, "/control/openclaw/billing/summary?user_id=ana").await);
    assert_eq!(summary["user_id"], "ana");
    app.stop().await;
}

/// Lookup cases, `header | query | body | expected user` (`-`: no header, `_`: blank).
const LOOKUPS: &[&str] = &[
    r#"h1 | ?user_id=q1&userId=qc1 | {"user_id":"b1"} | h1"#,
    r#"_ | ?user_id=q2 | {"user_id":"b2"} | q2"#,
    r#"- | ?userId=qc3&user_id=q3 | {"user_id":"b3"} | q3"#,
    r#"- | ?userId=qc4 | {"user_id":"b4"} | qc4"#,
    r#"- | ?user_id= | {"user_id":"b5","userId":"bc5"} | b5"#,
    r#"- | | {"userId":"bc6","subject":"s6","user":"u6"} | bc6"#,
    r#"- | | {"user_id":"  ","subject":"s7","user":"u7"} | s7"#,
    r#"- | | {"subject":7,"user":"u8"} | u8"#,
];

#[tokio::test]
async fn the_user_id_lookup_order_is_honoured_end_to_end() {
    let app = spawn_app(Backend::Sqlite).await;
    for case in LOOKUPS {
        let parts: Vec<&str> = case.split('|').map(str::trim).collect();
        let (header, query, expected) = (parts[0], parts[1], parts[3]);
        let body: Value = serde_json::from_str(parts[2]).unwrap();
        let mut request = app.control(Method::POST, &format!("{INSTANCE}{query}"));
        match header {
            "-" => {}
            "_" => request = request.header("x-oa-user-id", "   "),
            h => request = request.header("x-oa-user-id", h),
        }
        let created = ok(send(request.json(&body)).await);
        assert_eq!(created["user_id"], expected, "{case}");
        // The same instance is the user's on the API too.
        let mine = ok(send(app.api(Method::GET, "/api/openclaw/instance", expected)).await);
        assert_eq!(mine["id"], created["id"]);
    }
    for loser in "q1 qc1 b1 b2 qc3 b3 b4 bc5 s6 u6 u7".split(' ') {
        assert!(instance_of(&app, loser).await.is_null(), "{loser} got one");
    }
    let read = app.control(Method::GET, &format!("{INSTANCE}?user_id=q2"));
    let b = ok(send(read.header("x-oa-user-id", "h1")).await);
    assert_eq!(b["user_id"], "h1", "the header wins on reads too");
    let (status, b) = cpost(&app, INSTANCE, json!({"name": "nobody"})).await;
    let message = b["error"]["message"].as_str();
    assert_eq!((status, message), (400, Some("missing user id")));
    app.stop().await;
}

#[tokio::test]
async fn instances_never_carry_secret_material_but_name_their_secrets() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    errored(&app, "ana").await;
    let keys = json!({"OPENAI_API_KEY": "sk-provider-0123"});
    let values = [
        ("service_token", json!("service-token-value-0123456789")),
        ("gateway_token", json!("gateway-token-value-0123456789")),
        ("provider_keys", keys),
    ];
    for (name, value) in &values {
        let body = json!({"user_id": "ana", "name": name, "value": value});
        ok(cpost(&app, SECRET, body).await);
    }
    let replies = [
        instance_of(&app, "ana").await,
        ok(cpost(&app, INSTANCE, json!({"user_id": "ana"})).await),
        ok(send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await),
    ];
    for reply in &replies {
        assert_eq!(secret_keys(reply), Vec::<String>::new(), "{reply}");
        let text = reply.to_string();
        for needle in ["token-value", "sk-provider", "aes-256"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
        let mut names = reply["secrets"].as_array().expect("a secrets list").clone();
        names.sort_by_key(|n| n.to_string());
        let want = json!(["gateway_token", "provider_keys", "service_token"]);
        assert_eq!(json!(names), want);
    }
    app.stop().await;
}

#[tokio::test]
async fn secret_reads_and_writes_are_audited_by_name_never_by_value() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    let instance = errored(&app, "ana").await;
    let keys = json!({"ANTHROPIC_API_KEY": "sk-audit-0123"});
    let secrets = [
        ("service_token", json!("audit-service-0123456789abcdef")),
        ("gateway_token", json!("audit-gateway-0123456789abcdef")),
        ("provider_keys", keys),
    ];
    let request_id =
        |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut expected = Vec::new();
    for (name, value) in &secrets {
        let body = json!({"user_id": "ana", "name": name, "value": value});
        let written = app.control(Method::POST, SECRET).json(&body);
        let written = written.send().await.unwrap();
        assert_eq!(written.status(), 200);
        expected.push(("secret.write", *name, request_id(&written)));
        let path = format!("{SECRET}?user_id=ana&name={name}");
        let read = app.control(Method::GET, &path).send().await.unwrap();
        expected.push(("secret.read", *name, request_id(&read)));
        let body: Value = read.json().await.unwrap();
        let plain = body["data"]["value"].as_str().unwrap();
        match value {
            Value::String(s) => assert_eq!(plain, s),
            object => assert_eq!(serde_json::from_str::<Value>(plain).unwrap(), *object),
        }
    }
    let entries = audit(&app, "ana").await;
    assert_eq!(entries.len(), expected.len(), "{entries:?}");
    // Newest first, each tied to its request's id.
    for (entry, (action, name, request_id)) in entries.iter().rev().zip(&expected) {
        let want = json!({"actor": "control", "action": action, "subject": name,
            "user_id": "ana", "instance_id": instance["id"], "request_id": request_id});
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&entry[k], v, "{entry}");
        }
    }
    let text = serde_json::to_string(&entries).unwrap();
    for needle in ["audit-service", "audit-gateway", "sk-audit", "ANTHROPIC"] {
        assert!(!text.contains(needle), "{needle} in the audit log");
    }
    let path = "/control/openclaw/audit?user_id=ana&limit=";
    err(cget(&app, &format!("{path}0")).await, 400, "bad_request");
    let one = ok(cget(&app, &format!("{path}1")).await);
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn refused_secret_calls_are_400_and_leave_no_audit_entry() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    errored(&app, "ana").await;
    let long = "0123456789abcdef0123";
    let refused = json!([
        ["password", long], ["", long], [5, long], [null, long], ["secret", long],
        ["service_token", "short"], ["service_token", "fifteen-chars-x"], ["service_token", null],
        ["gateway_token", "with space 0123456789"], ["gateway_token", "tab\t0123456789abcdef"],
        ["gateway_token", ""], ["gateway_token", 1234567890123456789_u64], ["gateway_token", [1]],
        ["gateway_token", {"A": "b"}], ["gateway_token", "x".repeat(16 * 1024 + 1)],
        ["provider_keys", "not json"], ["provider_keys", {"OPENAI_API_KEY": 5}],
        ["provider_keys", [1]], ["provider_keys", 5], ["provider_keys", ""]
    ]);
    for case in refused.as_array().unwrap() {
        let body = json!({"user_id": "ana", "name": case[0], "value": case[1]});
        err(cpost(&app, SECRET, body).await, 400, "bad_request");
    }
    for query in ["name=password", "name=", "key=token"] {
        let path = format!("{SECRET}?user_id=ana&{query}");
        err(cget(&app, &path).await, 400, "bad_request");
    }
    // No instance: 404, and nothing audited for that user either.
    let body = json!({"user_id": "bob", "name": "service_token", "value": long});
    err(cpost(&app, SECRET, body).await, 404, "not_found");
    assert_eq!(audit(&app, "ana").await, Vec::<Value>::new());
    assert_eq!(audit(&app, "bob").await, Vec::<Value>::new());
    let secrets = instance_of(&app, "ana").await["secrets"].clone();
    assert!(!secrets
        .as_array()
        .unwrap()
        .contains(&json!("provider_keys")));
    app.stop().await;
}

/// Provider keys sent through the control secret write are validated before
/// the write is audited, so a refused write leaves no audit entry.
#[tokio::test]
async fn a_refused_provider_keys_write_leaves_no_audit_entry() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    errored(&app, "ana").await;
    let body = json!({"user_id": "ana", "name": "provider_keys", "value": {"lower": "v"}});
    err(cpost(&app, SECRET, body).await, 400, "bad_request");
    assert_eq!(audit(&app, "ana").await, Vec::<Value>::new());
    app.stop().await;
}

#[tokio::test]
async fn statuses_change_only_through_the_transition_table() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    let set = |status: &str| json!({"user_id": "ana", "status": status});
    err(cpost(&app, STATUS, set("error")).await, 404, "not_found");
    let first = errored(&app, "ana").await;
    for to in ["ready", "stopped", "READY"] {
        let reply = cpost(&app, STATUS, set(to)).await;
        err(reply, 409, "invalid_transition");
    }
    let bad = [
        json!({"user_id": "ana"}),
        json!({"user_id": "ana", "status": "running"}),
        json!({"user_id": "ana", "status": 3}),
        json!({"user_id": "ana", "status": "ready", "reason": 1}),
    ];
    for body in bad {
        err(cpost(&app, STATUS, body).await, 400, "bad_request");
    }
    let again = wait_for_status(&app, "ana", "error").await;
    assert_eq!(again["id"], first["id"]);
    // error -> provisioning drives it again (and it fails again).
    let b = ok(cpost(&app, STATUS, set(" Provisioning ")).await);
    assert_eq!(b["status"], "provisioning");
    // Neither provisioning nor error may become stopped.
    let reply = cpost(&app, STATUS, set("stopped")).await;
    err(reply, 409, "invalid_transition");
    wait_for_status(&app, "ana", "error").await;
    // error -> deleted: the instance is deleted and its secrets erased.
    let b = ok(cpost(&app, STATUS, set("deleted")).await);
    assert_eq!((&b["id"], &b["status"]), (&first["id"], &json!("deleted")));
    assert_eq!(b["secrets"], json!([]));
    assert_eq!(instance_of(&app, "ana").await["status"], "deleted");
    for to in ["ready", "deleted"] {
        err(cpost(&app, STATUS, set(to)).await, 404, "not_found");
    }
    let path = format!("{SECRET}?user_id=ana&name=gateway_token");
    err(cget(&app, &path).await, 404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn control_routes_without_a_control_key_refuse_every_key() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.control_key = None).await;
    for (m, path) in CONTROL_ROUTES {
        let request = request(&app, m, path).header("x-oa-control-key", CONTROL_KEY);
        let (status, b) = send(request).await;
        let message = b["error"]["message"].to_string();
        err((status, b), 401, "unauthorized");
        assert!(!message.contains(CONTROL_KEY));
    }
    let reply = send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await;
    assert!(ok(reply).is_null(), "the API is not affected");
    app.stop().await;
}
