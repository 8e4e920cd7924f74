//! A device identity of the gateway's pairing protocol (v4): an Ed25519
//! key, its device id (hex SHA-256 of the public key) and the v3 payload a
//! device signs in its `connect` request (docs/research/openclaw-2026.9.6.md
//! §5.2).
//!
//! The runtime holds one of its own, the *owner's device*, to sign its
//! instance's owner in to the Control UI: it is derived from the gateway
//! token, so it survives restarts without a file and changes when the token
//! does.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clawplane_secrets::{ExposeSecret, SecretString};
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// An Ed25519 device identity.
pub struct DeviceIdentity {
    key: SigningKey,
    /// Hex SHA-256 of the public key.
    pub device_id: String,
    /// The public key, base64url without padding.
    pub public_key: String,
}

/// What a `connect` request's signature covers, besides the identity.
pub struct SignedFields<'a> {
    /// `client.id`.
    pub client_id: &'a str,
    /// `client.mode`.
    pub client_mode: &'a str,
    /// `role`.
    pub role: &'a str,
    /// `scopes`, in the request's order.
    pub scopes: &'a [String],
    /// `device.signedAt`, milliseconds.
    pub signed_at_ms: i64,
    /// The credential in `auth` (gateway or device token).
    pub token: &'a str,
    /// The nonce of the gateway's `connect.challenge`.
    pub nonce: &'a str,
    /// `client.platform`.
    pub platform: &'a str,
    /// `client.deviceFamily`.
    pub device_family: &'a str,
}

impl DeviceIdentity {
    /// The identity of a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        DeviceIdentity {
            device_id: hex::encode(Sha256::digest(public)),
            public_key: URL_SAFE_NO_PAD.encode(public),
            key,
        }
    }

    /// The owner's device of the gateway with this token.
    pub fn owner_device(gateway_token: &SecretString) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"clawplane owner device v1\0");
        hash.update(gateway_token.expose_secret().as_bytes());
        Self::from_seed(hash.finalize().into())
    }

    /// The v3 payload the gateway verifies.
    pub fn payload_v3(&self, f: &SignedFields<'_>) -> String {
        format!(
            "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.device_id,
            f.client_id,
            f.client_mode,
            f.role,
            f.scopes.join(","),
            f.signed_at_ms,
            f.token,
            f.nonce,
            normalize(f.platform),
            normalize(f.device_family),
        )
    }

    /// The signature of `payload`, base64url without padding.
    pub fn sign(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes())
    }
}

/// The gateway's normalisation of platform and device family: trimmed,
/// ASCII capitals lowered.
fn normalize(value: &str) -> String {
    value.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference vector of the test device (crates/testkit/src/device.rs),
    /// verified against a real gateway.
    #[test]
    fn the_signed_payload_matches_the_reference_vector() {
        let device = DeviceIdentity::from_seed([7u8; 32]);
        assert_eq!(
            device.device_id,
            "fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889"
        );
        let payload = device.payload_v3(&SignedFields {
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &["operator.read".to_owned()],
            signed_at_ms: 1795498000000,
            token: "example-gateway-token",
            nonce: "3f1c9a52-0000-4000-8000-000000000001",
            platform: " Linux",
            device_family: "",
        });
        assert_eq!(payload, "v3|fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889|cli|cli|operator|operator.read|1795498000000|example-gateway-token|3f1c9a52-0000-4000-8000-000000000001|linux|");
        assert_eq!(
            device.sign(&payload),
            "1aFFJrtNIimyk_75kpPbfCaMHXmHGZ_M0aKgHyPlUH_koINYmBtpXqKefKs0IZqJ41eVafBySgXQg1ZNLkarDg"
        );
    }

    #[test]
    fn the_owner_device_follows_the_gateway_token() {
        let a = DeviceIdentity::owner_device(&SecretString::from("token-a".to_owned()));
        let a2 = DeviceIdentity::owner_device(&SecretString::from("token-a".to_owned()));
        let b = DeviceIdentity::owner_device(&SecretString::from("token-b".to_owned()));
        assert_eq!(a.device_id, a2.device_id);
        assert_ne!(a.device_id, b.device_id);
        assert!(!a.public_key.contains("token"));
    }
}
