//! Signing the instance's owner in to their gateway, for the Control UI
//! (and the console's chat) behind `serve`'s door: `serve` has checked the
//! owner's console session and says so with `X-OpenAgents-Gateway-Owner`
//! (`clawplane_http::v1::headers::GATEWAY_OWNER`).
//!
//! The browser never holds the gateway token. Instead the runtime:
//! - on HTTP, sends the request as a direct local client with
//!   `Authorization: Bearer <gateway token>`;
//! - on the WebSocket, reads the gateway's `connect.challenge`, and rewrites
//!   the browser's `connect` request: `auth` becomes the gateway token and
//!   `device` becomes the runtime's *owner device*
//!   ([`DeviceIdentity::owner_device`]) signed over that challenge. As a
//!   direct local client the gateway pairs that device by itself. The
//!   `hello-ok` answer loses its device token on the way back, so no gateway
//!   credential reaches the browser. After `hello-ok`, messages pass
//!   unchanged.

use clawplane_proxy::{Message, MessageFilter};
use clawplane_secrets::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::gateway::device_identity::{DeviceIdentity, SignedFields};

/// The connect rewrite of one owner WebSocket.
pub struct OwnerSignIn {
    device: DeviceIdentity,
    token: SecretString,
    nonce: Option<String>,
    connect_id: Option<String>,
    signed_in: bool,
}

impl OwnerSignIn {
    /// A rewrite signing in with `token` and the owner device of that token.
    pub fn new(token: SecretString) -> Self {
        OwnerSignIn {
            device: DeviceIdentity::owner_device(&token),
            token,
            nonce: None,
            connect_id: None,
            signed_in: false,
        }
    }

    /// The browser's `connect` request, signed in as the owner; `None` when
    /// `frame` is not a `connect` request (passed unchanged).
    fn rewrite_connect(&mut self, frame: &str, now_ms: i64) -> Option<String> {
        let mut request: Value = serde_json::from_str(frame).ok()?;
        if request["type"] != "req" || request["method"] != "connect" {
            return None;
        }
        let nonce = self.nonce.clone()?;
        let params = request.get_mut("params")?.as_object_mut()?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
        let client = params.get("client").cloned().unwrap_or(Value::Null);
        let role = match text(params.get("role")) {
            r if r.is_empty() => "operator".to_owned(),
            r => r,
        };
        let scopes: Vec<String> = params
            .get("scopes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let token = self.token.expose_secret();
        let signature = self.device.sign(&self.device.payload_v3(&SignedFields {
            client_id: &text(client.get("id")),
            client_mode: &text(client.get("mode")),
            role: &role,
            scopes: &scopes,
            signed_at_ms: now_ms,
            token,
            nonce: &nonce,
            platform: &text(client.get("platform")),
            device_family: &text(client.get("deviceFamily")),
        }));
        params.insert("role".into(), json!(role));
        params.insert("scopes".into(), json!(scopes));
        params.insert("auth".into(), json!({ "token": token }));
        params.insert(
            "device".into(),
            json!({
                "id": self.device.device_id,
                "publicKey": self.device.public_key,
                "signature": signature,
                "signedAt": now_ms,
                "nonce": nonce,
            }),
        );
        self.connect_id = request["id"].as_str().map(str::to_owned);
        Some(request.to_string())
    }

    /// A gateway frame during sign-in: the challenge is noted, the answer to
    /// the connect request loses its credentials. `None`: pass unchanged.
    fn read_gateway_frame(&mut self, frame: &str) -> Option<String> {
        let mut value: Value = serde_json::from_str(frame).ok()?;
        if value["type"] == "event" && value["event"] == "connect.challenge" {
            self.nonce = value["payload"]["nonce"].as_str().map(str::to_owned);
            return None;
        }
        let id = self.connect_id.as_deref()?;
        if value["type"] != "res" || value["id"] != id {
            return None;
        }
        self.signed_in = value["ok"] == true;
        if let Some(auth) = value
            .get_mut("payload")
            .and_then(|p| p.get_mut("auth"))
            .and_then(Value::as_object_mut)
        {
            for key in ["deviceToken", "deviceTokens", "token", "bootstrapToken"] {
                auth.remove(key);
            }
        }
        Some(value.to_string())
    }
}

impl MessageFilter for OwnerSignIn {
    fn client_message(&mut self, message: Message) -> Option<Message> {
        if self.signed_in {
            return Some(message);
        }
        match &message {
            Message::Text(text) => {
                let now = chrono::Utc::now().timestamp_millis();
                match self.rewrite_connect(text, now) {
                    Some(rewritten) => Some(Message::Text(rewritten)),
                    None => Some(message),
                }
            }
            _ => Some(message),
        }
    }

    fn upstream_message(&mut self, message: Message) -> Option<Message> {
        if self.signed_in {
            return Some(message);
        }
        match &message {
            Message::Text(text) => match self.read_gateway_frame(text) {
                Some(changed) => Some(Message::Text(changed)),
                None => Some(message),
            },
            _ => Some(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "gateway-token-of-the-test-0123456789";

    fn text(m: Option<Message>) -> Value {
        match m {
            Some(Message::Text(t)) => serde_json::from_str(&t).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn the_browsers_connect_is_signed_in_as_the_owner_device() {
        let mut f = OwnerSignIn::new(SecretString::from(TOKEN.to_owned()));
        let challenge =
            json!({"type":"event","event":"connect.challenge","payload":{"nonce":"n-1","ts":1}});
        let passed = text(f.upstream_message(Message::Text(challenge.to_string())));
        assert_eq!(passed, challenge, "the challenge passes unchanged");

        let browser = json!({"type":"req","id":"c1","method":"connect","params":{
            "client":{"id":"openclaw-control-ui","mode":"webchat","platform":"Linux x86_64"},
            "role":"operator","scopes":["operator.admin","operator.read"],
            "auth":{"token":""},
            "device":{"id":"browser","publicKey":"k","signature":"s","signedAt":1,"nonce":"n-1"}}});
        let sent = text(f.client_message(Message::Text(browser.to_string())));
        assert_eq!(sent["params"]["auth"], json!({"token": TOKEN}));
        let device = &sent["params"]["device"];
        let owner = DeviceIdentity::owner_device(&SecretString::from(TOKEN.to_owned()));
        assert_eq!(device["id"], owner.device_id.as_str());
        assert_eq!(device["nonce"], "n-1");
        let signed_at = device["signedAt"].as_i64().unwrap();
        let payload = owner.payload_v3(&SignedFields {
            client_id: "openclaw-control-ui",
            client_mode: "webchat",
            role: "operator",
            scopes: &["operator.admin".to_owned(), "operator.read".to_owned()],
            signed_at_ms: signed_at,
            token: TOKEN,
            nonce: "n-1",
            platform: "linux x86_64",
            device_family: "",
        });
        assert_eq!(device["signature"], owner.sign(&payload).as_str());
        assert_eq!(sent["params"]["client"], browser["params"]["client"]);

        let hello = json!({"type":"res","id":"c1","ok":true,"payload":{"type":"hello-ok",
            "auth":{"role":"operator","scopes":["operator.admin"],"deviceToken":"issued-device-token"}}});
        let back = text(f.upstream_message(Message::Text(hello.to_string())));
        assert!(!back.to_string().contains("issued-device-token"), "{back}");
        assert_eq!(back["payload"]["auth"]["scopes"], json!(["operator.admin"]));

        // Signed in: later messages pass unchanged, in both directions.
        let later = Message::Text(r#"{"type":"req","id":"2","method":"connect"}"#.into());
        assert_eq!(f.client_message(later.clone()), Some(later));
    }

    #[test]
    fn without_a_challenge_nothing_is_signed() {
        let mut f = OwnerSignIn::new(SecretString::from(TOKEN.to_owned()));
        let browser = json!({"type":"req","id":"c1","method":"connect","params":{}});
        let sent = text(f.client_message(Message::Text(browser.to_string())));
        assert_eq!(
            sent, browser,
            "no nonce seen: passed unchanged, the gateway refuses it"
        );
        let other = Message::Binary(vec![1, 2, 3]);
        assert_eq!(f.client_message(other.clone()), Some(other));
    }
}
