//! The instance record: the seed's `openclaw_instances` row, without secrets.
//!
//! Secrets (service token, gateway token, provider keys) are never part of an
//! [`Instance`]: the store hands them out only through its secret methods, so a
//! serialised instance cannot leak one. [`Instance::has_secret`] says which exist.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{InstanceId, InstanceStatus, UserId};

/// The secrets an instance owns, each stored encrypted in its own columns
/// (`<name>_encrypted`, `<name>_iv`, `<name>_alg`, `<name>_key_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretName {
    /// The token the control plane presents to the runtime agent.
    ServiceToken,
    /// The token the runtime agent presents to the OpenClaw gateway.
    GatewayToken,
    /// The user's model provider keys, as a JSON object.
    ProviderKeys,
    /// The token the instance's gateway presents to `serve`'s model proxy
    /// (its digest is stored too, to find the caller).
    ModelToken,
}

impl SecretName {
    /// Every secret name.
    pub const ALL: [SecretName; 4] = [
        SecretName::ServiceToken,
        SecretName::GatewayToken,
        SecretName::ProviderKeys,
        SecretName::ModelToken,
    ];

    /// The column prefix and the name bound into the ciphertext.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecretName::ServiceToken => "service_token",
            SecretName::GatewayToken => "gateway_token",
            SecretName::ProviderKeys => "provider_keys",
            SecretName::ModelToken => "model_token",
        }
    }

    /// Parses the name of a secret the operator may read or write
    /// (`service_token`, `gateway_token`, `provider_keys`), trimmed and
    /// case-insensitive. The model token is `serve`'s own: written only
    /// with its digest, never by name.
    pub fn parse(input: &str) -> Option<Self> {
        let wanted = input.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .filter(|n| *n != SecretName::ModelToken)
            .find(|n| n.as_str() == wanted)
    }
}

/// An OpenClaw instance as the control plane knows it.
///
/// Timestamps are UTC and serialise as milliseconds since the epoch, as the
/// seed's Convex rows did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Primary key.
    pub id: InstanceId,
    /// The owner. At most one live (not deleted) instance per user.
    pub user_id: UserId,
    /// Lifecycle state; changed only through the transition table.
    pub status: InstanceStatus,
    /// Why the instance is in its status (an error, a billing stop), for people.
    pub status_reason: Option<String>,
    /// Base URL of the runtime agent's `/v1` API.
    pub runtime_url: Option<String>,
    /// DNS-safe runtime name, also the ingress host label.
    pub runtime_name: Option<String>,
    /// Which provisioner created the runtime (`local`, `static`).
    pub provisioner: Option<String>,
    /// The runtime's instance type, as the runtime reports it.
    pub instance_type: Option<String>,
    /// Cloudflare account id (static provisioner, seed field).
    pub cf_account_id: Option<String>,
    /// Cloudflare worker name (seed field).
    pub cf_worker_name: Option<String>,
    /// Cloudflare worker id (seed field).
    pub cf_worker_id: Option<String>,
    /// Cloudflare container application id (seed field).
    pub cf_container_app_id: Option<String>,
    /// Cloudflare container application name (seed field).
    pub cf_container_app_name: Option<String>,
    /// Backup bucket name (seed field).
    pub r2_bucket_name: Option<String>,
    /// Which secrets are stored (never their values).
    pub secrets: Vec<SecretName>,
    /// Creation time.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub created_at: DateTime<Utc>,
    /// Last change of any field.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub updated_at: DateTime<Utc>,
    /// Last transition into `ready`.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub last_ready_at: Option<DateTime<Utc>>,
}

impl Instance {
    /// Whether the named secret is stored for this instance.
    pub fn has_secret(&self, name: SecretName) -> bool {
        self.secrets.contains(&name)
    }
}

/// The non-secret fields a provisioner may set on an instance. `None` leaves a
/// field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceFields {
    /// See [`Instance::runtime_url`].
    pub runtime_url: Option<String>,
    /// See [`Instance::runtime_name`].
    pub runtime_name: Option<String>,
    /// See [`Instance::provisioner`].
    pub provisioner: Option<String>,
    /// See [`Instance::instance_type`].
    pub instance_type: Option<String>,
    /// See [`Instance::cf_account_id`].
    pub cf_account_id: Option<String>,
    /// See [`Instance::cf_worker_name`].
    pub cf_worker_name: Option<String>,
    /// See [`Instance::cf_worker_id`].
    pub cf_worker_id: Option<String>,
    /// See [`Instance::cf_container_app_id`].
    pub cf_container_app_id: Option<String>,
    /// See [`Instance::cf_container_app_name`].
    pub cf_container_app_name: Option<String>,
    /// See [`Instance::r2_bucket_name`].
    pub r2_bucket_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serialised_instance_names_its_secrets_but_holds_none() {
        let now = Utc::now();
        let instance = Instance {
            id: InstanceId::new(),
            user_id: UserId::parse("u1").unwrap(),
            status: InstanceStatus::Ready,
            status_reason: None,
            runtime_url: Some("http://127.0.0.1:8787".into()),
            runtime_name: Some("oc-u1".into()),
            provisioner: Some("local".into()),
            instance_type: None,
            cf_account_id: None,
            cf_worker_name: None,
            cf_worker_id: None,
            cf_container_app_id: None,
            cf_container_app_name: None,
            r2_bucket_name: None,
            secrets: vec![SecretName::ServiceToken],
            created_at: now,
            updated_at: now,
            last_ready_at: Some(now),
        };
        let json = serde_json::to_value(&instance).unwrap();
        assert_eq!(json["status"], "ready");
        assert_eq!(json["secrets"][0], "service_token");
        assert_eq!(json["created_at"], now.timestamp_millis());
        assert!(json.get("service_token_encrypted").is_none());
        assert!(instance.has_secret(SecretName::ServiceToken));
        assert!(!instance.has_secret(SecretName::GatewayToken));
    }

    #[test]
    fn secret_names_parse_leniently() {
        assert_eq!(
            SecretName::parse(" Service_Token "),
            Some(SecretName::ServiceToken)
        );
        assert_eq!(SecretName::parse("password"), None);
    }
}
