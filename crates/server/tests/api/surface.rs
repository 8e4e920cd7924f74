//! The surface as a whole: auth on every route, bad input on every route,
//! unknown routes and methods, headers. Always the envelope, never a 5xx
//! (a missing server key included: the client gets 401).

use clawplane_store::Backend;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{envelope, send, spawn_app, spawn_app_with, CONTROL_KEY, INTERNAL_KEY};

const CONTROL_ROUTES: &[(&str, &str)] = &[
    ("GET", "/control/openclaw/billing/summary?user_id=ana"),
    ("POST", "/control/openclaw/billing/grant"),
    ("POST", "/control/openclaw/billing/burn"),
    ("POST", "/control/openclaw/billing/reverse"),
];

const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/openclaw/billing/summary"),
    ("GET", "/api/openclaw/billing/ledger"),
    ("GET", "/api/openclaw/billing/usage"),
];

fn method(m: &str) -> Method {
    m.parse().unwrap()
}

fn body() -> serde_json::Value {
    json!({"user_id": "ana", "amount_usd": "1", "entry_id": 1})
}

#[tokio::test]
async fn control_routes_refuse_missing_and_wrong_keys() {
    let app = spawn_app(Backend::Sqlite).await;
    app.grant("ana", "10", "seed").await;
    let wrong_keys = [
        "",
        "wrong",
        &CONTROL_KEY[..CONTROL_KEY.len() - 1],
        &format!("{CONTROL_KEY}x"),
        INTERNAL_KEY,
    ];
    for (m, path) in CONTROL_ROUTES {
        let url = format!("{}{path}", app.address);
        let (status, b) = send(
            app.client
                .request(method(m), &url)
                .header("idempotency-key", "k")
                .json(&body()),
        )
        .await;
        assert_eq!(status, 401, "{m} {path} without a key: {b}");
        for wrong in wrong_keys {
            let (status, _) = send(
                app.client
                    .request(method(m), &url)
                    .header("x-oa-control-key", wrong)
                    .header("idempotency-key", "k")
                    .json(&body()),
            )
            .await;
            assert_eq!(status, 401, "{m} {path} with a wrong key");
        }
    }
    let (_, summary) =
        send(app.control(Method::GET, "/control/openclaw/billing/summary?user_id=ana")).await;
    assert_eq!(
        summary["data"]["balance_micro_usd"], 10_000_000,
        "nothing was written"
    );
    app.stop().await;
}

#[tokio::test]
async fn api_routes_refuse_missing_and_wrong_keys_and_require_a_user() {
    let app = spawn_app(Backend::Sqlite).await;
    for (m, path) in API_ROUTES {
        let url = format!("{}{path}", app.address);
        let (status, _) = send(
            app.client
                .request(method(m), &url)
                .header("x-oa-user-id", "ana"),
        )
        .await;
        assert_eq!(status, 401, "{path}");
        let (status, _) = send(
            app.client
                .request(method(m), &url)
                .header("x-oa-internal-key", CONTROL_KEY)
                .header("x-oa-user-id", "ana"),
        )
        .await;
        assert_eq!(
            status, 401,
            "{path}: the control key is not the internal key"
        );
        let (status, b) = send(
            app.client
                .request(method(m), &url)
                .header("x-oa-internal-key", INTERNAL_KEY),
        )
        .await;
        assert_eq!(
            (status, b["error"]["message"].as_str()),
            (400, Some("missing user id")),
            "{path}"
        );
        for hostile in ["a\tb", &"x".repeat(300)] {
            let (status, _) = send(
                app.client
                    .request(method(m), &url)
                    .header("x-oa-internal-key", INTERNAL_KEY)
                    .header("x-oa-user-id", hostile),
            )
            .await;
            assert_eq!(status, 400, "{path} with a hostile user id");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn unset_server_keys_are_a_401_for_the_client() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.control_key = None;
        c.internal_key = None;
    })
    .await;
    let (status, b) =
        send(app.control(Method::GET, "/control/openclaw/billing/summary?user_id=a")).await;
    assert_eq!(status, 401);
    assert_eq!(b["error"]["code"], "unauthorized");
    let (status, b) = send(app.api(Method::GET, "/api/openclaw/billing/summary", "a")).await;
    assert_eq!(status, 401);
    assert_eq!(b["error"]["code"], "unauthorized");
    assert!(!b.to_string().contains("OA_INTERNAL_KEY"), "{b}");
    app.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_a_4xx_envelope_and_change_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in [
        "/control/openclaw/billing/grant",
        "/control/openclaw/billing/burn",
        "/control/openclaw/billing/reverse",
    ] {
        let post = || {
            app.control(Method::POST, path)
                .header("idempotency-key", "bad-input")
        };
        let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
            (
                post()
                    .header("content-type", "application/json")
                    .body("{not json"),
                400,
            ),
            (
                post().header("content-type", "application/json").body(""),
                400,
            ),
            (post().body(r#"{"user_id":"ana","amount_usd":1}"#), 415),
            (post().json(&json!([1, 2])), 400),
            (post().json(&json!("string")), 400),
            (
                post().json(&json!({"user_id": "ana", "amount_usd": true, "entry_id": "x"})),
                400,
            ),
            (
                post().json(&json!({"user_id": "ana", "amount_usd": "NaN", "entry_id": -1})),
                400,
            ),
            (
                post().json(&json!({"user_id": "ana", "amount_usd": "1e400"})),
                400,
            ),
            (
                post().json(&json!({"user_id": 7, "amount_usd": 1, "entry_id": 1})),
                400,
            ),
            (
                post().json(&json!({"user_id": "ana\u{0}", "amount_usd": 1, "entry_id": 1})),
                400,
            ),
            (
                post().json(&json!({"user_id": "ana", "amount_usd": 1, "source": 5})),
                400,
            ),
            (
                post().json(&json!({"user_id": "ana", "amount_usd": 1, "source": "DROP TABLE"})),
                400,
            ),
            (
                post().json(&json!({"user_id": "ana", "amount_usd": 1, "meta": [1]})),
                400,
            ),
            (
                post().json(&json!({"user_id": "ana", "amount_usd": 1.0000001})),
                400,
            ),
            (
                post()
                    .header("content-type", "application/json")
                    .body(vec![b' '; 1024 * 1024 + 10]),
                413,
            ),
        ];
        for (i, (request, expected)) in cases.into_iter().enumerate() {
            let (status, b) = send(request).await;
            if path.ends_with("reverse") && expected == 400 {
                assert!((400..500).contains(&status), "{path} case {i}: {b}");
            } else {
                assert_eq!(status, expected, "{path} case {i}: {b}");
            }
        }
    }
    let (status, _) = send(
        app.control(Method::POST, "/control/openclaw/billing/grant")
            .header("idempotency-key", "ключ")
            .json(&body()),
    )
    .await;
    assert_eq!(status, 400, "a non-ASCII idempotency key");
    let (_, verify) =
        send(app.control(Method::GET, "/control/openclaw/billing/summary?user_id=ana")).await;
    assert_eq!(
        verify["data"]["balance_micro_usd"], 0,
        "nothing was written"
    );
    app.stop().await;
}

#[tokio::test]
async fn errors_never_echo_secrets_from_the_body() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, b) = send(
        app.control(Method::POST, "/control/openclaw/billing/grant")
            .header("idempotency-key", "k")
            .header("content-type", "application/json")
            .body(r#"{"user_id":"ana","amount_usd":"sk-live-secret-value"}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert!(!b.to_string().contains("sk-live-secret-value"));
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in [
        "/nope",
        "/api/openclaw/nope",
        "/control/openclaw/../../etc/passwd",
        "/api/openclaw/billing/summary/extra",
        "/%00",
    ] {
        let (status, _) = envelope(app.get(path).send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}");
    }
    for (m, path) in [
        ("DELETE", "/healthz"),
        ("PUT", "/control/openclaw/billing/grant"),
        ("POST", "/api/openclaw/billing/summary"),
    ] {
        let (status, _) = send(
            app.client
                .request(method(m), format!("{}{path}", app.address)),
        )
        .await;
        assert_eq!(status, 405, "{m} {path}");
    }
    let (status, map) = send(app.get("/api/openclaw")).await;
    assert_eq!(status, 200);
    assert!(map["data"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "GET /api/openclaw/billing/summary"));
    app.stop().await;
}

#[tokio::test]
async fn authenticated_replies_are_not_cached_and_cors_allows_the_seeds_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    for request in [
        app.api(Method::GET, "/api/openclaw/billing/summary", "ana"),
        app.client
            .get(format!("{}/api/openclaw/billing/summary", app.address)),
        app.control(Method::GET, "/control/openclaw/billing/summary?user_id=ana"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(response.headers().contains_key("x-request-id"));
    }
    let preflight = app
        .client
        .request(
            Method::OPTIONS,
            format!("{}/api/openclaw/billing/summary", app.address),
        )
        .header("origin", "http://127.0.0.1:3000")
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "x-oa-internal-key,x-oa-user-id,x-openagents-service-token",
        )
        .send()
        .await
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for h in [
        "x-oa-internal-key",
        "x-oa-user-id",
        "x-openagents-service-token",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app(backend).await;
        let (status, b) = send(app.get("/healthz")).await;
        assert_eq!((status, b["data"]["status"].as_str()), (200, Some("live")));
        let (status, b) = send(app.get("/readyz")).await;
        assert_eq!(status, 200);
        assert_eq!(b["data"]["database"], backend.as_str());
        app.stop().await;
    }
}
