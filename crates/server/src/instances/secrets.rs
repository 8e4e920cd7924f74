//! The operator's reads and writes of an instance's secrets (the control
//! routes): checked by the rules first, then audited, then done, so a
//! refused call leaves no trace and every read or write has its record.

use std::collections::BTreeMap;

use clawplane_domain::{SecretName, UserId};
use clawplane_secrets::{ExposeSecret, SecretString};
use clawplane_store::NewAudit;

use super::{validate_provider_keys, InstanceError, Instances};

/// A secret's new value, as the caller sent it.
pub enum SecretValue {
    /// A token (`service_token`, `gateway_token`).
    Token(SecretString),
    /// Provider keys: environment variable names and values.
    ProviderKeys(BTreeMap<String, SecretString>),
}

/// Who asks, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// `control`, `user`, `system`.
    pub kind: &'a str,
    /// The request's id, when it has one.
    pub request_id: Option<&'a str>,
}

impl Instances {
    /// The plaintext of one secret of the user's live instance, audited
    /// before it is read; [`InstanceError::SecretNotSet`] without one.
    pub async fn read_secret(
        &self,
        user: &UserId,
        name: SecretName,
        by: Actor<'_>,
    ) -> Result<SecretString, InstanceError> {
        let instance = self.live(user).await?;
        self.audit(by, "secret.read", user, &instance.id.to_string(), name)
            .await?;
        self.inner
            .vault
            .get(instance.id, name)
            .await?
            .ok_or(InstanceError::SecretNotSet(name))
    }

    /// Seals and stores one secret of the user's live instance (provider
    /// keys restart a running runtime, as the user's own change does),
    /// audited before it is written. A value the rules refuse changes
    /// nothing and leaves no audit record.
    pub async fn write_secret(
        &self,
        user: &UserId,
        name: SecretName,
        value: SecretValue,
        by: Actor<'_>,
    ) -> Result<(), InstanceError> {
        match (&value, name) {
            (_, SecretName::ModelToken) => {
                return Err(InstanceError::InvalidSecret(
                    "the model token is serve's own: it is made when the instance is provisioned",
                ))
            }
            (SecretValue::ProviderKeys(keys), SecretName::ProviderKeys) => {
                validate_provider_keys(keys)?
            }
            (SecretValue::Token(token), SecretName::ServiceToken | SecretName::GatewayToken) => {
                let t = token.expose_secret();
                if t.len() < 16 || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(InstanceError::InvalidSecret(
                        "a token must be at least 16 printable characters without spaces",
                    ));
                }
            }
            (SecretValue::Token(_), SecretName::ProviderKeys) => {
                return Err(InstanceError::InvalidSecret(
                    "provider_keys must be a JSON object of names and string values",
                ))
            }
            (SecretValue::ProviderKeys(_), _) => {
                return Err(InstanceError::InvalidSecret("a token must be a string"))
            }
        }
        let instance = self.live(user).await?;
        self.audit(by, "secret.write", user, &instance.id.to_string(), name)
            .await?;
        match value {
            SecretValue::ProviderKeys(keys) => {
                self.set_provider_keys(user, Some(keys)).await?;
            }
            SecretValue::Token(token) => self.inner.vault.put(instance.id, name, &token).await?,
        }
        Ok(())
    }

    async fn audit(
        &self,
        by: Actor<'_>,
        action: &str,
        user: &UserId,
        instance_id: &str,
        name: SecretName,
    ) -> Result<(), InstanceError> {
        self.inner
            .store
            .audit(NewAudit {
                actor: by.kind,
                action,
                user_id: user,
                instance_id: Some(instance_id.to_owned()),
                subject: Some(name.as_str()),
                request_id: by.request_id,
            })
            .await?;
        Ok(())
    }
}
