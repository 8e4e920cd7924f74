//! Authentication and isolation on every `/api/openclaw/*` and
//! `/control/openclaw/*` route: missing, wrong, unknown, foreign-scheme and
//! revoked credentials are refused (and change nothing), an unset
//! `OA_INTERNAL_KEY` refuses the internal key with 401 while API tokens keep working, authenticated
//! replies are `no-store`, one user never reaches another's data, and CORS
//! preflights allow the seed's headers.

use clawplane_domain::{TokenName, UserId};
use clawplane_secrets::{generate_api_token, EncryptionKey, ExposeSecret, KeyRing};
use clawplane_server::{Application, ServerConfig};
use clawplane_store::Backend;
use clawplane_testkit::{backend_tests, TestDb};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use crate::control::{cget, err, instance_of, ok};
use crate::helpers::{envelope, send, spawn_app, unreachable_runtime, TestApp};
use crate::helpers::{CONTROL_KEY, INTERNAL_KEY};

const INSTANCE: &str = "/api/openclaw/instance";
const SOME_UUID: &str = "6f1c1c3e-0000-4000-8000-000000000001";

/// Every authenticated API route, as in the OpenAPI document (deletions last).
/// `GET /api/openclaw`, the public route map, is not one.
pub(crate) const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/openclaw/instance"),
    ("POST", "/api/openclaw/instance"),
    ("GET", "/api/openclaw/provider-keys"),
    ("PUT", "/api/openclaw/provider-keys"),
    ("GET", "/api/openclaw/runtime/status"),
    ("GET", "/api/openclaw/runtime/devices"),
    ("POST", "/api/openclaw/runtime/devices/{requestId}/approve"),
    ("POST", "/api/openclaw/runtime/devices/{requestId}/reject"),
    ("POST", "/api/openclaw/runtime/backup"),
    ("GET", "/api/openclaw/runtime/backups"),
    ("POST", "/api/openclaw/runtime/restore"),
    ("POST", "/api/openclaw/runtime/restart"),
    ("POST", "/api/openclaw/runtime/stop"),
    ("POST", "/api/openclaw/runtime/start"),
    ("GET", "/api/openclaw/billing/summary"),
    ("GET", "/api/openclaw/billing/ledger"),
    ("GET", "/api/openclaw/billing/usage"),
    ("GET", "/api/openclaw/tokens"),
    ("POST", "/api/openclaw/tokens"),
    ("DELETE", "/api/openclaw/tokens/{id}"),
    ("DELETE", "/api/openclaw/provider-keys"),
    ("DELETE", "/api/openclaw/instance"),
];

/// Every control route, as in the OpenAPI document.
pub(crate) const CONTROL_ROUTES: &[(&str, &str)] = &[
    ("GET", "/control/openclaw/instance"),
    ("POST", "/control/openclaw/instance"),
    ("POST", "/control/openclaw/instance/status"),
    ("GET", "/control/openclaw/instance/secret"),
    ("POST", "/control/openclaw/instance/secret"),
    ("GET", "/control/openclaw/audit"),
    ("GET", "/control/openclaw/billing/summary"),
    ("POST", "/control/openclaw/billing/grant"),
    ("POST", "/control/openclaw/billing/burn"),
    ("POST", "/control/openclaw/billing/reverse"),
];

/// A valid body for a route that reads one, as "ana".
fn body(m: &str, path: &str) -> Option<Value> {
    Some(match (m, path.rsplit('/').next().unwrap()) {
        ("GET" | "DELETE", _) => return None,
        ("PUT", "provider-keys") => json!({"keys": {"OPENAI_API_KEY": "sk-test-0123"}}),
        (_, "restore") => json!({}),
        (_, "tokens") => json!({"name": "matrix"}),
        (_, "status") => json!({"user_id": "ana", "status": "error"}),
        (_, "secret") => json!({"user_id": "ana", "name": "gateway_token", "value": SOME_UUID}),
        (_, "grant" | "burn" | "reverse") => json!({"user_id": "ana", "amount_usd": "1"}),
        (_, "instance") if path.starts_with("/control") => json!({"user_id": "ana"}),
        _ => return None,
    })
}

/// A request to a route template (ids filled in, control reads as "ana"),
/// with its body and without credentials.
pub(crate) fn request(app: &TestApp, m: &str, template: &str) -> RequestBuilder {
    let path = template.replace("{requestId}", SOME_UUID);
    let mut path = path.replace("{id}", SOME_UUID);
    if m == "GET" && path.starts_with("/control") {
        path.push_str("?user_id=ana&name=gateway_token");
    }
    let url = format!("{}{path}", app.address);
    let r = app.client.request(m.parse().unwrap(), url);
    let r = r.header("idempotency-key", "k");
    match body(m, template) {
        Some(b) => r.json(&b),
        None => r,
    }
}

/// Internal-key credentials.
fn with(r: RequestBuilder, key: &str, user: &str) -> RequestBuilder {
    r.header("x-oa-internal-key", key)
        .header("x-oa-user-id", user)
}

/// Sends, checks the envelope and `Cache-Control: no-store`.
pub(crate) async fn authed(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request sent");
    let cache = response.headers().get("cache-control").cloned();
    let (status, body) = envelope(response).await;
    assert_eq!(cache.unwrap(), "no-store", "{status} {body}");
    (status, body)
}

/// Creates a token for `user` with the internal key; returns (token, id).
pub(crate) async fn new_token(app: &TestApp, user: &str, name: &str) -> (String, String) {
    let create = app.api(Method::POST, "/api/openclaw/tokens", user);
    let data = ok(send(create.json(&json!({ "name": name }))).await);
    let id = data["api_token"]["id"].as_str().unwrap().to_owned();
    (data["token"].as_str().unwrap().to_owned(), id)
}

/// The ways to get API credentials wrong, each a 401.
fn wrong(r: impl Fn() -> RequestBuilder, revoked: &str) -> Vec<RequestBuilder> {
    let unknown = format!("cpk_{}", "A".repeat(43));
    vec![
        r(),
        r().header("x-oa-user-id", "ana"),
        r().bearer_auth(&unknown),
        with(r(), INTERNAL_KEY, "ana").bearer_auth(&unknown),
        r().basic_auth("ana", Some(INTERNAL_KEY)),
        with(r(), INTERNAL_KEY, "ana").basic_auth("ana", Some("pw")),
        r().bearer_auth(INTERNAL_KEY),
        r().header("authorization", "Bearer "),
        r().bearer_auth(revoked),
        with(r(), INTERNAL_KEY, "ana").bearer_auth(revoked),
        with(r(), CONTROL_KEY, "ana"),
        with(r(), "wrong", "ana"),
        with(r(), &INTERNAL_KEY[1..], "ana"),
        with(r(), &format!("{INTERNAL_KEY}x"), "ana"),
        with(r(), &INTERNAL_KEY.to_uppercase(), "ana"),
    ]
}

#[tokio::test]
async fn api_routes_refuse_every_bad_credential_and_change_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let (revoked, revoked_id) = new_token(&app, "ana", "soon revoked").await;
    let path = format!("/api/openclaw/tokens/{revoked_id}");
    ok(send(app.api(Method::DELETE, &path, "ana")).await);
    for (m, path) in API_ROUTES {
        let cases = wrong(|| request(&app, m, path), &revoked);
        for (case, r) in cases.into_iter().enumerate() {
            let reply = authed(r).await;
            assert_eq!(reply.0, 401, "{m} {path}, case {case}");
            err(reply, 401, "unauthorized");
        }
        for user in ["", "   "] {
            let (status, b) = authed(with(request(&app, m, path), INTERNAL_KEY, user)).await;
            let message = b["error"]["message"].as_str();
            let got = (status, message);
            assert_eq!(got, (400, Some("missing user id")), "{m} {path}");
        }
        let r = request(&app, m, path).header("x-oa-internal-key", INTERNAL_KEY);
        assert_eq!(authed(r).await.0, 400, "{m} {path} without a user header");
    }
    // Nothing was created, written or revoked by any refused call.
    assert!(ok(send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await).is_null());
    let tokens = ok(send(app.api(Method::GET, "/api/openclaw/tokens", "ana")).await);
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1);
    let summary = ok(send(app.api(Method::GET, "/api/openclaw/billing/summary", "ana")).await);
    assert_eq!(summary["balance_micro_usd"], 0);

    // With good credentials every route is authenticated (and still no-store).
    let (token, _) = new_token(&app, "ana", "good").await;
    for good in ["key", "token"] {
        for (m, path) in API_ROUTES {
            let r = request(&app, m, path);
            let r = match good {
                "key" => with(r, INTERNAL_KEY, "ana"),
                _ => r.bearer_auth(&token),
            };
            let (status, b) = authed(r).await;
            let authenticated = ![400, 401, 500].contains(&status);
            assert!(authenticated, "{m} {path} ({good}): {b}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn control_routes_refuse_missing_and_wrong_keys_and_change_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let (token, _) = new_token(&app, "ana", "not for control").await;
    let upper = CONTROL_KEY.to_uppercase();
    let longer = format!("{CONTROL_KEY}0");
    let short = &CONTROL_KEY[..10];
    let wrong_keys = ["", "wrong", INTERNAL_KEY, short, &longer, &upper];
    for (m, path) in CONTROL_ROUTES {
        let r = || request(&app, m, path);
        assert_eq!(authed(r()).await.0, 401, "{m} {path} without a key");
        for wrong in wrong_keys {
            let reply = authed(r().header("x-oa-control-key", wrong)).await;
            assert_eq!(reply.0, 401, "{m} {path} with {wrong:?}");
        }
        // Neither an API token nor the internal key is a control key.
        assert_eq!(authed(r().bearer_auth(&token)).await.0, 401, "{m} {path}");
        let reply = authed(with(r(), INTERNAL_KEY, "ana")).await;
        assert_eq!(reply.0, 401, "{m} {path}");
    }
    assert!(instance_of(&app, "ana").await.is_null());
    let audit = ok(cget(&app, "/control/openclaw/audit?user_id=ana").await);
    assert_eq!(audit["entries"], json!([]));
    let summary = ok(cget(&app, "/control/openclaw/billing/summary?user_id=ana").await);
    assert_eq!(summary["balance_micro_usd"], 0);
    for (m, path) in CONTROL_ROUTES {
        let r = request(&app, m, path).header("x-oa-control-key", CONTROL_KEY);
        let (status, b) = authed(r).await;
        let authenticated = ![401, 500].contains(&status);
        assert!(authenticated, "{m} {path} with the key: {b}");
    }
    app.stop().await;
}

#[tokio::test]
async fn without_an_internal_key_the_internal_key_is_refused_but_tokens_work() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (token, digest) = generate_api_token();
    let user = UserId::parse("ana").unwrap();
    let name = TokenName::parse("seeded").unwrap();
    let store = &db.store;
    let seeded = store.create_api_token(&user, &name, &digest, "hint");
    seeded.await.unwrap();
    let config = ServerConfig {
        run_jobs: false,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keys = KeyRing::new(EncryptionKey::generate());
    let app = Application::build(config, store.clone(), keys, unreachable_runtime(), listener);
    let address = format!("http://{}", app.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move { stopped.await.unwrap_or(()) }));
    let client = reqwest::Client::new();
    for (m, path) in API_ROUTES {
        let r = client.request(m.parse().unwrap(), format!("{address}{path}"));
        let (status, b) = authed(with(r, INTERNAL_KEY, "ana")).await;
        let message = b["error"]["message"].to_string();
        err((status, b), 401, "unauthorized");
        assert!(message.contains("Bearer"), "{m} {path}: {message}");
    }
    let bearer = |m: Method, path: &str| {
        let r = client.request(m, format!("{address}{path}"));
        r.bearer_auth(token.expose_secret())
    };
    let created = ok(authed(bearer(Method::POST, "/api/openclaw/instance")).await);
    assert_eq!(created["user_id"], "ana");
    let tokens = ok(authed(bearer(Method::GET, "/api/openclaw/tokens")).await);
    assert_eq!(tokens["tokens"][0]["name"], "seeded");
    let used = tokens["tokens"][0]["last_used_at"].is_i64();
    assert!(used, "its use is noted: {tokens}");
    let summary = ok(authed(bearer(Method::GET, "/api/openclaw/billing/summary")).await);
    assert_eq!(summary["user_id"], "ana");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

backend_tests!(one_user_never_reaches_anothers_data, isolation);

/// A's credentials never return nor change B's instance, keys, tokens or ledger.
async fn isolation(db: TestDb) {
    // spawn_app makes its own database, on the same backend.
    let backend = db.store.backend();
    drop(db);
    let app = spawn_app(backend).await;
    let b_instance = ok(send(app.api(Method::POST, INSTANCE, "user-b")).await);
    let b_id = b_instance["id"].as_str().unwrap().to_owned();
    let keys = json!({"keys": {"B_ONLY_KEY": "sk-b-only-value-0123"}});
    let put = app.api(Method::PUT, "/api/openclaw/provider-keys", "user-b");
    ok(send(put.json(&keys)).await);
    let (b_token, b_token_id) = new_token(&app, "user-b", "b-laptop").await;
    assert_eq!(app.grant("user-b", "7", "b-grant").await.0, 200);
    let path = "/control/openclaw/instance/secret?name=gateway_token";
    cget(&app, &format!("{path}&user_id=user-b")).await;

    ok(send(app.api(Method::POST, INSTANCE, "user-a")).await);
    let (a_token, _) = new_token(&app, "user-a", "a-laptop").await;
    let of_b = format!("{b_id} user-b B_ONLY sk-b-only {b_token_id} b-laptop {b_token}");
    for creds in ["key", "token"] {
        let as_a = |m: &str, path: &str| match creds {
            "key" => with(request(&app, m, path), INTERNAL_KEY, "user-a"),
            // The token's user wins over a header naming B.
            _ => with(request(&app, m, path), "", "user-b").bearer_auth(&a_token),
        };
        for (m, path) in API_ROUTES.iter().filter(|(m, _)| *m != "DELETE") {
            let (status, b) = authed(as_a(m, path)).await;
            let text = b.to_string();
            for needle in of_b.split(' ') {
                assert!(!text.contains(needle), "{m} {path} {creds}: {text}");
            }
            assert_ne!(status, 500);
        }
        let path = format!("/api/openclaw/tokens/{b_token_id}");
        err(authed(as_a("DELETE", &path)).await, 404, "not_found");
    }
    let delete = |path: &str| app.api(Method::DELETE, path, "user-a");
    let gone = ok(authed(delete("/api/openclaw/provider-keys")).await);
    assert_eq!(gone["names"], json!([]));
    let deleted = ok(authed(delete(INSTANCE)).await);
    assert_eq!(deleted["instance"]["user_id"], "user-a");

    // B is untouched: instance, keys, token, ledger.
    let b = ok(send(app.api(Method::GET, INSTANCE, "user-b")).await);
    assert_eq!(b["id"], b_id.as_str());
    assert_eq!(b["status"], "provisioning");
    let b = ok(send(app.api(Method::GET, "/api/openclaw/provider-keys", "user-b")).await);
    assert_eq!(b["names"], json!(["B_ONLY_KEY"]));
    let url = format!("{}/api/openclaw/tokens", app.address);
    let b = ok(authed(app.client.get(url).bearer_auth(&b_token)).await);
    let listed = &b["tokens"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "{b}");
    assert!(listed[0]["id"] == b_token_id.as_str() && listed[0]["revoked_at"].is_null());
    for user in ["user-a", "user-b"] {
        let path = "/api/openclaw/billing/ledger";
        let ledger = ok(send(app.api(Method::GET, path, user)).await);
        let entries = ledger["entries"].as_array().unwrap();
        assert!(entries.iter().all(|e| e["user_id"] == user), "{ledger}");
    }

    // The control surface reads only the user it is given.
    let a = instance_of(&app, "user-a").await;
    assert_eq!(a["user_id"], "user-a");
    assert_eq!(a["status"], "deleted");
    let path = "/control/openclaw/audit?user_id=user-";
    let a = ok(cget(&app, &format!("{path}a")).await);
    assert_eq!(a["entries"], json!([]));
    let b = ok(cget(&app, &format!("{path}b")).await);
    assert_eq!(b["entries"].as_array().unwrap().len(), 1, "{b}");
    let path = "/control/openclaw/billing/summary?user_id=user-";
    let a = ok(cget(&app, &format!("{path}a")).await)["balance_micro_usd"].as_i64();
    let b = ok(cget(&app, &format!("{path}b")).await)["balance_micro_usd"].as_i64();
    assert_eq!(b.unwrap() - a.unwrap(), 7_000_000, "B's grant is B's only");
    app.stop().await;
}

#[tokio::test]
async fn cors_preflights_allow_the_seeds_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    let wanted = "x-oa-internal-key,x-oa-user-id,x-openagents-service-token";
    for route in "PUT provider-keys,DELETE instance,GET runtime/status".split(',') {
        let (m, path) = route.split_once(' ').unwrap();
        let url = format!("{}/api/openclaw/{path}", app.address);
        let preflight = app
            .client
            .request(Method::OPTIONS, url)
            .header("origin", "http://127.0.0.1:3000")
            .header("access-control-request-method", m)
            .header("access-control-request-headers", wanted);
        let preflight = preflight.send().await.unwrap();
        let status = preflight.status();
        assert!(status.is_success(), "{path}: {status}");
        let header = |name: &str| preflight.headers()[name].to_str().unwrap().to_lowercase();
        let allowed = header("access-control-allow-headers");
        let all = wanted.split(',').all(|h| allowed.contains(h));
        assert!(all, "{path}: {allowed}");
        assert!(header("access-control-allow-methods").contains(&m.to_lowercase()));
        assert_eq!(header("access-control-allow-origin"), "*");
    }
    app.stop().await;
}
