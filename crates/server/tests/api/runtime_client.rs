//! The runtime client against a real runtime agent (its gateway left
//! stopped), and against fakes for the faults a real agent cannot produce:
//! a reply that is not JSON, a silence, a brief 503.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clawplane_http::v1::GatewayState;
use clawplane_runtime::gateway::config_file::BindMode;
use clawplane_runtime::{install, Agent, RuntimeConfig};
use clawplane_secrets::SecretString;
use clawplane_server::error::ApiError;
use clawplane_server::runtime_client::{
    ClientOptions, GatewayAction, RuntimeClient, RuntimeError, RuntimeTarget,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "runtime-client-test-token-0123456789";

fn target(base_url: String, token: &str) -> RuntimeTarget {
    RuntimeTarget {
        base_url,
        service_token: SecretString::from(token.to_owned()),
    }
}

fn quick() -> RuntimeClient {
    RuntimeClient::new(ClientOptions {
        quick_timeout: Duration::from_millis(500),
        slow_timeout: Duration::from_millis(500),
        ..Default::default()
    })
}

async fn real_agent() -> (String, tokio::sync::oneshot::Sender<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        state_dir: dir.path().join("runtime"),
        gateway_port: std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        bind: BindMode::Loopback,
        service_token: SecretString::from(TOKEN.to_owned()),
        gateway_token: SecretString::from("gateway-token-for-client-tests-0123".to_owned()),
        dev_mode: false,
        instance_id: "client-test".into(),
        instance_type: "test".into(),
        openclaw_version: install::DEFAULT_OPENCLAW_VERSION.into(),
        cache_dir: install::default_cache_dir(),
        backup_url: format!("file://{}", dir.path().join("backups").display()),
        s3: Default::default(),
        backup_interval: Duration::from_secs(3600),
        keep_last: 3,
        keep_daily_days: 1,
        provider_env: Vec::new(),
        body_limit: 64 * 1024,
        stop_grace: Duration::from_secs(5),
        autostart: false,
        // The gateway is never started here.
        models: None,
        cell: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = Agent::build(config, listener)
        .await
        .expect("the agent builds (is OpenClaw installed?)");
    let url = format!("http://{}", agent.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(agent.run(async move {
        let _ = rx.await;
    }));
    (url, tx, dir)
}

#[tokio::test]
async fn a_real_runtimes_answers_and_errors_keep_their_status() {
    let (url, stop, _dir) = real_agent().await;
    let client = RuntimeClient::new(ClientOptions::default());
    let t = target(url.clone(), TOKEN);
    let status = client.status(&t).await.unwrap();
    assert_eq!(status.gateway.state, GatewayState::Stopped);
    assert_eq!(status.instance_id, "client-test");
    let backups = client.backups(&t).await.unwrap();
    assert!(backups.backups.is_empty());

    // The gateway is stopped: the runtime's 409 keeps its status and message.
    let err = client.devices(&t).await.unwrap_err();
    let RuntimeError::Status {
        status, ref code, ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!((status, code.as_str()), (409, "gateway_not_running"));
    let api: ApiError = err.into();
    assert_eq!(api.status.as_u16(), 409);
    assert!(api.message.contains("not running"));

    // A wrong token is the runtime's 401.
    let err = client
        .status(&target(url.clone(), "wrong-token"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::Status { status: 401, .. }),
        "{err:?}"
    );

    // Writes reach it too.
    let stopped = client.gateway(&t, GatewayAction::Stop).await.unwrap();
    assert_eq!(stopped.gateway.state, GatewayState::Stopped);
    let _ = stop.send(());
}

/// A fake runtime answering every connection with `reply` (raw HTTP), for
/// the faults a real agent does not produce. Counts connections.
async fn fake_runtime(replies: Vec<&'static str>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        for _ in 0..50 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let reply = replies[n.min(replies.len() - 1)];
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                if reply.is_empty() {
                    // Silence: hold the connection, answer nothing.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    return;
                }
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, count)
}

const NOT_JSON: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot json!";
const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 73\r\nconnection: close\r\n\r\n{\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"try again\",\"details\":null}}";
const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 37\r\nconnection: close\r\n\r\n{\"ok\":true,\"data\":{\"lines\":[\"fine\"]}}";

#[tokio::test]
async fn a_reply_that_is_not_the_envelope_is_a_502_invalid_response() {
    let (url, _) = fake_runtime(vec![NOT_JSON]).await;
    let err = quick().status(&target(url, TOKEN)).await.unwrap_err();
    assert_eq!(err, RuntimeError::InvalidResponse);
    let api: ApiError = err.into();
    assert_eq!((api.status.as_u16(), api.code), (502, "invalid_response"));
}

#[tokio::test]
async fn silence_and_closed_ports_are_bounded_and_answer_502() {
    let (url, seen) = fake_runtime(vec![""]).await;
    let started = std::time::Instant::now();
    let err = quick().status(&target(url, TOKEN)).await.unwrap_err();
    assert_eq!(err, RuntimeError::Unreachable);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "a read is tried three times"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let closed = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let err = quick().devices(&target(closed, TOKEN)).await.unwrap_err();
    let api: ApiError = err.into();
    assert_eq!(
        (api.status.as_u16(), api.code),
        (502, "runtime_unreachable")
    );
}

#[tokio::test]
async fn reads_are_retried_after_a_brief_503_and_writes_are_not() {
    let (url, seen) = fake_runtime(vec![UNAVAILABLE, OK]).await;
    let data = quick().logs(&target(url, TOKEN), 1).await.unwrap();
    assert_eq!(data.lines, ["fine"]);
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    let (url, seen) = fake_runtime(vec![UNAVAILABLE, OK]).await;
    let err = quick().backup(&target(url, TOKEN)).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::Status { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1, "a write is sent once");
}
