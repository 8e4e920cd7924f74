//! Sealed secret columns of `openclaw_instances`.
//!
//! Each secret has four columns named after it (`<name>_encrypted`, `<name>_iv`,
//! `<name>_alg`, `<name>_key_id`, the seed's names plus the key id). Column
//! names come from [`SecretName::as_str`], a closed set, never from input.

use clawplane_domain::{InstanceId, SecretName};
use clawplane_secrets::SealedSecret;
use sqlx::Row;

use crate::time::{now, to_millis};
use crate::{Store, StoreError};

/// One stored secret's identity and key, for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The instance holding it.
    pub instance_id: InstanceId,
    /// Which secret.
    pub name: SecretName,
    /// The key id that sealed it.
    pub key_id: String,
}

impl Store {
    /// Stores (or replaces) a sealed secret. Refused for deleted instances.
    pub async fn put_secret(
        &self,
        id: InstanceId,
        name: SecretName,
        sealed: &SealedSecret,
    ) -> Result<(), StoreError> {
        let n = name.as_str();
        let done = sqlx::query(&format!(
            "UPDATE openclaw_instances SET {n}_encrypted = $1, {n}_iv = $2, {n}_alg = $3, \
             {n}_key_id = $4, updated_at = $5 WHERE id = $6 AND status <> 'deleted'"
        ))
        .bind(sealed.ciphertext.clone())
        .bind(sealed.nonce.clone())
        .bind(sealed.alg.clone())
        .bind(sealed.key_id.clone())
        .bind(to_millis(now()))
        .bind(id.to_string())
        .execute(&self.write)
        .await?;
        self.instances_changed();
        self.expect_one_live_row(id, done.rows_affected()).await
    }

    /// Removes a secret (for example provider keys the user deleted).
    pub async fn clear_secret(&self, id: InstanceId, name: SecretName) -> Result<(), StoreError> {
        let n = name.as_str();
        let done = sqlx::query(&format!(
            "UPDATE openclaw_instances SET {n}_encrypted = NULL, {n}_iv = NULL, {n}_alg = NULL, \
             {n}_key_id = NULL, updated_at = $1 WHERE id = $2 AND status <> 'deleted'"
        ))
        .bind(to_millis(now()))
        .bind(id.to_string())
        .execute(&self.write)
        .await?;
        self.instances_changed();
        self.expect_one_live_row(id, done.rows_affected()).await
    }

    /// Removes every secret of an instance (on delete: a deleted runtime's
    /// tokens must not outlive it).
    pub async fn clear_all_secrets(&self, id: InstanceId) -> Result<(), StoreError> {
        let mut set = Vec::new();
        for name in SecretName::ALL {
            let n = name.as_str();
            set.push(format!(
                "{n}_encrypted = NULL, {n}_iv = NULL, {n}_alg = NULL, {n}_key_id = NULL"
            ));
        }
        sqlx::query(&format!(
            "UPDATE openclaw_instances SET {}, model_token_digest = NULL, updated_at = $1 \
             WHERE id = $2",
            set.join(", ")
        ))
        .bind(to_millis(now()))
        .bind(id.to_string())
        .execute(&self.write)
        .await?;
        self.instances_changed();
        Ok(())
    }

    /// The sealed secret, if stored.
    pub async fn get_secret(
        &self,
        id: InstanceId,
        name: SecretName,
    ) -> Result<Option<SealedSecret>, StoreError> {
        let n = name.as_str();
        let row = sqlx::query(&format!(
            "SELECT {n}_encrypted AS ciphertext, {n}_iv AS nonce, {n}_alg AS alg, {n}_key_id AS key_id \
             FROM openclaw_instances WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.write)
        .await?
        .ok_or(StoreError::NotFound)?;
        let ciphertext: Option<Vec<u8>> = row.try_get("ciphertext")?;
        let nonce: Option<Vec<u8>> = row.try_get("nonce")?;
        let alg: Option<String> = row.try_get("alg")?;
        let key_id: Option<String> = row.try_get("key_id")?;
        match (ciphertext, nonce, alg, key_id) {
            (Some(ciphertext), Some(nonce), Some(alg), Some(key_id)) => Ok(Some(SealedSecret {
                ciphertext,
                nonce,
                alg,
                key_id,
            })),
            (None, None, None, None) => Ok(None),
            _ => Err(StoreError::Corrupt(format!(
                "secret {n} of instance {id} is partly stored"
            ))),
        }
    }

    /// Replaces a sealed secret only if it is still exactly `old` (compare and
    /// swap), so a rotation running beside the server never overwrites a value
    /// written meanwhile. Returns whether the swap happened.
    pub async fn replace_secret_if_unchanged(
        &self,
        id: InstanceId,
        name: SecretName,
        old: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        let n = name.as_str();
        let done = sqlx::query(&format!(
            "UPDATE openclaw_instances SET {n}_encrypted = $1, {n}_iv = $2, {n}_alg = $3, {n}_key_id = $4 \
             WHERE id = $5 AND {n}_encrypted = $6 AND {n}_iv = $7 AND {n}_key_id = $8"
        ))
        .bind(new.ciphertext.clone())
        .bind(new.nonce.clone())
        .bind(new.alg.clone())
        .bind(new.key_id.clone())
        .bind(id.to_string())
        .bind(old.ciphertext.clone())
        .bind(old.nonce.clone())
        .bind(old.key_id.clone())
        .execute(&self.write)
        .await?;
        self.instances_changed();
        Ok(done.rows_affected() == 1)
    }

    /// Every stored secret whose key id is not `current_key_id`.
    pub async fn secrets_not_under_key(
        &self,
        current_key_id: &str,
    ) -> Result<Vec<SecretRef>, StoreError> {
        let mut out = Vec::new();
        for name in SecretName::ALL {
            let n = name.as_str();
            let rows = sqlx::query(&format!(
                "SELECT id, {n}_key_id AS key_id FROM openclaw_instances \
                 WHERE {n}_key_id IS NOT NULL AND {n}_key_id <> $1 ORDER BY id"
            ))
            .bind(current_key_id.to_owned())
            .fetch_all(&self.read)
            .await?;
            for row in rows {
                let id: String = row.try_get("id")?;
                out.push(SecretRef {
                    instance_id: InstanceId::parse(&id)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    name,
                    key_id: row.try_get("key_id")?,
                });
            }
        }
        Ok(out)
    }

    pub(crate) async fn expect_one_live_row(
        &self,
        id: InstanceId,
        affected: u64,
    ) -> Result<(), StoreError> {
        if affected == 1 {
            return Ok(());
        }
        match self.find_instance(id).await? {
            Some(instance) => Err(StoreError::WrongStatus(instance.status)),
            None => Err(StoreError::NotFound),
        }
    }
}
