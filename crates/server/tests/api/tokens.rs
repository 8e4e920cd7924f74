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
use crate::helpers::{send, spawn_app, TestApp};

const TOKENS: &str = "/api/openclaw/tokens";

async fn with_bearer(app: &TestApp, m: Method, path: &str, token: &str) -> (u16, Value) {
    send(
        app.client
            .request(m, format!("{}{path}", app.address))
            .bearer_auth(token),
    )
    .await
}

backend_tests!(
    tokens_are_shown_once_and_work_for_their_owner_until_revoked,
    |db: TestDb| async move {
        let backend = db.store.backend();
        drop(db);
        let app = spawn_app(backend).await;
        let (_, instance) = send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await;
        let (status, created) = send(
            app.api(Method::POST, TOKENS, "ana")
                .json(&json!({"name": "  laptop "})),
        )
        .await;
        assert_eq!(status, 200, "{created}");
        let token = created["data"]["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("cpk_") && token.len() == 47, "{token}");
        let record = created["data"]["api_token"].clone();
        assert_eq!(created["data"].as_object().unwrap().len(), 2, "{created}");
        assert_eq!(record["name"], "laptop");
        assert_eq!(record["user_id"], "ana");
        assert_eq!(
            record["hint"],
            format!("cpk_…{}", &token[token.len() - 4..])
        );
        assert!(record["revoked_at"].is_null() && record["last_used_at"].is_null());
        let digest = api_token_digest(&token);
        let secret_parts = [&token[4..], &token[10..30], &digest];
        assert!(
            secret_parts
                .iter()
                .all(|p| !record.to_string().contains(*p)),
            "{record}"
        );

        let (_, list) = send(app.api(Method::GET, TOKENS, "ana")).await;
        assert_eq!(list["data"]["tokens"], json!([record]));
        assert!(
            secret_parts.iter().all(|p| !list.to_string().contains(*p)),
            "{list}"
        );

        // The token's owner wins over any header; the key header is not needed.
        for (scheme, header_user) in [("Bearer", "bob"), ("bearer", "ana"), ("Bearer", "")] {
            let (status, mine) = send(
                app.client
                    .get(format!("{}/api/openclaw/instance", app.address))
                    .header("authorization", format!("{scheme} {token}"))
                    .header("x-oa-user-id", header_user)
                    .header("x-oa-internal-key", "not-the-key"),
            )
            .await;
            assert_eq!(status, 200, "{scheme} / {header_user}: {mine}");
            assert_eq!(mine["data"]["id"], instance["data"]["id"]);
            assert_eq!(mine["data"]["user_id"], "ana");
        }
        let (_, list) = with_bearer(&app, Method::GET, TOKENS, &token).await;
        assert!(
            list["data"]["tokens"][0]["last_used_at"].is_i64(),
            "use is noted: {list}"
        );

        // Bob sees none of it and cannot revoke it.
        let (_, bobs) = send(app.api(Method::GET, TOKENS, "bob")).await;
        assert_eq!(bobs["data"]["tokens"], json!([]));
        let id = record["id"].as_str().unwrap();
        let (status, _) = send(app.api(Method::DELETE, &format!("{TOKENS}/{id}"), "bob")).await;
        assert_eq!(status, 404);
        let (status, _) = with_bearer(&app, Method::GET, "/api/openclaw/instance", &token).await;
        assert_eq!(status, 200, "still alive after bob's attempt");

        // A second token of ana's revokes the first; the first is dead at once.
        let (phone, phone_id) = new_token(&app, "ana", "phone").await;
        assert_ne!(phone, token);
        let (_, list) = send(app.api(Method::GET, TOKENS, "ana")).await;
        let names: Vec<&str> = list["data"]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["phone", "laptop"], "newest first");
        let (status, revoked) =
            with_bearer(&app, Method::DELETE, &format!("{TOKENS}/{id}"), &phone).await;
        assert_eq!(status, 200, "{revoked}");
        let revoked_at = revoked["data"]["api_token"]["revoked_at"]
            .as_i64()
            .expect("revoked_at");
        for path in [
            "/api/openclaw/instance",
            TOKENS,
            "/api/openclaw/billing/summary",
        ] {
            let (status, b) = with_bearer(&app, Method::GET, path, &token).await;
            assert_eq!(
                (status, b["error"]["code"].as_str()),
                (401, Some("unauthorized")),
                "{path}"
            );
        }
        let (status, again) = send(app.api(Method::DELETE, &format!("{TOKENS}/{id}"), "ana")).await;
        assert_eq!(
            (status, again["data"]["api_token"]["revoked_at"].as_i64()),
            (200, Some(revoked_at))
        );
        // A token can revoke itself.
        let (status, _) = with_bearer(
            &app,
            Method::DELETE,
            &format!("{TOKENS}/{phone_id}"),
            &phone,
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = with_bearer(&app, Method::GET, TOKENS, &phone).await;
        assert_eq!(status, 401);
        let (_, list) = send(app.api(Method::GET, TOKENS, "ana")).await;
        let tokens = list["data"]["tokens"].as_array().unwrap();
        assert!(
            tokens.len() == 2 && tokens.iter().all(|t| t["revoked_at"].is_i64()),
            "{list}"
        );
        assert!(!list.to_string().contains(&phone[4..]) && !list.to_string().contains(&token[4..]));
        app.stop().await;
    }
);

#[tokio::test]
async fn token_names_are_bounded_and_tokens_are_limited_in_number() {
    let app = spawn_app(Backend::Sqlite).await;
    for bad in [
        json!(""),
        json!("   "),
        json!("x".repeat(65)),
        json!("a\nb"),
        json!("tab\there"),
        json!("é".repeat(65)),
    ] {
        let (status, b) = send(
            app.api(Method::POST, TOKENS, "ana")
                .json(&json!({"name": bad})),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {b}");
    }
    let (_, list) = send(app.api(Method::GET, TOKENS, "ana")).await;
    assert_eq!(list["data"]["tokens"], json!([]), "nothing created");
    for good in ["x".repeat(64), "é".repeat(64), "🦀 laptop".into()] {
        let (status, b) = send(
            app.api(Method::POST, TOKENS, "ana")
                .json(&json!({"name": good})),
        )
        .await;
        assert_eq!(
            (status, b["data"]["api_token"]["name"].as_str()),
            (200, Some(good.as_str()))
        );
    }
    for i in 3..50 {
        let (status, b) = send(
            app.api(Method::POST, TOKENS, "ana")
                .json(&json!({"name": format!("t{i}")})),
        )
        .await;
        assert_eq!(status, 200, "token {i}: {b}");
    }
    let (status, b) = send(
        app.api(Method::POST, TOKENS, "ana")
            .json(&json!({"name": "one too many"})),
    )
    .await;
    assert_eq!(
        (status, b["error"]["code"].as_str()),
        (409, Some("too_many_tokens"))
    );
    let (status, _) = send(
        app.api(Method::POST, TOKENS, "bob")
            .json(&json!({"name": "bob's first"})),
    )
    .await;
    assert_eq!(status, 200, "the limit is per user");
    app.stop().await;
}

/// The value of the sample line with exactly these labels, if any.
fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_instances_by_status() {
    let app = spawn_app(Backend::Sqlite).await;
    send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await;
    send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await;
    send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await;
    send(
        app.client
            .get(format!("{}/api/openclaw/instance", app.address)),
    )
    .await;
    let device = "0d7f3c52-1111-4222-8333-444455556666";
    let path = format!("/api/openclaw/runtime/devices/{device}/approve");
    send(app.api(Method::POST, &path, "ana")).await;
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
    let requests = "clawplane_http_requests_total";
    assert_eq!(
        sample(
            &text,
            requests,
            r#"method="GET",route="/api/openclaw/instance",status="200""#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            requests,
            r#"method="POST",route="/api/openclaw/instance",status="200""#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            requests,
            r#"method="GET",route="/api/openclaw/instance",status="401""#
        ),
        Some(1.0)
    );
    assert!(
        text.contains(r#"route="/api/openclaw/runtime/devices/{requestId}/approve""#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#));
    assert!(
        !text.contains(device) && !text.contains("zzz-hostile"),
        "raw paths never become labels"
    );
    assert_eq!(
        sample(&text, "clawplane_instances", r#"status="provisioning""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "clawplane_instances", r#"status="deleted""#),
        Some(0.0)
    );
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
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "clawplane");
    let paths = doc["paths"].as_object().unwrap();
    let template = |path: &str| -> String {
        let path = path.split('?').next().unwrap();
        let segments: Vec<&str> = path
            .split('/')
            .map(|s| {
                if s.len() == 36 && s.matches('-').count() == 4 {
                    "{id}"
                } else {
                    s
                }
            })
            .collect();
        let joined = segments.join("/");
        match joined.strip_prefix("/api/openclaw/runtime/devices/{id}") {
            Some(rest) => format!("/api/openclaw/runtime/devices/{{requestId}}{rest}"),
            None => joined,
        }
    };
    let mut expected: Vec<(String, String)> = Vec::new();
    for (m, path) in API_ROUTES.iter().chain(CONTROL_ROUTES) {
        expected.push((m.to_lowercase(), template(path)));
    }
    for (m, path) in &expected {
        assert!(
            paths.get(path).and_then(|p| p.get(m)).is_some(),
            "{m} {path} is not in the document: {:?}",
            paths.keys()
        );
    }
    let documented: usize = paths
        .values()
        .map(|p| {
            ["get", "post", "put", "delete"]
                .iter()
                .filter(|m| p.get(**m).is_some())
                .count()
        })
        .sum();
    assert_eq!(
        documented,
        expected.len(),
        "no undocumented extras, no missing ones"
    );

    let (status, map) = send(app.get("/api/openclaw")).await;
    assert_eq!(status, 200);
    let mut listed: Vec<String> = map["data"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let mut wanted: Vec<String> = expected
        .iter()
        .filter(|(_, p)| p.starts_with("/api/"))
        .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
        .chain(["GET /api/openclaw".to_owned()])
        .collect();
    listed.sort();
    wanted.sort();
    assert_eq!(listed, wanted);
    // The document is public and says how to authenticate.
    assert!(doc["info"]["description"]
        .as_str()
        .unwrap()
        .contains("X-OA-Internal-Key"));
    app.stop().await;
}
