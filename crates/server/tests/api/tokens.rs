//! Per-user API tokens over HTTP (shown once, listed by hint, authenticate
//! their owner whatever `X-OA-User-Id` says, dead once revoked, named within
//! bounds, scoped to their owner, limited in number), and the public
//! documents: `/metrics` and `/api/openapi.json`.

use clawplane_secrets::api_token_digest;
use clawplane_store::Backend;
use clawplane_testkit::{backend_tests, TestDb};
use reqwest::Method;
use serde_json::{json, Value};

use crate::auth::{new_token, API_ROUTES, CONTROL_ROUTES};
use crate::control::{err, ok};
use crate::helpers::{send, spawn_app, TestApp};

const TOKENS: &str = "/api/openclaw/tokens";
const INSTANCE: &str = "/api/openclaw/instance";

async fn with_bearer(app: &TestApp, m: Method, path: &str, token: &str) -> (u16, Value) {
    let url = format!("{}{path}", app.address);
    send(app.client.request(m, url).bearer_auth(token)).await
}

async fn create(app: &TestApp, user: &str, name: Value) -> (u16, Value) {
    send(
        app.api(Method::POST, TOKENS, user)
            .json(&json!({ "name": name })),
    )
    .await
}

async fn list(app: &TestApp, user: &str) -> Value {
    ok(send(app.api(Method::GET, TOKENS, user)).await)["tokens"].clone()
}

backend_tests!(tokens_are_shown_once_and_work_until_revoked, lifecycle);

/// Create, list, use (its owner wins), revoke (by another token, by itself).
async fn lifecycle(db: TestDb) {
    // spawn_app makes its own database, on the same backend.
    let backend = db.store.backend();
    drop(db);
    let app = spawn_app(backend).await;
    let instance = ok(send(app.api(Method::POST, INSTANCE, "ana")).await);
    let created = ok(create(&app, "ana", json!("  laptop ")).await);
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cpk_") && token.len() == 47, "{token}");
    assert_eq!(created.as_object().unwrap().len(), 2, "{created}");
    let record = created["api_token"].clone();
    assert_eq!(
        (&record["name"], &record["user_id"]),
        (&json!("laptop"), &json!("ana"))
    );
    assert_eq!(
        record["hint"],
        format!("cpk_…{}", &token[token.len() - 4..])
    );
    assert!(record["revoked_at"].is_null() && record["last_used_at"].is_null());
    // Neither the token, nor a part of it, nor its digest is ever listed.
    let secret_parts = [
        token[4..].to_owned(),
        token[10..30].to_owned(),
        api_token_digest(&token),
    ];
    let listed = list(&app, "ana").await;
    assert_eq!(listed, json!([record]));
    for text in [record.to_string(), listed.to_string()] {
        assert!(
            secret_parts.iter().all(|p| !text.contains(p.as_str())),
            "{text}"
        );
    }

    // The token's owner wins over any header; the key header is not needed.
    for (scheme, header_user) in [("Bearer", "bob"), ("bearer", "ana"), ("Bearer", "")] {
        let url = format!("{}{INSTANCE}", app.address);
        let r = app
            .client
            .get(url)
            .header("x-oa-internal-key", "not-the-key");
        let r = r.header("authorization", format!("{scheme} {token}"));
        let mine = ok(send(r.header("x-oa-user-id", header_user)).await);
        assert_eq!(
            (&mine["id"], &mine["user_id"]),
            (&instance["id"], &json!("ana"))
        );
    }
    let used = list(&app, "ana").await[0]["last_used_at"].clone();
    assert!(used.is_i64(), "its use is noted: {used}");

    // Bob sees none of it and cannot revoke it.
    assert_eq!(list(&app, "bob").await, json!([]));
    let id = record["id"].as_str().unwrap();
    let revoke = format!("{TOKENS}/{id}");
    err(
        send(app.api(Method::DELETE, &revoke, "bob")).await,
        404,
        "not_found",
    );
    ok(with_bearer(&app, Method::GET, INSTANCE, &token).await);

    // Another of ana's tokens revokes the first, which is dead at once.
    let (phone, phone_id) = new_token(&app, "ana", "phone").await;
    assert_ne!(phone, token);
    let names: Vec<Value> = list(&app, "ana")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, ["phone", "laptop"], "newest first");
    let revoked = ok(with_bearer(&app, Method::DELETE, &revoke, &phone).await);
    let revoked_at = revoked["api_token"]["revoked_at"]
        .as_i64()
        .expect("revoked_at");
    for path in [INSTANCE, TOKENS, "/api/openclaw/billing/summary"] {
        err(
            with_bearer(&app, Method::GET, path, &token).await,
            401,
            "unauthorized",
        );
    }
    let again = ok(send(app.api(Method::DELETE, &revoke, "ana")).await);
    assert_eq!(
        again["api_token"]["revoked_at"], revoked_at,
        "revoking twice changes nothing"
    );
    // A token can revoke itself.
    let path = format!("{TOKENS}/{phone_id}");
    ok(with_bearer(&app, Method::DELETE, &path, &phone).await);
    err(
        with_bearer(&app, Method::GET, TOKENS, &phone).await,
        401,
        "unauthorized",
    );
    let listed = list(&app, "ana").await;
    let all_revoked = listed
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["revoked_at"].is_i64());
    assert!(
        all_revoked && !listed.to_string().contains(&phone[4..]),
        "{listed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn token_names_are_bounded_and_tokens_are_limited_in_number() {
    let app = spawn_app(Backend::Sqlite).await;
    let bad = json!([
        "",
        "   ",
        "x".repeat(65),
        "a\nb",
        "tab\there",
        "é".repeat(65),
        5,
        null,
        ["a"]
    ]);
    for name in bad.as_array().unwrap() {
        err(create(&app, "ana", name.clone()).await, 400, "bad_request");
    }
    assert_eq!(list(&app, "ana").await, json!([]), "nothing created");
    for good in ["x".repeat(64), "é".repeat(64), "🦀 laptop".into()] {
        let created = ok(create(&app, "ana", json!(good)).await);
        assert_eq!(created["api_token"]["name"], good.as_str());
    }
    for i in 3..50 {
        ok(create(&app, "ana", json!(format!("t{i}"))).await);
    }
    let refused = create(&app, "ana", json!("one too many")).await;
    err(refused, 409, "too_many_tokens");
    ok(create(&app, "bob", json!("bob's first")).await);
    assert_eq!(
        list(&app, "bob").await.as_array().unwrap().len(),
        1,
        "the limit is per user"
    );
    app.stop().await;
}

/// The value of the sample line with exactly these labels, if any.
fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    let line = metrics.lines().find_map(|l| l.strip_prefix(&prefix));
    line.map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_instances_by_status() {
    let app = spawn_app(Backend::Sqlite).await;
    send(app.api(Method::GET, INSTANCE, "ana")).await;
    send(app.api(Method::POST, INSTANCE, "ana")).await;
    send(app.api(Method::GET, INSTANCE, "ana")).await;
    send(app.get(INSTANCE)).await;
    let device = "0d7f3c52-1111-4222-8333-444455556666";
    let approve = format!("/api/openclaw/runtime/devices/{device}/approve");
    send(app.api(Method::POST, &approve, "ana")).await;
    send(app.get("/api/openclaw/zzz-hostile-path-segment")).await;
    app.grant("ana", "1", "metrics-grant").await;

    let response = app.get("/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let requests = |labels: &str| sample(&text, "clawplane_http_requests_total", labels);
    let route = r#"route="/api/openclaw/instance""#;
    assert_eq!(
        requests(&format!(r#"method="GET",{route},status="200""#)),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        requests(&format!(r#"method="POST",{route},status="200""#)),
        Some(1.0)
    );
    assert_eq!(
        requests(&format!(r#"method="GET",{route},status="401""#)),
        Some(1.0)
    );
    assert!(text.contains(r#"route="/api/openclaw/runtime/devices/{requestId}/approve""#));
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(
        !text.contains(device) && !text.contains("zzz-hostile"),
        "raw paths are no labels"
    );
    let instances = |status: &str| {
        sample(
            &text,
            "clawplane_instances",
            &format!(r#"status="{status}""#),
        )
    };
    assert_eq!(instances("provisioning"), Some(1.0), "{text}");
    assert_eq!(instances("deleted"), Some(0.0));
    assert!(
        text.contains("clawplane_ledger_operations_total{"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_and_route_map_list_every_route() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/api/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "clawplane");
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(description.contains("X-OA-Internal-Key") && description.contains("x-oa-control-key"));
    let paths = doc["paths"].as_object().unwrap();
    let routes: Vec<_> = API_ROUTES.iter().chain(CONTROL_ROUTES).collect();
    for (m, path) in &routes {
        let documented = paths.get(*path).and_then(|p| p.get(m.to_lowercase()));
        assert!(
            documented.is_some(),
            "{m} {path} is not in {:?}",
            paths.keys()
        );
    }
    let methods = |p: &Value| {
        ["get", "post", "put", "delete"]
            .iter()
            .filter(|m| p.get(**m).is_some())
            .count()
    };
    let documented: usize = paths.values().map(methods).sum();
    assert_eq!(
        documented,
        routes.len(),
        "nothing undocumented, nothing extra"
    );

    // The route map at GET /api/openclaw: itself and every API route.
    let map = ok(send(app.get("/api/openclaw")).await);
    let mut listed: Vec<&str> = map["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut wanted: Vec<String> = API_ROUTES.iter().map(|(m, p)| format!("{m} {p}")).collect();
    wanted.push("GET /api/openclaw".into());
    listed.sort_unstable();
    wanted.sort_unstable();
    assert_eq!(listed, wanted);
    app.stop().await;
}
