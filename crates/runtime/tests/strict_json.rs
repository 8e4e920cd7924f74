//! The runtime's `/v1` reads JSON bodies as strictly as `serve` does: an
//! object that names a key twice is a 400 in the envelope, and nothing
//! happens. No gateway is needed (it never starts), so the installation is
//! a stand-in: the two markers `clawplane openclaw install` leaves.

use std::time::Duration;

use clawplane_runtime::gateway::config_file::BindMode;
use clawplane_runtime::{install, Agent, RuntimeConfig};
use clawplane_secrets::SecretString;
use serde_json::Value;

const TOKEN: &str = "service-token-for-strict-json-0123456789";

/// What `install::find` looks for (`<cache>/node/<v>/.complete`,
/// `<cache>/openclaw/<v>/.complete`).
fn stand_in_installation(cache: &std::path::Path) {
    for dir in [
        cache.join("node").join(install::NODE_VERSION),
        cache
            .join("openclaw")
            .join(install::DEFAULT_OPENCLAW_VERSION),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".complete"), "stand-in").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_body_naming_a_key_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    stand_in_installation(&cache);
    let config = RuntimeConfig {
        state_dir: dir.path().join("runtime"),
        gateway_port: std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        bind: BindMode::Loopback,
        service_token: SecretString::from(TOKEN.to_owned()),
        gateway_token: SecretString::from("gateway-token-for-strict-json-0123".to_owned()),
        dev_mode: false,
        instance_id: "strict-json".into(),
        instance_type: "test".into(),
        openclaw_version: install::DEFAULT_OPENCLAW_VERSION.into(),
        cache_dir: cache,
        backup_url: format!("file://{}", dir.path().join("backups").display()),
        s3: Default::default(),
        backup_interval: Duration::from_secs(3600),
        keep_last: 3,
        keep_daily_days: 1,
        provider_env: Vec::new(),
        body_limit: 64 * 1024,
        stop_grace: Duration::from_secs(5),
        autostart: false,
        models: None,
        cell: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = Agent::build(config, listener).await.unwrap();
    let url = format!("http://{}/v1/storage/restore", agent.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(agent.run(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let restore = |body: &'static str| {
        client
            .post(&url)
            .header("x-openagents-service-token", TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let reply = restore(r#"{"backupId":"20261124T061500.123Z-1a2b3c4d","backupId":"b2"}"#)
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("backupId") && message.contains("more than once"),
        "{message}"
    );
    // The same body with the key once goes on (and finds no such backup).
    let reply = restore(r#"{"backupId":"20261124T061500.123Z-1a2b3c4d"}"#)
        .await
        .unwrap();
    assert_eq!(reply.status(), 404);
    tx.send(()).unwrap();
    run.await.unwrap().unwrap();
}
