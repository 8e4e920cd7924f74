//! The only place where secret plaintext meets storage.
//!
//! [`Vault`] seals on the way in and opens on the way out, binding each
//! ciphertext to `openclaw_instances`, the instance id and the secret name.
//! [`Vault::rotate`] re-encrypts every secret that is not under the current
//! key, one compare-and-swap at a time, so it is safe while the server runs.

use clawplane_domain::{InstanceId, SecretName};
use clawplane_secrets::{DecryptError, ExposeSecret, KeyRing, SecretContext, SecretString};

use crate::{Store, StoreError};

const TABLE: &str = "openclaw_instances";

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Decryption failed.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
}

/// What a rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// Secrets re-encrypted under the current key.
    pub reencrypted: usize,
    /// Secrets changed by someone else meanwhile (already current: skipped).
    pub skipped_concurrent: usize,
    /// Secrets that could not be decrypted with any configured key.
    pub failed: Vec<String>,
}

/// Store plus key ring: plaintext secrets in and out.
#[derive(Clone, Debug)]
pub struct Vault {
    store: Store,
    keys: KeyRing,
}

impl Vault {
    /// A vault over `store` using `keys`.
    pub fn new(store: Store, keys: KeyRing) -> Self {
        Vault { store, keys }
    }

    /// The key ring in use.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Seals and stores a secret of an instance.
    pub async fn put(
        &self,
        id: InstanceId,
        name: SecretName,
        value: &SecretString,
    ) -> Result<(), StoreError> {
        let row = id.to_string();
        let sealed = self.keys.seal(context(&row, name), value);
        self.store.put_secret(id, name, &sealed).await
    }

    /// Seals and stores the instance's model token with its digest (the
    /// model proxy's lookup), replacing an earlier one.
    pub async fn put_model_token(
        &self,
        id: InstanceId,
        token: &SecretString,
    ) -> Result<(), StoreError> {
        let row = id.to_string();
        let sealed = self.keys.seal(context(&row, SecretName::ModelToken), token);
        let digest = clawplane_secrets::token_digest(token.expose_secret());
        self.store.put_model_token(id, &sealed, &digest).await
    }

    /// Reads and opens a secret of an instance; `None` when not stored.
    pub async fn get(
        &self,
        id: InstanceId,
        name: SecretName,
    ) -> Result<Option<SecretString>, VaultError> {
        let Some(sealed) = self.store.get_secret(id, name).await? else {
            return Ok(None);
        };
        let row = id.to_string();
        Ok(Some(self.keys.open(context(&row, name), &sealed)?))
    }

    /// Re-encrypts every secret not under the current key.
    pub async fn rotate(&self) -> Result<RotationReport, StoreError> {
        let mut report = RotationReport::default();
        let current = self.keys.current().id().as_str().to_owned();
        for secret in self.store.secrets_not_under_key(&current).await? {
            let label = format!("{}/{}", secret.instance_id, secret.name.as_str());
            let Some(old) = self
                .store
                .get_secret(secret.instance_id, secret.name)
                .await?
            else {
                continue;
            };
            if !self.keys.is_stale(&old) {
                report.skipped_concurrent += 1;
                continue;
            }
            let row = secret.instance_id.to_string();
            let ctx = context(&row, secret.name);
            let plain = match self.keys.open(ctx, &old) {
                Ok(plain) => plain,
                Err(e) => {
                    tracing::warn!(secret = %label, error = %e, "cannot re-encrypt secret");
                    report.failed.push(label);
                    continue;
                }
            };
            let new = self.keys.seal(ctx, &plain);
            if self
                .store
                .replace_secret_if_unchanged(secret.instance_id, secret.name, &old, &new)
                .await?
            {
                report.reencrypted += 1;
            } else {
                report.skipped_concurrent += 1;
            }
        }
        Ok(report)
    }
}

fn context(row: &str, name: SecretName) -> SecretContext<'_> {
    SecretContext {
        table: TABLE,
        row_id: row,
        name: name.as_str(),
    }
}
