//! The front door with the real binary and a real gateway: a device reaches
//! its instance's gateway at `<runtime_name>.localhost:<port>` through
//! `serve` and the runtime, arrives as a remote device with its own address
//! (the operator's trusted proxy in front of `serve` is simulated by the
//! test client's `X-Forwarded-For` on loopback), waits for approval, is
//! approved through the API, then connects. Plain HTTP reaches the gateway
//! the same way; unknown hosts get a page; no token is in any log.

mod common;

use std::time::Duration;

use clawplane_testkit::device::{Outcome, TestDevice};
use common::api::Api;
use common::{Reaper, Server};
use reqwest::{Client, Method};
use serde_json::Value;

const INTERNAL_KEY: &str = "internal-key-for-ingress-tests-0123456789";
const USER: &str = "ingress-user@example.com";
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff6b1f3c0e9d2a4b5c8e7f6a5b4c3d2e1f";

/// A request to `serve` addressed to `host`, from 203.0.113.60 (as the
/// trusted proxy in front of `serve` says).
async fn get_as(client: &Client, server: &Server, host: &str, path: &str) -> (u16, String) {
    let r = client
        .get(format!("{}{path}", server.address))
        .header("host", host)
        .header("x-forwarded-for", "203.0.113.60")
        .send()
        .await
        .expect("request sent");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

fn pending_from(devices: &Value, request_id: &str) -> Value {
    devices["data"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["requestId"] == request_id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_device_reaches_its_gateway_through_the_front_door() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let _reaper = Reaper(data_dir.clone());
    let server = Server::start(
        &data_dir,
        None,
        &[
            ("OA_INTERNAL_KEY", INTERNAL_KEY),
            ("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("CLAWPLANE_TRUSTED_PROXIES", "127.0.0.1"),
            ("CLAWPLANE_LOG", "debug,sqlx=warn,hyper=warn,reqwest=warn"),
        ],
    );
    let client = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let api = Api {
        client: client.clone(),
        server: &server,
        user: USER,
        internal_key: INTERNAL_KEY,
    };
    let port = server.address.rsplit(':').next().unwrap().to_owned();

    // Unknown hosts: a page, not a gateway.
    let (status, page) = get_as(&client, &server, &format!("nobody.localhost:{port}"), "/").await;
    assert_eq!(status, 404);
    assert!(
        page.contains("There is no OpenClaw instance at nobody"),
        "{page}"
    );
    assert!(page.contains(&format!("http://localhost:{port}/console")));

    let (status, created) = api.call(Method::POST, "/api/openclaw/instance").await;
    assert_eq!(status, 200, "{created}");
    let ready = api.wait_for("ready", Duration::from_secs(240)).await;
    let name = ready["runtime_name"].as_str().unwrap().to_owned();
    let host = format!("{name}.localhost:{port}");

    // Plain HTTP reaches the gateway: its Control UI at `/`.
    let (status, page) = get_as(&client, &server, &host, "/").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("openclaw"),
        "the gateway's Control UI: {page}"
    );
    assert!(!page.contains("\"ok\""), "not an envelope of serve's");
    // serve's own routes stay serve's on its own host.
    let (status, health) = get_as(&client, &server, &format!("localhost:{port}"), "/healthz").await;
    assert_eq!(status, 200);
    assert!(health.contains("\"ok\":true"), "{health}");

    // A device arrives through the door, as a remote device with its own
    // address: the trusted proxy's right-most untrusted hop, the forged
    // left one dropped.
    let (_, secret) = api
        .control(&format!(
            "/control/openclaw/instance/secret?user_id={USER}&name=gateway_token"
        ))
        .await;
    let gateway_token = secret["data"]["value"].as_str().unwrap().to_owned();
    let door = format!("ws://127.0.0.1:{port}");
    let phone = TestDevice::new("Ingress phone");
    let first = phone
        .connect(
            &door,
            &gateway_token,
            false,
            Some("6.6.6.6, 203.0.113.50"),
            Some(&host),
        )
        .await;
    let Outcome::NotPaired { request_id } = first else {
        panic!("expected a pairing request through the ingress, got {first:?}")
    };
    let (_, devices) = api.call(Method::GET, "/api/openclaw/runtime/devices").await;
    let pending = pending_from(&devices, &request_id);
    assert_eq!(pending["remoteIp"], "203.0.113.50", "{devices}");

    // A wrong token is refused by the gateway itself.
    let stranger = TestDevice::new("Stranger");
    let refused = stranger
        .connect(
            &door,
            "not-the-token",
            false,
            Some("203.0.113.51"),
            Some(&host),
        )
        .await;
    assert!(matches!(refused, Outcome::Refused { .. }), "{refused:?}");

    let (status, approved) = api
        .call(
            Method::POST,
            &format!("/api/openclaw/runtime/devices/{request_id}/approve"),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    let second = phone
        .connect(
            &door,
            &gateway_token,
            false,
            Some("203.0.113.50"),
            Some(&host),
        )
        .await;
    assert!(
        matches!(second, Outcome::HelloOk { .. }),
        "paired, through the door: {second:?}"
    );

    // A browser without the owner's pass is refused at the door, with a page.
    let r = client
        .get(format!("{}/", server.address))
        .header("host", &host)
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let page = r.text().await.unwrap();
    assert!(page.contains("Sign in to the console"), "{page}");
    // A pass that was never issued opens nothing.
    let r = client
        .post(format!("{}/__clawplane/door", server.address))
        .header("host", &host)
        .form(&[("pass", "not-a-pass-0123456789")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());

    // A connection held through the door sees its gateway restart as a
    // close frame (not a dropped connection), and the device reconnects.
    let mut held = phone
        .open(&door, &gateway_token, Some("203.0.113.50"), Some(&host))
        .await
        .expect("a held connection");
    let (status, restarted) = api
        .call(Method::POST, "/api/openclaw/runtime/restart")
        .await;
    assert_eq!(status, 200, "{restarted}");
    let ended = tokio::time::timeout(Duration::from_secs(120), async {
        use futures_util::StreamExt;
        loop {
            match held.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    return Ok(frame)
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("ended without a close frame".to_owned()),
            }
        }
    })
    .await
    .expect("the held connection ends within 120 s of the restart");
    let frame = ended.expect("a close frame").expect("with a code");
    eprintln!("held connection closed by the restart: {frame:?}");
    assert_ne!(u16::from(frame.code), 1006);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let again = phone
            .connect(
                &door,
                &gateway_token,
                false,
                Some("203.0.113.50"),
                Some(&host),
            )
            .await;
        if matches!(again, Outcome::HelloOk { .. }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reconnect within 120 s of the restart: {again:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The door counts what it did.
    let metrics = client
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["forwarded", "websocket", "not_found", "refused"] {
        assert!(
            metrics.contains(&format!(
                "clawplane_ingress_requests_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome} counted: {metrics}"
        );
    }

    // Deleted: the door closes.
    let (status, _) = api.call(Method::DELETE, "/api/openclaw/instance").await;
    assert_eq!(status, 200);
    let (status, page) = get_as(&client, &server, &host, "/").await;
    assert_eq!(status, 404, "{page}");

    // No token in any log line.
    let mut logs = server.stderr();
    for entry in walk(&data_dir) {
        if entry.extension().is_some_and(|e| e == "log") {
            logs.push_str(&std::fs::read_to_string(&entry).unwrap_or_default());
        }
    }
    assert!(!logs.is_empty());
    assert!(
        !logs.contains(&gateway_token),
        "the gateway token is in a log"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
