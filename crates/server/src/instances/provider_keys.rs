//! The user's model provider keys: environment variable names and values,
//! sealed as the instance's `provider_keys` secret. Names are listed, values
//! never returned; a running runtime is restarted so its gateway gets them.

use std::collections::BTreeMap;

use clawplane_domain::{Instance, InstanceStatus, ProviderKeyName, SecretName, UserId};
use clawplane_secrets::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::InstanceError;
use super::{Instances, MAX_PROVIDER_KEYS, MAX_PROVIDER_KEY_LEN};

impl Instances {
    /// The names of the user's stored provider keys (never their values).
    pub async fn provider_key_names(&self, user: &UserId) -> Result<Vec<String>, InstanceError> {
        let instance = self.live(user).await?;
        let stored = self
            .inner
            .vault
            .get(instance.id, SecretName::ProviderKeys)
            .await?;
        Ok(stored
            .and_then(|s| serde_json::from_str::<BTreeMap<String, Value>>(s.expose_secret()).ok())
            .map(|m| m.into_keys().collect())
            .unwrap_or_default())
    }

    /// Replaces (or with `None` removes) the user's provider keys and
    /// restarts a running runtime in the background so its gateway gets them.
    pub async fn set_provider_keys(
        &self,
        user: &UserId,
        keys: Option<BTreeMap<String, SecretString>>,
    ) -> Result<Value, InstanceError> {
        let instance = self.live(user).await?;
        let names: Vec<String> = keys.iter().flat_map(|k| k.keys().cloned()).collect();
        match keys.filter(|k| !k.is_empty()) {
            Some(keys) => {
                validate_provider_keys(&keys)?;
                let object: serde_json::Map<String, Value> = keys
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.expose_secret().to_owned())))
                    .collect();
                let sealed = SecretString::from(Value::Object(object).to_string());
                self.inner
                    .vault
                    .put(instance.id, SecretName::ProviderKeys, &sealed)
                    .await?;
            }
            None => {
                self.inner
                    .store
                    .clear_secret(instance.id, SecretName::ProviderKeys)
                    .await?;
            }
        }
        let applying = matches!(
            instance.status,
            InstanceStatus::Ready | InstanceStatus::Stopped
        );
        if applying {
            let this = self.clone();
            self.inner
                .tasks
                .spawn(async move { this.restart_with_new_keys(instance).await });
        }
        Ok(json!({ "names": names, "restarting": applying }))
    }

    /// Adds or replaces some of the user's provider keys, keeping the others.
    pub async fn merge_provider_keys(
        &self,
        user: &UserId,
        keys: BTreeMap<String, SecretString>,
    ) -> Result<Value, InstanceError> {
        let instance = self.live(user).await?;
        let stored = self
            .inner
            .vault
            .get(instance.id, SecretName::ProviderKeys)
            .await?;
        let mut merged: BTreeMap<String, SecretString> = stored
            .and_then(|s| serde_json::from_str(s.expose_secret()).ok())
            .unwrap_or_default();
        merged.extend(keys);
        self.set_provider_keys(user, Some(merged)).await
    }

    async fn restart_with_new_keys(&self, instance: Instance) {
        let secrets = match self.runtime_secrets(&instance).await {
            Ok(s) => s,
            Err(e) => {
                return tracing::warn!(instance = %instance.id, error = %e, "cannot read the runtime's secrets")
            }
        };
        match self.inner.provisioner.restart(&instance, &secrets).await {
            Ok(fields) => {
                match self
                    .inner
                    .store
                    .update_instance_fields(instance.id, &fields)
                    .await
                {
                    Ok(updated) if instance.status == InstanceStatus::Stopped => {
                        self.keep_stopped(&updated).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(instance = %instance.id, error = %e, "cannot record the restarted runtime")
                    }
                }
                tracing::info!(instance = %instance.id, "runtime restarted with new provider keys");
            }
            Err(e) => tracing::warn!(instance = %instance.id, error = %e, "runtime not restarted"),
        }
    }
}

/// Provider keys are environment variable names with non-empty values, both
/// bounded. Names follow the one rule the runtime applies too
/// ([`ProviderKeyName`]): a reserved name is refused here, with the list of
/// reserved names, rather than stopping the gateway at its next start.
pub fn validate_provider_keys(keys: &BTreeMap<String, SecretString>) -> Result<(), InstanceError> {
    if keys.len() > MAX_PROVIDER_KEYS {
        return Err(InstanceError::InvalidProviderKeys(format!(
            "at most {MAX_PROVIDER_KEYS} provider keys"
        )));
    }
    for (name, value) in keys {
        ProviderKeyName::parse(name)
            .map_err(|e| InstanceError::InvalidProviderKeys(e.to_string()))?;
        let v = value.expose_secret();
        if v.trim().is_empty() || v.len() > MAX_PROVIDER_KEY_LEN || v.chars().any(char::is_control)
        {
            return Err(InstanceError::InvalidProviderKeys(format!(
                "the value of {name} must be 1-{MAX_PROVIDER_KEY_LEN} printable characters"
            )));
        }
    }
    Ok(())
}
