//! One rule in one place, on every surface: provider-key names as the
//! runtime checks them (reserved names refused when stored, listed in the
//! error), JSON bodies refused when an object names a key twice (control
//! and API alike, at any depth), idempotency keys scoped per user, and the
//! API-token cap counting live tokens only.

use clawplane_store::Backend;
use reqwest::Method;
use serde_json::{json, Value};

use crate::control::{cget, cpost, err, ok};
use crate::helpers::{send, spawn_app, TestApp};

const KEYS: &str = "/control/openclaw/instance/secret";
const PROVIDER_KEYS: &str = "/api/openclaw/provider-keys";
const TOKENS: &str = "/api/openclaw/tokens";
const GRANT: &str = "/control/openclaw/billing/grant";

/// A raw JSON text (not re-serialised, so repeated keys stay) to `path`.
fn raw_json(request: reqwest::RequestBuilder, body: &'static str) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/json")
        .body(body)
}

async fn summary(app: &TestApp, user: &str) -> Value {
    ok(cget(
        app,
        &format!("/control/openclaw/billing/summary?user_id={user}"),
    )
    .await)
}

async fn key_names(app: &TestApp, user: &str) -> Value {
    ok(send(app.api(Method::GET, PROVIDER_KEYS, user)).await)["names"].clone()
}

#[tokio::test]
async fn reserved_provider_key_names_are_refused_when_stored_with_the_list() {
    let app = spawn_app(Backend::Sqlite).await;
    ok(send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await);
    let good = json!({"keys": {"OPENAI_API_KEY": "sk-good-0123"}});
    ok(send(app.api(Method::PUT, PROVIDER_KEYS, "ana").json(&good)).await);
    for name in [
        "NODE_OPTIONS",
        "NODE_PATH",
        "LD_LIBRARY_PATH",
        "HTTPS_PROXY",
    ] {
        let keys = json!({ "OPENAI_API_KEY": "sk-new-1", name: "sk-never-echoed" });
        let body = json!({ "keys": keys });
        let (status, reply) = send(app.api(Method::PUT, PROVIDER_KEYS, "ana").json(&body)).await;
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("{name} is reserved")), "{reply}");
        for listed in ["PATH", "HOME", "HTTP_PROXY", "NODE_", "LD_", "OPENCLAW_"] {
            assert!(message.contains(listed), "{listed} listed in {message}");
        }
        assert!(!reply.to_string().contains("sk-never"), "{reply}");
        err((status, reply), 400, "bad_request");
        // The control write refuses it too, as an object or as JSON text.
        for value in [keys.clone(), json!(keys.to_string())] {
            let body = json!({"user_id": "ana", "name": "provider_keys", "value": value});
            let (status, reply) = cpost(&app, KEYS, body).await;
            assert!(reply.to_string().contains("is reserved"), "{reply}");
            err((status, reply), 400, "bad_request");
        }
    }
    assert_eq!(key_names(&app, "ana").await, json!(["OPENAI_API_KEY"]));
    let read = format!("{KEYS}?user_id=ana&name=provider_keys");
    let stored = ok(cget(&app, &read).await)["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored, good["keys"], "nothing else was stored");
    let audit = ok(cget(&app, "/control/openclaw/audit?user_id=ana").await);
    let writes = audit["entries"].as_array().unwrap().iter();
    let writes = writes.filter(|e| e["action"] == "secret.write").count();
    assert_eq!(writes, 0, "a refused write is not audited: {audit}");
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_key_is_refused_on_the_control_surface_and_grants_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let body = r#"{"user_id":"ana","amount_usd":"1","amount_usd":"1000000"}"#;
    let grant = app
        .control(Method::POST, GRANT)
        .header("idempotency-key", "g-1");
    let (status, reply) = send(raw_json(grant, body)).await;
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("amount_usd"), "{reply}");
    err((status, reply), 400, "bad_request");
    // Repeated user ids cannot pick whose balance changes either.
    let body = r#"{"user_id":"ana","user_id":"bob","amount_usd":"1"}"#;
    let grant = app
        .control(Method::POST, GRANT)
        .header("idempotency-key", "g-2");
    err(send(raw_json(grant, body)).await, 400, "bad_request");
    for user in ["ana", "bob"] {
        let s = summary(&app, user).await;
        assert_eq!(s["balance_micro_usd"], 0, "{s}");
        assert_eq!(s["recent_entries"], json!([]), "{s}");
    }
    // The same key, sent once, is what it always was.
    let body = r#"{"user_id":"ana","amount_usd":"1"}"#;
    let grant = app
        .control(Method::POST, GRANT)
        .header("idempotency-key", "g-3");
    let granted = ok(send(raw_json(grant, body)).await);
    assert_eq!(granted["balance_micro_usd"], 1_000_000);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_nested_key_is_refused_on_the_api_and_stores_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    ok(send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await);
    let body = r#"{"keys":{"OPENAI_API_KEY":"sk-one","OPENAI_API_KEY":"sk-two"}}"#;
    let (status, reply) = send(raw_json(app.api(Method::PUT, PROVIDER_KEYS, "ana"), body)).await;
    assert!(!reply.to_string().contains("sk-"), "{reply}");
    assert!(reply.to_string().contains("OPENAI_API_KEY"), "{reply}");
    err((status, reply), 400, "bad_request");
    assert_eq!(key_names(&app, "ana").await, json!([]));
    // Deeper in a control body too (`meta` is stored as given).
    let body = r#"{"user_id":"ana","amount_usd":"1","meta":{"a":{"b":1,"b":2}}}"#;
    let grant = app
        .control(Method::POST, GRANT)
        .header("idempotency-key", "m-1");
    err(send(raw_json(grant, body)).await, 400, "bad_request");
    let balance = summary(&app, "ana").await["balance_micro_usd"].clone();
    assert_eq!(balance, 10_000_000, "only the month's grant of the create");
    app.stop().await;
}

async fn idempotency_keys_are_scoped_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = ok(app.grant("ana", "2", "topup-1").await);
    assert_eq!(first["balance_micro_usd"], 2_000_000);
    // Another user's request with the same key is theirs, not a conflict.
    let other = ok(app.grant("bob", "3", "topup-1").await);
    assert_eq!(other["balance_micro_usd"], 3_000_000);
    assert_eq!(
        other.get("replayed"),
        None,
        "written, not replayed: {other}"
    );
    // The same user and request again: the replay, nothing written.
    let replay = ok(app.grant("ana", "2", "topup-1").await);
    assert_eq!(replay["replayed"], true);
    assert_eq!(replay["entry"]["id"], first["entry"]["id"]);
    // The same user, key and another request: still 409.
    err(
        app.grant("ana", "5", "topup-1").await,
        409,
        "idempotency_conflict",
    );
    err(
        app.burn("ana", "1", "topup-1").await,
        409,
        "idempotency_conflict",
    );
    assert_eq!(summary(&app, "ana").await["balance_micro_usd"], 2_000_000);
    assert_eq!(summary(&app, "bob").await["balance_micro_usd"], 3_000_000);
    // A reversal's key is scoped the same way.
    let reverse = |user: &str, entry: &Value| {
        let body = json!({"user_id": user, "entry_id": entry});
        app.control(Method::POST, "/control/openclaw/billing/reverse")
            .header("idempotency-key", "undo-1")
            .json(&body)
    };
    let bob_entry = other["entry"]["id"].clone();
    ok(send(reverse("ana", &first["entry"]["id"])).await);
    ok(send(reverse("bob", &bob_entry)).await);
    assert_eq!(summary(&app, "bob").await["balance_micro_usd"], 0);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_are_scoped_per_user_on_sqlite() {
    idempotency_keys_are_scoped_per_user(Backend::Sqlite).await;
}

#[tokio::test]
async fn idempotency_keys_are_scoped_per_user_on_postgres() {
    idempotency_keys_are_scoped_per_user(Backend::Postgres).await;
}

async fn create_token(app: &TestApp, user: &str, name: &str) -> (u16, Value) {
    send(
        app.api(Method::POST, TOKENS, user)
            .json(&json!({ "name": name })),
    )
    .await
}

async fn revoke_token(app: &TestApp, user: &str, id: &Value) {
    let path = format!("{TOKENS}/{}", id.as_str().unwrap());
    ok(send(app.api(Method::DELETE, &path, user)).await);
}

async fn tokens(app: &TestApp, user: &str) -> Vec<Value> {
    let listed = ok(send(app.api(Method::GET, TOKENS, user)).await);
    listed["tokens"].as_array().unwrap().clone()
}

async fn revoked_tokens_do_not_count_against_the_cap(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(ok(create_token(&app, "ana", &format!("t{i}")).await)["api_token"]["id"].clone());
    }
    err(
        create_token(&app, "ana", "51st").await,
        409,
        "too_many_tokens",
    );
    revoke_token(&app, "ana", &ids[0]).await;
    let freed = ok(create_token(&app, "ana", "in the freed place").await);
    err(
        create_token(&app, "ana", "50 live again").await,
        409,
        "too_many_tokens",
    );
    // Churn keeps the revoked ones bounded: 51 revoked, then 50 created.
    for id in ids[1..].iter().chain([&freed["api_token"]["id"]]) {
        revoke_token(&app, "ana", id).await;
    }
    for i in 0..50 {
        ok(create_token(&app, "ana", &format!("u{i}")).await);
    }
    let listed = tokens(&app, "ana").await;
    let revoked = listed.iter().filter(|t| !t["revoked_at"].is_null()).count();
    assert_eq!(
        (listed.len(), revoked),
        (100, 50),
        "50 live, 50 revoked kept"
    );
    app.stop().await;
}

#[tokio::test]
async fn revoked_tokens_do_not_count_against_the_cap_on_sqlite() {
    revoked_tokens_do_not_count_against_the_cap(Backend::Sqlite).await;
}

#[tokio::test]
async fn revoked_tokens_do_not_count_against_the_cap_on_postgres() {
    revoked_tokens_do_not_count_against_the_cap(Backend::Postgres).await;
}
