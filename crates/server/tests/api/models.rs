//! The metered model proxy as `serve` answers it: a gateway's model token
//! (found by its digest) pays from its user's credits; what is billed is
//! the upstream's usage at the operator's prices, once; a user without
//! credits, a bad token and a refused request bill nothing. Two loopback
//! upstreams: `testkit`'s fake provider (model `mini`) and its fake upstream
//! that fails on cue (model `cued`, used by the submodules).

mod contention;
mod cues;
mod faults;

use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use clawplane_billing::{BillingConfig, GrantRequest, Ledger};
use clawplane_domain::{IdempotencyKey, InstanceFields, MicroUsd, UserId};
use clawplane_models::proxy::ProxySettings;
use clawplane_models::{Catalog, Model};
use clawplane_secrets::{generate_token, EncryptionKey, ExposeSecret, KeyRing, SecretString};
use clawplane_server::startup::ModelsListener;
use clawplane_server::{Application, ServerConfig};
use clawplane_store::{Backend, NewInstance, Vault};
use clawplane_testkit::fake_openai::FakeOpenAi;
use clawplane_testkit::fake_upstream::{self, FakeUpstream};
use clawplane_testkit::TestDb;
use serde_json::{json, Value};

use crate::helpers::unreachable_runtime;

const INTERNAL_KEY: &str = "internal-key-for-models-0123456789abcdef";
const UPSTREAM_KEY: &str = "sk-operator-upstream-key-for-tests";
const PIECES: [&str; 3] = ["Hello", " from", " the model"];

struct ModelsApp {
    url: String,
    api: String,
    db: TestDb,
    ledger: Ledger,
    vault: Vault,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _provider: FakeOpenAi,
    /// The upstream of model `cued`, failing on cue.
    upstream: FakeUpstream,
    /// The catalog's `cued` model (its prices and limits, for holds).
    cued: Model,
}

impl ModelsApp {
    async fn spawn(backend: Backend) -> ModelsApp {
        Self::spawn_with(backend, ProxySettings::default()).await
    }

    /// With these proxy settings.
    async fn spawn_with(backend: Backend, settings: ProxySettings) -> ModelsApp {
        let provider = FakeOpenAi::start(&PIECES).await;
        let upstream = FakeUpstream::start().await;
        let db = TestDb::new(backend).await;
        let text = format!(
            r#"
            default = "mini"
            [[providers]]
            id = "fake"
            base_url = "{}"
            api_key_env = "TEST_UPSTREAM_KEY"
            [[providers.models]]
            id = "mini"
            upstream = "fake-model"
            input_per_million = 1000000
            output_per_million = 2000000
            cached_per_million = 500000
            max_output_tokens = 1000
            context_window = 32000
            [[providers]]
            id = "cues"
            base_url = "{}"
            api_key_env = "TEST_CUE_KEY"
            [[providers.models]]
            id = "cued"
            upstream = "cue-model"
            input_per_million = 1000000
            output_per_million = 2000000
            cached_per_million = 500000
            max_output_tokens = 1000
            context_window = 32000
            "#,
            provider.base_url, upstream.base_url
        );
        let env = |name: &str| match name {
            "TEST_UPSTREAM_KEY" => Some(UPSTREAM_KEY.to_owned()),
            "TEST_CUE_KEY" => Some(fake_upstream::UPSTREAM_KEY.to_owned()),
            _ => None,
        };
        let catalog = Catalog::parse(&text, Path::new("models.toml"), &env).unwrap();
        let cued = catalog.model("cued").unwrap().clone();
        let config = ServerConfig {
            run_jobs: false,
            internal_key: Some(SecretString::from(INTERNAL_KEY.to_owned())),
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let models = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", models.local_addr().unwrap());
        let keys = KeyRing::new(EncryptionKey::generate());
        let app = Application::build(
            config,
            db.store.clone(),
            keys.clone(),
            unreachable_runtime(),
            listener,
        )
        .with_models(ModelsListener {
            listener: models,
            catalog,
            settings,
        });
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        ModelsApp {
            url,
            api,
            ledger: Ledger::new(db.store.clone(), BillingConfig::default()),
            vault: Vault::new(db.store.clone(), keys),
            db,
            stop,
            server,
            _provider: provider,
            upstream,
            cued,
        }
    }

    /// A user's instance with a model token, and `credits` USD granted.
    async fn tenant(&self, user: &str, credits: Option<&str>) -> (UserId, SecretString) {
        let user_id = UserId::parse(user).unwrap();
        let instance = self
            .db
            .store
            .create_instance(NewInstance {
                user_id: user_id.clone(),
                fields: InstanceFields::default(),
            })
            .await
            .unwrap();
        let token = generate_token();
        self.vault
            .put_model_token(instance.id, &token)
            .await
            .unwrap();
        if let Some(amount) = credits {
            self.ledger
                .grant(GrantRequest {
                    user_id: user_id.clone(),
                    amount: MicroUsd::parse_decimal(amount).unwrap(),
                    source: "manual".into(),
                    idempotency_key: IdempotencyKey::parse(&format!("grant-{user}")).unwrap(),
                    meta: json!({}),
                })
                .await
                .unwrap();
        }
        (user_id, token)
    }

    async fn chat(&self, token: &str, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(token)
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap()
    }

    async fn model_entries(&self, user: &UserId) -> Vec<clawplane_domain::LedgerEntry> {
        let page = self.ledger.entries(user, None, 100).await.unwrap();
        page.entries
            .into_iter()
            .filter(|e| e.source == "model")
            .collect()
    }

    async fn usage(&self, user: &UserId, query: &str) -> (StatusCode, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}/api/openclaw/billing/usage{query}", self.api))
            .header("x-oa-internal-key", INTERNAL_KEY)
            .header("x-oa-user-id", user.as_str())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

fn ask(stream: bool) -> Value {
    json!({
        "model": "mini",
        "stream": stream,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    })
}

#[tokio::test]
async fn a_gateways_token_pays_exactly_the_upstreams_usage_once() {
    let app = ModelsApp::spawn(Backend::Sqlite).await;
    let (user, token) = app.tenant("ana", Some("1")).await;

    let streamed = app.chat(token.expose_secret(), ask(true)).await;
    assert_eq!(streamed.status(), StatusCode::OK);
    let text = streamed.text().await.unwrap();
    for piece in PIECES {
        assert!(text.contains(piece), "{text}");
    }
    assert!(
        !text.contains(UPSTREAM_KEY),
        "the operator's key never reaches a tenant"
    );

    let plain = app.chat(token.expose_secret(), ask(false)).await;
    assert_eq!(plain.status(), StatusCode::OK);
    let answer: Value = plain.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], PIECES.concat());

    // The fake counts 10 prompt tokens and one completion token per piece:
    // 10 x $1/M + 3 x $2/M = 16 micro-USD per request, billed once each.
    let entries = app.model_entries(&user).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        assert_eq!(entry.amount.micros(), -16, "{entry:?}");
        assert_eq!(entry.meta["model"], "mini");
        assert_eq!(entry.meta["input_tokens"], 10);
        assert_eq!(entry.meta["output_tokens"], 3);
    }
    let balance = app.ledger.balance(&user).await.unwrap();
    assert_eq!(balance.balance_micro_usd, 1_000_000 - 32);
    assert!(app.ledger.verify().await.unwrap().is_clean());

    // The same numbers by day and model, for the API and the Billing page.
    let (status, usage) = app.usage(&user, "").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let days = usage["data"]["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{usage}");
    assert_eq!(days[0]["model"], "mini");
    assert_eq!(days[0]["requests"], 2);
    assert_eq!(days[0]["input_tokens"], 20);
    assert_eq!(days[0]["output_tokens"], 6);
    assert_eq!(days[0]["cost_micro_usd"], 32);
    assert_eq!(usage["data"]["total_micro_usd"], 32);
    for bad in [
        "?from=yesterday",
        "?from=2026-12-02&to=2026-12-01",
        "?from=2026-01-01&to=2026-12-01",
    ] {
        let (status, body) = app.usage(&user, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["ok"], false);
    }
    app.stop().await;
}

#[tokio::test]
async fn no_credits_a_bad_token_and_an_unknown_model_bill_nothing() {
    let app = ModelsApp::spawn(Backend::Sqlite).await;
    let (broke, token) = app.tenant("bo", None).await;

    let refused = app.chat(token.expose_secret(), ask(true)).await;
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Your credits have run out"),
        "{body}"
    );

    let stranger = app.chat("not-anyones-token", ask(false)).await;
    assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);

    let (rich, rich_token) = app.tenant("cy", Some("1")).await;
    let mut unknown = ask(false);
    unknown["model"] = json!("gpt-unknown");
    let missing = app.chat(rich_token.expose_secret(), unknown).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    assert!(app.model_entries(&broke).await.is_empty());
    assert!(app.model_entries(&rich).await.is_empty());
    let balance = app.ledger.balance(&rich).await.unwrap();
    assert_eq!(balance.balance_micro_usd, 1_000_000);
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_instances_token_stops_working() {
    let app = ModelsApp::spawn(Backend::Sqlite).await;
    let (user, token) = app.tenant("di", Some("1")).await;
    let instance = app
        .db
        .store
        .live_instance_for_user(&user)
        .await
        .unwrap()
        .unwrap();
    app.db.store.clear_all_secrets(instance.id).await.unwrap();
    let after = app.chat(token.expose_secret(), ask(false)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}
