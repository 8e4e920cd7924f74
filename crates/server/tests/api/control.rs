//! The control surface (`/control/openclaw/*`) end to end over HTTP: every
//! route answers, the user id is looked up in the seed's order, instances
//! never carry secret material, secrets are readable only through the control
//! read, every secret read and write is audited (never with its value),
//! refused writes leave no audit entry, statuses follow the transition table,
//! and an unset `OA_CONTROL_KEY` is a 500 that names it.

use std::time::{Duration, Instant};

use clawplane_server::ServerConfig;
use clawplane_store::Backend;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{send, spawn_app, spawn_app_with, TestApp, CONTROL_KEY, INTERNAL_KEY};

/// Provisioning against the unreachable runtime gives up quickly, so an
/// instance reaches `error` within a second.
pub(crate) fn fail_fast(c: &mut ServerConfig) {
    c.instances.provision_timeout = Duration::from_millis(500);
}

/// Waits (bounded in count and time) until the user's instance has `wanted` status.
pub(crate) async fn wait_for_status(app: &TestApp, user: &str, wanted: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    for _ in 0..200 {
        let path = format!("/control/openclaw/instance?user_id={user}");
        let (_, body) = send(app.control(Method::GET, &path)).await;
        if body["data"]["status"] == wanted {
            return body["data"].clone();
        }
        last = body;
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{user}'s instance never became {wanted}: {last}");
}

/// Keys that would name secret material anywhere in a JSON value.
pub(crate) fn secret_keys(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (k, inner) in map {
                    let k = k.to_lowercase();
                    if ["encrypted", "_iv", "_alg", "key_id", "token"]
                        .iter()
                        .any(|bad| k.contains(bad))
                    {
                        found.push(k);
                    }
                    stack.push(inner);
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    send(app.control(Method::POST, path).json(&body)).await
}

async fn audit(app: &TestApp, user: &str) -> Vec<Value> {
    let (status, body) = send(app.control(
        Method::GET,
        &format!("/control/openclaw/audit?user_id={user}"),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_control_route_answers_with_the_right_key() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    let (status, created) = post(
        &app,
        "/control/openclaw/instance",
        json!({"user_id": "ana"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["data"]["user_id"], "ana");
    assert_eq!(created["data"]["status"], "provisioning");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (_, read) = send(app.control(Method::GET, "/control/openclaw/instance?user_id=ana")).await;
    assert_eq!(read["data"]["id"], id.as_str());
    let (_, none) = send(app.control(Method::GET, "/control/openclaw/instance?user_id=bob")).await;
    assert!(none["data"].is_null(), "{none}");

    let errored = wait_for_status(&app, "ana", "error").await;
    assert_eq!(errored["id"], id.as_str(), "same instance, now in error");
    assert_eq!(errored["runtime_url"], "http://127.0.0.1:9");

    let value = "svc-0123456789abcdef-ZYX";
    let body = json!({"user_id": "ana", "name": "service_token", "value": value});
    let (status, stored) = post(&app, "/control/openclaw/instance/secret", body).await;
    assert_eq!(
        (status, &stored["data"]),
        (200, &json!({"name": "service_token", "stored": true}))
    );
    assert!(!stored.to_string().contains(value));
    let path = "/control/openclaw/instance/secret?user_id=ana&name=service_token";
    let (status, secret) = send(app.control(Method::GET, path)).await;
    assert_eq!(
        (status, secret["data"]["value"].as_str()),
        (200, Some(value))
    );
    assert_eq!(audit(&app, "ana").await.len(), 2);

    let body = json!({"user_id": "ana", "status": "error", "reason": "operator note"});
    let (status, b) = post(&app, "/control/openclaw/instance/status", body).await;
    assert_eq!(
        (status, b["data"]["status_reason"].as_str()),
        (200, Some("operator note"))
    );

    let (status, _) = app.grant("ana", "3", "g").await;
    assert_eq!(status, 200);
    let (status, burned) = app.burn("ana", "1", "b").await;
    assert_eq!(status, 200);
    let entry = burned["data"]["entry"]["id"].as_i64().unwrap();
    let (status, _) = send(
        app.control(Method::POST, "/control/openclaw/billing/reverse")
            .header("idempotency-key", "r")
            .json(&json!({"user_id": "ana", "entry_id": entry})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, summary) =
        send(app.control(Method::GET, "/control/openclaw/billing/summary?user_id=ana")).await;
    assert_eq!(status, 200);
    assert_eq!(summary["data"]["user_id"], "ana");
    app.stop().await;
}

#[tokio::test]
async fn the_user_id_lookup_order_is_honoured_end_to_end() {
    let app = spawn_app(Backend::Sqlite).await;
    let base = "/control/openclaw/instance";
    let cases: Vec<(Option<&str>, &str, Value, &str)> = vec![
        (
            Some("h1"),
            "?user_id=q1&userId=qc1",
            json!({"user_id": "b1"}),
            "h1",
        ),
        (Some("   "), "?user_id=q2", json!({"user_id": "b2"}), "q2"),
        (
            None,
            "?userId=qc3&user_id=q3",
            json!({"user_id": "b3"}),
            "q3",
        ),
        (None, "?userId=qc4", json!({"user_id": "b4"}), "qc4"),
        (
            None,
            "?user_id=",
            json!({"user_id": "b5", "userId": "bc5"}),
            "b5",
        ),
        (
            None,
            "",
            json!({"userId": "bc6", "subject": "s6", "user": "u6"}),
            "bc6",
        ),
        (
            None,
            "",
            json!({"user_id": "  ", "subject": "s7", "user": "u7"}),
            "s7",
        ),
        (None, "", json!({"subject": 7, "user": "u8"}), "u8"),
    ];
    for (header, query, body, expected) in &cases {
        let mut request = app
            .control(Method::POST, &format!("{base}{query}"))
            .json(body);
        if let Some(h) = header {
            request = request.header("x-oa-user-id", *h);
        }
        let (status, b) = send(request).await;
        assert_eq!(status, 200, "{expected}: {b}");
        assert_eq!(b["data"]["user_id"], *expected, "{b}");
        // The same instance is the user's on the API too.
        let (_, mine) = send(app.api(Method::GET, "/api/openclaw/instance", expected)).await;
        assert_eq!(mine["data"]["id"], b["data"]["id"]);
    }
    // The losers of each lookup got nothing.
    for loser in [
        "q1", "qc1", "b1", "b2", "qc3", "b3", "b4", "bc5", "s6", "u6", "u7",
    ] {
        let (_, b) = send(app.control(Method::GET, &format!("{base}?user_id={loser}"))).await;
        assert!(b["data"].is_null(), "{loser} got an instance: {b}");
    }
    // The header wins on reads too.
    let (_, b) = send(
        app.control(Method::GET, &format!("{base}?user_id=q2"))
            .header("x-oa-user-id", "h1"),
    )
    .await;
    assert_eq!(b["data"]["user_id"], "h1");
    let (status, b) = post(&app, base, json!({"name": "nobody"})).await;
    assert_eq!(
        (status, b["error"]["message"].as_str()),
        (400, Some("missing user id"))
    );
    app.stop().await;
}

#[tokio::test]
async fn instances_never_carry_secret_material_but_name_their_secrets() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    post(
        &app,
        "/control/openclaw/instance",
        json!({"user_id": "ana"}),
    )
    .await;
    wait_for_status(&app, "ana", "error").await;
    let values = [
        ("service_token", json!("service-token-value-0123456789")),
        ("gateway_token", json!("gateway-token-value-0123456789")),
        (
            "provider_keys",
            json!({"OPENAI_API_KEY": "sk-provider-value-0123456789"}),
        ),
    ];
    for (name, value) in &values {
        let body = json!({"user_id": "ana", "name": name, "value": value});
        let (status, b) = post(&app, "/control/openclaw/instance/secret", body).await;
        assert_eq!(status, 200, "{name}: {b}");
    }
    let (_, from_get) =
        send(app.control(Method::GET, "/control/openclaw/instance?user_id=ana")).await;
    let (_, from_post) = post(
        &app,
        "/control/openclaw/instance",
        json!({"user_id": "ana"}),
    )
    .await;
    let (_, from_api) = send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await;
    for reply in [&from_get, &from_post, &from_api] {
        assert_eq!(secret_keys(reply), Vec::<String>::new(), "{reply}");
        let text = reply.to_string();
        for needle in [
            "service-token-value",
            "gateway-token-value",
            "sk-provider-value",
            "aes-256",
        ] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
        let mut names: Vec<&str> = reply["data"]["secrets"]
            .as_array()
            .unwrap_or_else(|| panic!("no secrets list: {reply}"))
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["gateway_token", "provider_keys", "service_token"]);
    }
    app.stop().await;
}

#[tokio::test]
async fn secret_reads_and_writes_are_audited_by_name_never_by_value() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    post(
        &app,
        "/control/openclaw/instance",
        json!({"user_id": "ana"}),
    )
    .await;
    let instance = wait_for_status(&app, "ana", "error").await;
    let secrets = [
        ("service_token", json!("audit-service-0123456789abcdef")),
        ("gateway_token", json!("audit-gateway-0123456789abcdef")),
        (
            "provider_keys",
            json!({"ANTHROPIC_API_KEY": "sk-audit-provider-0123456789"}),
        ),
    ];
    let mut expected = Vec::new();
    for (name, value) in &secrets {
        let response = app
            .control(Method::POST, "/control/openclaw/instance/secret")
            .json(&json!({"user_id": "ana", "name": name, "value": value}))
            .send()
            .await
            .unwrap();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(response.status(), 200);
        expected.push(("secret.write", *name, request_id));
        let path = format!("/control/openclaw/instance/secret?user_id=ana&name={name}");
        let response = app.control(Method::GET, &path).send().await.unwrap();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        let plain = body["data"]["value"].as_str().unwrap();
        match value {
            Value::String(s) => assert_eq!(plain, s),
            object => assert_eq!(serde_json::from_str::<Value>(plain).unwrap(), *object),
        }
        expected.push(("secret.read", *name, request_id));
    }
    let entries = audit(&app, "ana").await;
    assert_eq!(entries.len(), expected.len(), "{entries:?}");
    // Newest first.
    for (entry, (action, name, request_id)) in entries.iter().rev().zip(&expected) {
        assert_eq!(entry["actor"], "control", "{entry}");
        assert_eq!(entry["action"], *action, "{entry}");
        assert_eq!(entry["subject"], *name, "{entry}");
        assert_eq!(entry["user_id"], "ana");
        assert_eq!(entry["instance_id"], instance["id"]);
        assert_eq!(entry["request_id"], request_id.as_str());
    }
    let text = serde_json::to_string(&entries).unwrap();
    for needle in [
        "audit-service",
        "audit-gateway",
        "sk-audit-provider",
        "ANTHROPIC",
    ] {
        assert!(!text.contains(needle), "{needle} in the audit log");
    }
    let (status, _) =
        send(app.control(Method::GET, "/control/openclaw/audit?user_id=ana&limit=0")).await;
    assert_eq!(status, 400);
    let (_, one) =
        send(app.control(Method::GET, "/control/openclaw/audit?user_id=ana&limit=1")).await;
    assert_eq!(one["data"]["entries"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn refused_secret_calls_are_400_and_leave_no_audit_entry() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    post(
        &app,
        "/control/openclaw/instance",
        json!({"user_id": "ana"}),
    )
    .await;
    wait_for_status(&app, "ana", "error").await;
    let refused = [
        json!({"user_id": "ana", "name": "password", "value": "0123456789abcdef0123"}),
        json!({"user_id": "ana", "name": "", "value": "0123456789abcdef0123"}),
        json!({"user_id": "ana", "name": 5, "value": "0123456789abcdef0123"}),
        json!({"user_id": "ana", "value": "0123456789abcdef0123"}),
        json!({"user_id": "ana", "name": "service_token", "value": "short"}),
        json!({"user_id": "ana", "name": "service_token", "value": "fifteen-chars-x"}),
        json!({"user_id": "ana", "name": "gateway_token", "value": "with space 0123456789"}),
        json!({"user_id": "ana", "name": "gateway_token", "value": "tab\t0123456789abcdef"}),
        json!({"user_id": "ana", "name": "gateway_token", "value": ""}),
        json!({"user_id": "ana", "name": "gateway_token", "value": 1234567890123456789_u64}),
        json!({"user_id": "ana", "name": "gateway_token", "value": "x".repeat(16 * 1024 + 1)}),
        json!({"user_id": "ana", "name": "gateway_token", "value": {"A": "b"}}),
        json!({"user_id": "ana", "name": "provider_keys", "value": "not json"}),
        json!({"user_id": "ana", "name": "provider_keys", "value": {"OPENAI_API_KEY": 5}}),
        json!({"user_id": "ana", "name": "provider_keys", "value": [1]}),
    ];
    for (i, body) in refused.iter().enumerate() {
        let (status, b) = post(&app, "/control/openclaw/instance/secret", body.clone()).await;
        assert_eq!(status, 400, "case {i}: {b}");
    }
    let (status, _) = send(app.control(
        Method::GET,
        "/control/openclaw/instance/secret?user_id=ana&name=password",
    ))
    .await;
    assert_eq!(status, 400);
    let (status, _) =
        send(app.control(Method::GET, "/control/openclaw/instance/secret?user_id=ana")).await;
    assert_eq!(status, 400);
    // No instance: 404, and nothing audited for that user either.
    let body = json!({"user_id": "bob", "name": "service_token", "value": "0123456789abcdef0123"});
    let (status, _) = post(&app, "/control/openclaw/instance/secret", body).await;
    assert_eq!(status, 404);
    assert_eq!(audit(&app, "ana").await, Vec::<Value>::new());
    assert_eq!(audit(&app, "bob").await, Vec::<Value>::new());
    // The secret that was there (generated at provisioning) is unchanged.
    let (_, instance) =
        send(app.control(Method::GET, "/control/openclaw/instance?user_id=ana")).await;
    assert!(!instance["data"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "provider_keys"));
    app.stop().await;
}

#[tokio::test]
async fn statuses_change_only_through_the_transition_table() {
    let app = spawn_app_with(Backend::Sqlite, fail_fast).await;
    let path = "/control/openclaw/instance/status";
    let (status, _) = post(&app, path, json!({"user_id": "ana", "status": "error"})).await;
    assert_eq!(status, 404, "no instance yet");
    post(
        &app,
        "/control/openclaw/instance",
        json!({"user_id": "ana"}),
    )
    .await;
    let first = wait_for_status(&app, "ana", "error").await;
    for to in ["ready", "stopped"] {
        let (status, b) = post(&app, path, json!({"user_id": "ana", "status": to})).await;
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (409, Some("invalid_transition")),
            "{to}"
        );
    }
    for bad in [
        json!({"user_id": "ana"}),
        json!({"user_id": "ana", "status": "running"}),
        json!({"user_id": "ana", "status": 3}),
        json!({"user_id": "ana", "status": "ready", "reason": 1}),
    ] {
        let (status, b) = post(&app, path, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {b}");
    }
    assert_eq!(
        wait_for_status(&app, "ana", "error").await["id"],
        first["id"]
    );
    // error -> provisioning drives it again (and it fails again).
    let (status, b) = post(
        &app,
        path,
        json!({"user_id": "ana", "status": " Provisioning "}),
    )
    .await;
    assert_eq!(
        (status, b["data"]["status"].as_str()),
        (200, Some("provisioning"))
    );
    let (status, _) = post(&app, path, json!({"user_id": "ana", "status": "stopped"})).await;
    assert_eq!(
        status, 409,
        "neither provisioning nor error may become stopped"
    );
    wait_for_status(&app, "ana", "error").await;
    // error -> deleted: the instance is deleted, its secrets erased.
    let (status, b) = post(&app, path, json!({"user_id": "ana", "status": "deleted"})).await;
    assert_eq!(
        (status, b["data"]["status"].as_str()),
        (200, Some("deleted")),
        "{b}"
    );
    assert_eq!(b["data"]["id"], first["id"]);
    assert_eq!(b["data"]["secrets"], json!([]));
    let (_, current) =
        send(app.control(Method::GET, "/control/openclaw/instance?user_id=ana")).await;
    assert_eq!(current["data"]["status"], "deleted");
    for to in ["ready", "deleted"] {
        let (status, _) = post(&app, path, json!({"user_id": "ana", "status": to})).await;
        assert_eq!(status, 404, "{to}: no live instance");
    }
    let (status, _) = send(app.control(
        Method::GET,
        "/control/openclaw/instance/secret?user_id=ana&name=gateway_token",
    ))
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn control_routes_without_a_control_key_answer_misconfigured() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.control_key = None).await;
    for (m, path) in crate::auth::CONTROL_ROUTES {
        let request = app
            .client
            .request(m.parse().unwrap(), format!("{}{path}", app.address))
            .header("x-oa-control-key", CONTROL_KEY)
            .header("idempotency-key", "k")
            .json(&crate::auth::control_body(path));
        let (status, b) = send(request).await;
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (500, Some("misconfigured")),
            "{m} {path}"
        );
        assert!(b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("OA_CONTROL_KEY"));
        assert!(!b.to_string().contains(CONTROL_KEY));
    }
    // The API is not affected.
    let (status, _) = send(
        app.client
            .get(format!("{}/api/openclaw/instance", app.address))
            .header("x-oa-internal-key", INTERNAL_KEY)
            .header("x-oa-user-id", "ana"),
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}
