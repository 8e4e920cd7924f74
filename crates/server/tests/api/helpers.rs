//! `spawn_app`: a real server on a random loopback port over a real store.

use clawplane_billing::BillingConfig;
use clawplane_secrets::{EncryptionKey, KeyRing, SecretString};
use std::sync::Arc;

use clawplane_server::provision::static_env::{StaticProvisioner, StaticSettings};
use clawplane_server::provision::Provisioner;
use clawplane_server::{Application, ServerConfig};
use clawplane_store::Backend;
use clawplane_testkit::TestDb;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;

pub const CONTROL_KEY: &str = "control-key-for-tests-0123456789";
pub const INTERNAL_KEY: &str = "internal-key-for-tests-0123456789";

pub struct TestApp {
    pub address: String,
    pub client: Client,
    /// Kept alive as long as the app: dropping it removes the database.
    _db: TestDb,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// The provisioner of in-process tests: the seed's static one, pointed at a
/// loopback port where nothing listens, so instances exist (and end in
/// `error`) without a runtime. Tests with real runtimes run the binary.
pub fn unreachable_runtime() -> Arc<dyn Provisioner> {
    Arc::new(StaticProvisioner::new(StaticSettings {
        runtime_url: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    }))
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let db = TestDb::new(backend).await;
    let mut config = ServerConfig {
        control_key: Some(SecretString::from(CONTROL_KEY.to_owned())),
        internal_key: Some(SecretString::from(INTERNAL_KEY.to_owned())),
        billing: BillingConfig::default(),
        run_jobs: false,
        ..Default::default()
    };
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(
        config,
        db.store.clone(),
        KeyRing::new(EncryptionKey::generate()),
        unreachable_runtime(),
        listener,
    );
    let address = format!("http://{}", app.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap(),
        _db: db,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.address))
    }

    /// A control request with the right key.
    pub fn control(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
            .header("x-oa-control-key", CONTROL_KEY)
    }

    /// An API request as `user` with the internal key.
    pub fn api(&self, method: reqwest::Method, path: &str, user: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
            .header("x-oa-internal-key", INTERNAL_KEY)
            .header("x-oa-user-id", user)
    }

    pub async fn grant(&self, user: &str, amount: &str, key: &str) -> (u16, Value) {
        send(
            self.control(reqwest::Method::POST, "/control/openclaw/billing/grant")
                .header("idempotency-key", key)
                .json(&serde_json::json!({ "user_id": user, "amount_usd": amount })),
        )
        .await
    }

    pub async fn burn(&self, user: &str, amount: &str, key: &str) -> (u16, Value) {
        send(
            self.control(reqwest::Method::POST, "/control/openclaw/billing/burn")
                .header("idempotency-key", key)
                .json(&serde_json::json!({ "user_id": user, "amount_usd": amount })),
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

/// Sends and returns the status and the JSON body, asserting the envelope.
pub async fn send(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request sent");
    envelope(response).await
}

pub async fn envelope(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    let ok = body["ok"]
        .as_bool()
        .unwrap_or_else(|| panic!("no ok field: {text}"));
    assert_eq!(ok, status < 400, "ok matches the status: {status} {text}");
    if !ok {
        assert!(body["error"]["code"].is_string(), "error.code: {text}");
        assert!(
            body["error"]["message"].is_string(),
            "error.message: {text}"
        );
        assert!(
            body["error"].get("details").is_some(),
            "error.details: {text}"
        );
    }
    (status, body)
}
