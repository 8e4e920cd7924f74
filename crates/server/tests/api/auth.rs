//! Authentication and isolation on every `/api/openclaw/*` and
//! `/control/openclaw/*` route: missing, wrong, unknown, foreign-scheme and
//! revoked credentials are refused (and change nothing), an unset
//! `OA_INTERNAL_KEY` is a 500 while API tokens keep working, authenticated
//! replies are `no-store`, one user never reaches another's data, and CORS
//! preflights allow the seed's headers.

use clawplane_secrets::{generate_api_token, EncryptionKey, ExposeSecret, KeyRing};
use clawplane_server::{Application, ServerConfig};
use clawplane_store::Backend;
use clawplane_testkit::{backend_tests, TestDb};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

use crate::helpers::{
    envelope, send, spawn_app, unreachable_runtime, TestApp, CONTROL_KEY, INTERNAL_KEY,
};

const SOME_UUID: &str = "6f1c1c3e-0000-4000-8000-000000000001";

/// Every authenticated API route (`GET /api/openclaw`, the public route map, is not one).
pub(crate) const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/openclaw/instance"),
    ("POST", "/api/openclaw/instance"),
    ("GET", "/api/openclaw/provider-keys"),
    ("PUT", "/api/openclaw/provider-keys"),
    ("GET", "/api/openclaw/runtime/status"),
    ("GET", "/api/openclaw/runtime/devices"),
    (
        "POST",
        "/api/openclaw/runtime/devices/6f1c1c3e-0000-4000-8000-000000000001/approve",
    ),
    (
        "POST",
        "/api/openclaw/runtime/devices/6f1c1c3e-0000-4000-8000-000000000001/reject",
    ),
    ("POST", "/api/openclaw/runtime/backup"),
    ("GET", "/api/openclaw/runtime/backups"),
    ("POST", "/api/openclaw/runtime/restore"),
    ("POST", "/api/openclaw/runtime/restart"),
    ("POST", "/api/openclaw/runtime/stop"),
    ("POST", "/api/openclaw/runtime/start"),
    ("GET", "/api/openclaw/billing/summary"),
    ("GET", "/api/openclaw/billing/ledger"),
    ("GET", "/api/openclaw/tokens"),
    ("POST", "/api/openclaw/tokens"),
    (
        "DELETE",
        "/api/openclaw/tokens/6f1c1c3e-0000-4000-8000-000000000001",
    ),
    ("DELETE", "/api/openclaw/provider-keys"),
    ("DELETE", "/api/openclaw/instance"),
];

/// Every control route, with the user in the query where it is a read.
pub(crate) const CONTROL_ROUTES: &[(&str, &str)] = &[
    ("GET", "/control/openclaw/instance?user_id=ana"),
    ("POST", "/control/openclaw/instance"),
    ("POST", "/control/openclaw/instance/status"),
    (
        "GET",
        "/control/openclaw/instance/secret?user_id=ana&name=gateway_token",
    ),
    ("POST", "/control/openclaw/instance/secret"),
    ("GET", "/control/openclaw/audit?user_id=ana"),
    ("GET", "/control/openclaw/billing/summary?user_id=ana"),
    ("POST", "/control/openclaw/billing/grant"),
    ("POST", "/control/openclaw/billing/burn"),
    ("POST", "/control/openclaw/billing/reverse"),
];

/// A valid body for a control route.
pub(crate) fn control_body(path: &str) -> Value {
    match path {
        p if p.ends_with("/status") => json!({"user_id": "ana", "status": "error"}),
        p if p.ends_with("/secret") => {
            json!({"user_id": "ana", "name": "gateway_token", "value": "gateway-0123456789abcdef"})
        }
        p if p.contains("/billing/") => json!({"user_id": "ana", "amount_usd": "1", "entry_id": 1}),
        _ => json!({"user_id": "ana"}),
    }
}

/// A valid body for an API route that reads one.
pub(crate) fn api_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("PUT", "/api/openclaw/provider-keys") => {
            Some(json!({"keys": {"OPENAI_API_KEY": "sk-test-0123"}}))
        }
        ("POST", "/api/openclaw/runtime/restore") => Some(json!({})),
        ("POST", "/api/openclaw/tokens") => Some(json!({"name": "matrix"})),
        _ => None,
    }
}

fn request(app: &TestApp, m: &str, path: &str) -> RequestBuilder {
    let builder = app
        .client
        .request(m.parse().unwrap(), format!("{}{path}", app.address));
    match api_body(m, path) {
        Some(body) => builder.json(&body),
        None if path.starts_with("/control") => builder
            .header("idempotency-key", "k")
            .json(&control_body(path)),
        None => builder,
    }
}

/// Sends, checks the envelope and `Cache-Control: no-store`.
pub(crate) async fn authed(request: RequestBuilder) -> (u16, Value) {
    let response: Response = request.send().await.expect("request sent");
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = envelope(response).await;
    assert_eq!(cache.as_deref(), Some("no-store"), "{status} {body}");
    (status, body)
}

/// Creates a token for `user` with the internal key; returns (token, id).
pub(crate) async fn new_token(app: &TestApp, user: &str, name: &str) -> (String, String) {
    let (status, b) = send(
        app.api(Method::POST, "/api/openclaw/tokens", user)
            .json(&json!({"name": name})),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let token = b["data"]["token"].as_str().unwrap().to_owned();
    (
        token,
        b["data"]["api_token"]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn api_routes_refuse_every_bad_credential_and_change_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let (revoked, revoked_id) = new_token(&app, "ana", "soon revoked").await;
    let path = format!("/api/openclaw/tokens/{revoked_id}");
    assert_eq!(send(app.api(Method::DELETE, &path, "ana")).await.0, 200);
    let unknown = format!("cpk_{}", "A".repeat(43));
    let wrong_keys = [
        "wrong",
        CONTROL_KEY,
        &INTERNAL_KEY[1..],
        &format!("{INTERNAL_KEY}x"),
        &INTERNAL_KEY.to_uppercase(),
    ];
    for (m, path) in API_ROUTES {
        let r = || request(&app, m, path);
        let with_key = || {
            r().header("x-oa-internal-key", INTERNAL_KEY)
                .header("x-oa-user-id", "ana")
        };
        let mut refusals: Vec<(&str, RequestBuilder)> = vec![
            ("nothing", r()),
            ("a user but no key", r().header("x-oa-user-id", "ana")),
            ("an unknown token", r().bearer_auth(&unknown)),
            (
                "an unknown token beside the key",
                with_key().bearer_auth(&unknown),
            ),
            ("basic auth", r().basic_auth("ana", Some(INTERNAL_KEY))),
            (
                "basic auth beside the key",
                with_key().basic_auth("ana", Some("pw")),
            ),
            ("a non-cpk bearer", r().bearer_auth(INTERNAL_KEY)),
            ("an empty bearer", r().header("authorization", "Bearer ")),
            ("a revoked token", r().bearer_auth(&revoked)),
            (
                "a revoked token beside the key",
                with_key().bearer_auth(&revoked),
            ),
            (
                "the control key header",
                r().header("x-oa-control-key", CONTROL_KEY)
                    .header("x-oa-user-id", "ana"),
            ),
        ];
        for wrong in wrong_keys {
            refusals.push((
                "a wrong key",
                r().header("x-oa-internal-key", wrong)
                    .header("x-oa-user-id", "ana"),
            ));
        }
        for (what, request) in refusals {
            let (status, b) = authed(request).await;
            assert_eq!(
                (status, b["error"]["code"].as_str()),
                (401, Some("unauthorized")),
                "{m} {path} with {what}"
            );
        }
        for user in [None, Some(""), Some("   ")] {
            let mut request = r().header("x-oa-internal-key", INTERNAL_KEY);
            if let Some(u) = user {
                request = request.header("x-oa-user-id", u);
            }
            let (status, b) = authed(request).await;
            assert_eq!(
                (status, b["error"]["message"].as_str()),
                (400, Some("missing user id")),
                "{m} {path}"
            );
        }
    }
    // Nothing was created, written or revoked by any refused call.
    let (_, instance) = send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await;
    assert!(instance["data"].is_null(), "{instance}");
    let (_, tokens) = send(app.api(Method::GET, "/api/openclaw/tokens", "ana")).await;
    assert_eq!(tokens["data"]["tokens"].as_array().unwrap().len(), 1);
    let (_, summary) = send(app.api(Method::GET, "/api/openclaw/billing/summary", "ana")).await;
    assert_eq!(summary["data"]["balance_micro_usd"], 0);

    // With good credentials every route is authenticated (and still no-store).
    let (token, _) = new_token(&app, "ana", "good").await;
    for good in ["key", "token"] {
        for (m, path) in API_ROUTES {
            let r = request(&app, m, path);
            let r = match good {
                "key" => r
                    .header("x-oa-internal-key", INTERNAL_KEY)
                    .header("x-oa-user-id", "ana"),
                _ => r.bearer_auth(&token),
            };
            let (status, b) = authed(r).await;
            assert!(
                ![400, 401, 500].contains(&status),
                "{m} {path} with a good {good}: {status} {b}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn control_routes_refuse_missing_and_wrong_keys_and_change_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let (token, _) = new_token(&app, "ana", "not for control").await;
    let wrong_keys = [
        "",
        "wrong",
        INTERNAL_KEY,
        &CONTROL_KEY[..10],
        &format!("{CONTROL_KEY}0"),
        &CONTROL_KEY.to_uppercase(),
    ];
    for (m, path) in CONTROL_ROUTES {
        let r = || request(&app, m, path);
        let (status, _) = authed(r()).await;
        assert_eq!(status, 401, "{m} {path} without a key");
        for wrong in wrong_keys {
            let (status, _) = authed(r().header("x-oa-control-key", wrong)).await;
            assert_eq!(status, 401, "{m} {path} with {wrong:?}");
        }
        let (status, _) = authed(r().bearer_auth(&token)).await;
        assert_eq!(status, 401, "{m} {path}: an API token is not a control key");
        let (status, _) = authed(
            r().header("x-oa-internal-key", INTERNAL_KEY)
                .header("x-oa-user-id", "ana"),
        )
        .await;
        assert_eq!(
            status, 401,
            "{m} {path}: the internal key is not a control key"
        );
    }
    let (_, instance) =
        send(app.control(Method::GET, "/control/openclaw/instance?user_id=ana")).await;
    assert!(instance["data"].is_null());
    let (_, audit) = send(app.control(Method::GET, "/control/openclaw/audit?user_id=ana")).await;
    assert_eq!(audit["data"]["entries"], json!([]));
    let (_, summary) =
        send(app.control(Method::GET, "/control/openclaw/billing/summary?user_id=ana")).await;
    assert_eq!(summary["data"]["balance_micro_usd"], 0);
    for (m, path) in CONTROL_ROUTES {
        let (status, b) =
            authed(request(&app, m, path).header("x-oa-control-key", CONTROL_KEY)).await;
        assert!(
            ![401, 500].contains(&status),
            "{m} {path} with the key: {b}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn without_an_internal_key_the_api_is_misconfigured_but_tokens_work() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (token, digest) = generate_api_token();
    let user = clawplane_domain::UserId::parse("ana").unwrap();
    let name = clawplane_domain::TokenName::parse("seeded").unwrap();
    db.store
        .create_api_token(&user, &name, &digest, "cpk_…seed")
        .await
        .unwrap();
    let config = ServerConfig {
        control_key: Some(CONTROL_KEY.to_owned().into()),
        internal_key: None,
        run_jobs: false,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(
        config,
        db.store.clone(),
        KeyRing::new(EncryptionKey::generate()),
        unreachable_runtime(),
        listener,
    );
    let address = format!("http://{}", app.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for (m, path) in API_ROUTES {
        let r = client.request(m.parse().unwrap(), format!("{address}{path}"));
        let (status, b) = authed(
            r.header("x-oa-internal-key", INTERNAL_KEY)
                .header("x-oa-user-id", "ana"),
        )
        .await;
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (500, Some("misconfigured")),
            "{m} {path}"
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("OA_INTERNAL_KEY"),
            "{b}"
        );
    }
    let bearer = |m: Method, path: &str| {
        client
            .request(m, format!("{address}{path}"))
            .bearer_auth(token.expose_secret())
    };
    let (status, b) = authed(bearer(Method::POST, "/api/openclaw/instance")).await;
    assert_eq!(
        (status, b["data"]["user_id"].as_str()),
        (200, Some("ana")),
        "{b}"
    );
    let (status, b) = authed(bearer(Method::GET, "/api/openclaw/tokens")).await;
    assert_eq!(status, 200);
    assert_eq!(b["data"]["tokens"][0]["name"], "seeded");
    assert!(
        b["data"]["tokens"][0]["last_used_at"].is_i64(),
        "use is noted: {b}"
    );
    let (status, b) = authed(bearer(Method::GET, "/api/openclaw/billing/summary")).await;
    assert_eq!((status, b["data"]["user_id"].as_str()), (200, Some("ana")));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Everything of `user-b` that `user-a` must never see.
fn assert_nothing_of_b(text: &str, b_secrets: &[&str], what: &str) {
    for needle in b_secrets {
        assert!(!text.contains(needle), "{what} shows {needle}: {text}");
    }
}

backend_tests!(
    one_user_never_reaches_anothers_data,
    |db: TestDb| async move {
        let backend = db.store.backend();
        drop(db);
        let app = spawn_app(backend).await;
        let (_, b_instance) = send(app.api(Method::POST, "/api/openclaw/instance", "user-b")).await;
        let b_id = b_instance["data"]["id"].as_str().unwrap().to_owned();
        let keys = json!({"keys": {"B_ONLY_KEY": "sk-b-only-value-0123"}});
        assert_eq!(
            send(
                app.api(Method::PUT, "/api/openclaw/provider-keys", "user-b")
                    .json(&keys)
            )
            .await
            .0,
            200
        );
        let (b_token, b_token_id) = new_token(&app, "user-b", "b-laptop").await;
        assert_eq!(app.grant("user-b", "7", "b-grant").await.0, 200);
        send(app.control(
            Method::GET,
            "/control/openclaw/instance/secret?user_id=user-b&name=gateway_token",
        ))
        .await;

        let (status, _) = send(app.api(Method::POST, "/api/openclaw/instance", "user-a")).await;
        assert_eq!(status, 200);
        let (a_token, _) = new_token(&app, "user-a", "a-laptop").await;
        let b_secrets = [
            b_id.as_str(),
            "user-b",
            "B_ONLY_KEY",
            "sk-b-only",
            b_token_id.as_str(),
            "b-laptop",
            &b_token,
        ];
        for creds in ["key", "token"] {
            let as_a = |m: &str, path: &str| {
                let r = request(&app, m, path);
                match creds {
                    "key" => r
                        .header("x-oa-internal-key", INTERNAL_KEY)
                        .header("x-oa-user-id", "user-a"),
                    // The token's user wins over a header naming B.
                    _ => r.bearer_auth(&a_token).header("x-oa-user-id", "user-b"),
                }
            };
            for (m, path) in API_ROUTES.iter().filter(|(m, _)| *m != "DELETE") {
                let (status, b) = authed(as_a(m, path)).await;
                assert_nothing_of_b(
                    &b.to_string(),
                    &b_secrets,
                    &format!("{m} {path} ({creds}, {status})"),
                );
            }
            let path = format!("/api/openclaw/tokens/{b_token_id}");
            let (status, b) = authed(as_a("DELETE", &path)).await;
            assert_eq!(status, 404, "A revokes B's token ({creds}): {b}");
        }
        let (_, b) = authed(app.api(Method::DELETE, "/api/openclaw/provider-keys", "user-a")).await;
        assert_eq!(b["data"]["names"], json!([]));
        let (status, b) = authed(app.api(Method::DELETE, "/api/openclaw/instance", "user-a")).await;
        assert_eq!(
            (status, b["data"]["instance"]["user_id"].as_str()),
            (200, Some("user-a"))
        );
        assert_ne!(b["data"]["instance"]["id"], b_id.as_str());

        // B is untouched: instance, keys, token, ledger.
        let (_, b) = send(app.api(Method::GET, "/api/openclaw/instance", "user-b")).await;
        assert_eq!(
            (b["data"]["id"].as_str(), b["data"]["status"].as_str()),
            (Some(b_id.as_str()), Some("provisioning"))
        );
        let (_, b) = send(app.api(Method::GET, "/api/openclaw/provider-keys", "user-b")).await;
        assert_eq!(b["data"]["names"], json!(["B_ONLY_KEY"]));
        let (status, b) = authed(
            app.client
                .get(format!("{}/api/openclaw/tokens", app.address))
                .bearer_auth(&b_token),
        )
        .await;
        assert_eq!(status, 200, "B's token still works");
        let listed = b["data"]["tokens"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{b}");
        assert_eq!(
            (listed[0]["id"].as_str(), listed[0]["revoked_at"].is_null()),
            (Some(b_token_id.as_str()), true)
        );
        let (_, ledger) =
            send(app.api(Method::GET, "/api/openclaw/billing/ledger", "user-b")).await;
        let entries = ledger["data"]["entries"].as_array().unwrap();
        assert!(
            entries.iter().all(|e| e["user_id"] == "user-b") && entries.len() == 2,
            "{ledger}"
        );
        let (_, ledger) =
            send(app.api(Method::GET, "/api/openclaw/billing/ledger", "user-a")).await;
        assert!(ledger["data"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user_id"] == "user-a"));

        // The control surface reads only the user it is given.
        let (_, a) =
            send(app.control(Method::GET, "/control/openclaw/instance?user_id=user-a")).await;
        assert_eq!(
            (a["data"]["user_id"].as_str(), a["data"]["status"].as_str()),
            (Some("user-a"), Some("deleted"))
        );
        let (_, audit) =
            send(app.control(Method::GET, "/control/openclaw/audit?user_id=user-a")).await;
        assert_eq!(audit["data"]["entries"], json!([]));
        let (_, audit) =
            send(app.control(Method::GET, "/control/openclaw/audit?user_id=user-b")).await;
        assert_eq!(audit["data"]["entries"].as_array().unwrap().len(), 1);
        let summary = |user: &'static str| {
            let app = &app;
            async move {
                let path = format!("/control/openclaw/billing/summary?user_id={user}");
                send(app.control(Method::GET, &path)).await.1["data"]["balance_micro_usd"]
                    .as_i64()
                    .unwrap()
            }
        };
        assert_eq!(summary("user-b").await - summary("user-a").await, 7_000_000);
        app.stop().await;
    }
);

#[tokio::test]
async fn cors_preflights_allow_the_seeds_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    for (m, path) in [
        ("PUT", "/api/openclaw/provider-keys"),
        ("DELETE", "/api/openclaw/instance"),
        ("GET", "/api/openclaw/runtime/status"),
    ] {
        let preflight = app
            .client
            .request(Method::OPTIONS, format!("{}{path}", app.address))
            .header("origin", "http://127.0.0.1:3000")
            .header("access-control-request-method", m)
            .header(
                "access-control-request-headers",
                "x-oa-internal-key,x-oa-user-id,x-openagents-service-token",
            )
            .send()
            .await
            .unwrap();
        assert!(
            preflight.status().is_success(),
            "{path}: {}",
            preflight.status()
        );
        let header = |name: &str| preflight.headers()[name].to_str().unwrap().to_lowercase();
        let allowed = header("access-control-allow-headers");
        for h in [
            "x-oa-internal-key",
            "x-oa-user-id",
            "x-openagents-service-token",
        ] {
            assert!(allowed.contains(h), "{path}: {allowed}");
        }
        assert!(
            header("access-control-allow-methods").contains(&m.to_lowercase()),
            "{path}"
        );
        assert_eq!(header("access-control-allow-origin"), "*");
    }
    app.stop().await;
}
