//! A test device for real gateways: a fresh Ed25519 identity that connects to a gateway over
//! its WebSocket protocol (v4) like a phone app or a CLI node would, through
//! a trusted-proxy hop on loopback that presents a documentation address
//! (203.0.113.0/24) in `X-Forwarded-For`. Nothing leaves loopback.

#![allow(missing_docs)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A connection to a gateway.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A device identity.
pub struct TestDevice {
    key: SigningKey,
    pub device_id: String,
    pub public_key: String,
    pub display_name: String,
}

#[derive(Debug)]
/// How a connection attempt ended.
pub enum Outcome {
    /// Connected; the gateway issued a device token.
    HelloOk { device_token: Option<String> },
    /// Pairing required: a pending request was recorded.
    NotPaired { request_id: String },
    /// Anything else (shown in failure messages).
    Refused {
        #[allow(dead_code)]
        code: String,
        #[allow(dead_code)]
        message: String,
    },
}

impl TestDevice {
    pub fn new(display_name: &str) -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        Self::from_seed(seed, display_name)
    }

    pub fn from_seed(seed: [u8; 32], display_name: &str) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        TestDevice {
            device_id: hex::encode(Sha256::digest(public)),
            public_key: URL_SAFE_NO_PAD.encode(public),
            key,
            display_name: display_name.to_owned(),
        }
    }

    /// The v3 payload the gateway verifies (see docs/research/openclaw-2026.9.6.md §5.2).
    #[allow(clippy::too_many_arguments)]
    pub fn payload_v3(
        &self,
        client_id: &str,
        mode: &str,
        role: &str,
        scopes: &[&str],
        signed_at: i64,
        token: &str,
        nonce: &str,
        platform: &str,
    ) -> String {
        let platform = platform.trim().to_ascii_lowercase();
        format!(
            "v3|{}|{client_id}|{mode}|{role}|{}|{signed_at}|{token}|{nonce}|{platform}|",
            self.device_id,
            scopes.join(",")
        )
    }

    pub fn sign(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes())
    }

    /// Connects to `ws://<host>:<port>/` presenting `token` (the gateway token
    /// or an issued device token), as the client at `forwarded_for`.
    pub async fn connect(
        &self,
        url: &str,
        token: &str,
        token_is_device_token: bool,
        forwarded_for: Option<&str>,
        host: Option<&str>,
    ) -> Outcome {
        let fut = self.connect_inner(url, token, token_is_device_token, forwarded_for, host);
        match tokio::time::timeout(std::time::Duration::from_secs(30), fut).await {
            Ok((outcome, ws)) => {
                if let Some(mut ws) = ws {
                    let _ = ws.close(None).await;
                }
                outcome
            }
            Err(_) => Outcome::Refused {
                code: "TIMEOUT".into(),
                message: "no answer in 30 s".into(),
            },
        }
    }

    /// Connects as [`TestDevice::connect`] and, once the gateway said
    /// `hello-ok`, keeps the connection open for the caller.
    pub async fn open(
        &self,
        url: &str,
        token: &str,
        forwarded_for: Option<&str>,
        host: Option<&str>,
    ) -> Result<Ws, Outcome> {
        let fut = self.connect_inner(url, token, false, forwarded_for, host);
        match tokio::time::timeout(std::time::Duration::from_secs(30), fut).await {
            Ok((Outcome::HelloOk { .. }, Some(ws))) => Ok(ws),
            Ok((outcome, _)) => Err(outcome),
            Err(_) => Err(Outcome::Refused {
                code: "TIMEOUT".into(),
                message: "no answer in 30 s".into(),
            }),
        }
    }

    async fn connect_inner(
        &self,
        url: &str,
        token: &str,
        token_is_device_token: bool,
        forwarded_for: Option<&str>,
        host: Option<&str>,
    ) -> (Outcome, Option<Ws>) {
        let mut request = url.into_client_request().expect("a ws:// url");
        if let Some(xff) = forwarded_for {
            request
                .headers_mut()
                .insert("x-forwarded-for", xff.parse().unwrap());
        }
        if let Some(host) = host {
            request.headers_mut().insert("host", host.parse().unwrap());
        }
        let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => ok,
            Err(e) => {
                let refused = Outcome::Refused {
                    code: "CONNECT".into(),
                    message: e.to_string(),
                };
                return (refused, None);
            }
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        for _ in 0..100 {
            let Some(Ok(message)) = ws.next().await else {
                let closed = Outcome::Refused {
                    code: "CLOSED".into(),
                    message: "closed before answering".into(),
                };
                return (closed, None);
            };
            let Message::Text(text) = message else {
                continue;
            };
            let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if frame["type"] == "event" && frame["event"] == "connect.challenge" {
                let nonce = frame["payload"]["nonce"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let ts = frame["payload"]["ts"].as_i64().unwrap_or_default();
                let scopes = ["operator.read"];
                let payload = self.payload_v3(
                    "cli", "cli", "operator", &scopes, ts, token, &nonce, "linux",
                );
                let auth = if token_is_device_token {
                    json!({"deviceToken": token})
                } else {
                    json!({"token": token})
                };
                let connect = json!({
                    "type": "req", "id": request_id, "method": "connect",
                    "params": {
                        "minProtocol": 4, "maxProtocol": 4,
                        "client": {"id": "cli", "displayName": self.display_name, "version": "0.0.1", "platform": "linux", "mode": "cli"},
                        "role": "operator", "scopes": scopes, "caps": [], "auth": auth,
                        "locale": "en-US", "userAgent": "clawplane-test-device/0.0.1",
                        "device": {"id": self.device_id, "publicKey": self.public_key, "signature": self.sign(&payload), "signedAt": ts, "nonce": nonce},
                    }
                });
                ws.send(Message::Text(connect.to_string()))
                    .await
                    .expect("send connect");
                continue;
            }
            if frame["type"] == "res" && frame["id"] == request_id.as_str() {
                if frame["ok"] == true {
                    let hello = Outcome::HelloOk {
                        device_token: frame["payload"]["auth"]["deviceToken"]
                            .as_str()
                            .map(str::to_owned),
                    };
                    return (hello, Some(ws));
                }
                let _ = ws.close(None).await;
                let code = frame["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if code == "NOT_PAIRED" {
                    if let Some(id) = frame["error"]["details"]["requestId"].as_str() {
                        let pending = Outcome::NotPaired {
                            request_id: id.to_owned(),
                        };
                        return (pending, None);
                    }
                }
                let refused = Outcome::Refused {
                    code,
                    message: frame["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                };
                return (refused, None);
            }
        }
        let silent = Outcome::Refused {
            code: "NO_ANSWER".into(),
            message: "no connect response in 100 frames".into(),
        };
        (silent, None)
    }
}

#[test]
fn the_signed_payload_matches_the_reference_vector() {
    let device = TestDevice::from_seed([7u8; 32], "vector");
    assert_eq!(
        device.public_key,
        "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw"
    );
    assert_eq!(
        device.device_id,
        "fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889"
    );
    let payload = device.payload_v3(
        "cli",
        "cli",
        "operator",
        &["operator.read"],
        1795498000000,
        "example-gateway-token",
        "3f1c9a52-0000-4000-8000-000000000001",
        "Linux",
    );
    assert_eq!(payload, "v3|fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889|cli|cli|operator|operator.read|1795498000000|example-gateway-token|3f1c9a52-0000-4000-8000-000000000001|linux|");
    assert_eq!(
        device.sign(&payload),
        "1aFFJrtNIimyk_75kpPbfCaMHXmHGZ_M0aKgHyPlUH_koINYmBtpXqKefKs0IZqJ41eVafBySgXQg1ZNLkarDg"
    );
}
