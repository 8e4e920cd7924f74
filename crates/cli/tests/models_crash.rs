//! The model proxy survives `kill -9`: the real `serve` binary, killed with
//! SIGKILL while a stream holds credits, is started again over the same
//! PostgreSQL database; its start-up recovery releases the hold (nothing
//! billed for a request whose usage never came), and a request that was
//! settled before a second kill stays billed exactly once.
//!
//! No gateway runs here: the instance and its model token are written to
//! the database before `serve` starts (the instance in `error`, which no
//! reconcile touches), and the client speaks to the proxy as a gateway
//! would. The upstream is testkit's loopback fake that holds a stream open
//! on cue.

mod common;

use std::time::Duration;

use clawplane_billing::{BillingConfig, GrantRequest, Ledger};
use clawplane_domain::{IdempotencyKey, InstanceFields, InstanceStatus, MicroUsd, UserId};
use clawplane_secrets::{generate_token, EncryptionKey, ExposeSecret, KeyRing};
use clawplane_store::{Backend, NewInstance, Vault};
use clawplane_testkit::fake_upstream::{cue, FakeUpstream, COMPLETION, PROMPT, UPSTREAM_KEY};
use clawplane_testkit::TestDb;
use common::Server;
use serde_json::{json, Value};

const INTERNAL_KEY: &str = "internal-key-for-models-crash-0123456789";
const ENCRYPTION_KEY: &str = "8899aabbccddeeff00112233445566775f4e3d2c1b0a99887766554433221100";
/// $1 per million tokens of every kind: the fake's usage costs
/// `PROMPT + COMPLETION` micro-USD, less than a request's hold (its input
/// estimate plus 4000 output tokens), so it is billed in full.
const CATALOG: &str = r#"
default = "mini"
[[providers]]
id = "fake"
base_url = "BASE_URL"
api_key_env = "CLAWPLANE_TEST_UPSTREAM_KEY"
[[providers.models]]
id = "mini"
upstream = "fake-model"
input_per_million = 1000000
output_per_million = 1000000
cached_per_million = 1000000
max_output_tokens = 4000
context_window = 32000
"#;

fn start(data_dir: &std::path::Path, db: &TestDb, models: &str, listen: &str) -> Server {
    Server::start(
        data_dir,
        Some(&db.url),
        &[
            ("OA_INTERNAL_KEY", INTERNAL_KEY),
            ("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("CLAWPLANE_LOG", "info,sqlx=warn"),
            ("CLAWPLANE_MODELS", models),
            ("CLAWPLANE_MODELS_LISTEN", listen),
            ("CLAWPLANE_TEST_UPSTREAM_KEY", UPSTREAM_KEY),
        ],
    )
}

fn ask(content: &str) -> Value {
    json!({
        "model": "mini",
        "stream": true,
        "max_tokens": 4000,
        "messages": [{"role": "user", "content": content}],
    })
}

/// Waits (bounded) until the proxy answers on `listen`.
async fn proxy_up(client: &reqwest::Client, listen: &str) {
    for _ in 0..200 {
        if client
            .get(format!("http://{listen}/v1/models"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the model proxy did not answer on {listen}");
}

/// The user's model entries.
async fn model_entries(ledger: &Ledger, user: &UserId) -> Vec<clawplane_domain::LedgerEntry> {
    let page = ledger.entries(user, None, 100).await.unwrap();
    page.entries
        .into_iter()
        .filter(|e| e.source == "model")
        .collect()
}

#[tokio::test]
async fn serve_killed_mid_stream_leaves_no_hold_open_and_bills_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let upstream = FakeUpstream::start().await;
    let models = dir.path().join("models.toml");
    std::fs::write(&models, CATALOG.replace("BASE_URL", &upstream.base_url)).unwrap();
    let models = models.to_str().unwrap().to_owned();
    let listen = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );

    // A user with $1 and an instance whose gateway would hold this token.
    let db = TestDb::new(Backend::Postgres).await;
    let ledger = Ledger::new(db.store.clone(), BillingConfig::default());
    let user = UserId::parse("crash-user").unwrap();
    let instance = db
        .store
        .create_instance(NewInstance {
            user_id: user.clone(),
            fields: InstanceFields::default(),
        })
        .await
        .unwrap();
    db.store
        .set_instance_status(
            instance.id,
            InstanceStatus::Error,
            Some("no runtime in this test"),
        )
        .await
        .unwrap();
    let keys = KeyRing::new(
        EncryptionKey::parse("OPENCLAW_ENCRYPTION_KEY", Some(ENCRYPTION_KEY)).unwrap(),
    );
    let token = generate_token();
    Vault::new(db.store.clone(), keys)
        .put_model_token(instance.id, &token)
        .await
        .unwrap();
    ledger
        .grant(GrantRequest {
            user_id: user.clone(),
            amount: MicroUsd::parse_decimal("1").unwrap(),
            source: "manual".into(),
            idempotency_key: IdempotencyKey::parse("crash-grant").unwrap(),
            meta: json!({}),
        })
        .await
        .unwrap();
    let granted = 1_000_000;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut server = start(&data_dir, &db, &models, &listen);
    proxy_up(&client, &listen).await;

    // A stream is under way: its first piece came, so its hold is open.
    let mut response = client
        .post(format!("http://{listen}/v1/chat/completions"))
        .bearer_auth(token.expose_secret())
        .json(&ask(cue::GATED))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the first piece in time")
        .unwrap()
        .expect("a first piece");
    assert!(String::from_utf8_lossy(&first).contains("piece-0"));
    let open = db.store.open_holds(None, 10).await.unwrap();
    assert_eq!(open.len(), 1, "the stream holds credits: {open:?}");
    assert!(ledger.available_balance(&user).await.unwrap().micros() < granted);

    // kill -9 mid-stream: the client's stream breaks, the hold stays open.
    server.kill9();
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = response.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the client's stream ended with serve");
    assert_eq!(db.store.open_holds(None, 10).await.unwrap().len(), 1);
    upstream.gate.add_permits(3);

    // Started again: the hold is released, nothing billed for it.
    let mut server = start(&data_dir, &db, &models, &listen);
    proxy_up(&client, &listen).await;
    assert!(
        db.store.open_holds(None, 10).await.unwrap().is_empty(),
        "start-up recovery released the hold"
    );
    let balance = ledger.balance(&user).await.unwrap();
    assert_eq!(balance.balance_micro_usd, granted, "nothing billed");
    assert_eq!(
        ledger.available_balance(&user).await.unwrap().micros(),
        granted
    );
    assert!(
        server
            .stderr()
            .contains("released model holds left open by an earlier run"),
        "{}",
        server.stderr()
    );

    // A stream that ends is billed its usage once; a second kill and start
    // bill it nothing more.
    let done = client
        .post(format!("http://{listen}/v1/chat/completions"))
        .bearer_auth(token.expose_secret())
        .json(&ask("hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let text = done.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    let cost = (PROMPT + COMPLETION) as i64;
    let entries = model_entries(&ledger, &user).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].amount.micros(), -cost);
    server.kill9();
    let server = start(&data_dir, &db, &models, &listen);
    proxy_up(&client, &listen).await;
    let entries = model_entries(&ledger, &user).await;
    assert_eq!(entries.len(), 1, "billed once: {entries:?}");
    let balance = ledger.balance(&user).await.unwrap();
    assert_eq!(balance.balance_micro_usd, granted - cost);
    assert!(db.store.open_holds(None, 10).await.unwrap().is_empty());
    assert!(ledger.verify().await.unwrap().is_clean());
    assert!(!server.stderr().contains(UPSTREAM_KEY));
}
