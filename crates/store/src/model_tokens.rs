//! The instances' model tokens: sealed like the other secrets (the runtime
//! is given the plaintext at each start) with their digest beside them, by
//! which the model proxy finds who is calling. Token and digest are written
//! in one statement, so they never disagree; a delete clears both.

use clawplane_domain::{Instance, InstanceId};
use clawplane_secrets::SealedSecret;

use crate::instances::{instance_from_row, COLUMNS};
use crate::time::{now, to_millis};
use crate::{Store, StoreError};

impl Store {
    /// Stores the live instance's sealed model token and its digest,
    /// replacing an earlier one (whose digest then finds nothing).
    pub async fn put_model_token(
        &self,
        id: InstanceId,
        sealed: &SealedSecret,
        digest: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE openclaw_instances SET model_token_encrypted = $1, model_token_iv = $2, \
             model_token_alg = $3, model_token_key_id = $4, model_token_digest = $5, \
             updated_at = $6 WHERE id = $7 AND status <> 'deleted'",
        )
        .bind(sealed.ciphertext.clone())
        .bind(sealed.nonce.clone())
        .bind(sealed.alg.clone())
        .bind(sealed.key_id.clone())
        .bind(digest.to_owned())
        .bind(to_millis(now()))
        .bind(id.to_string())
        .execute(&self.write)
        .await?;
        self.instances_changed();
        self.expect_one_live_row(id, done.rows_affected()).await
    }

    /// The live instance whose model token has this digest.
    pub async fn live_instance_by_model_token_digest(
        &self,
        digest: &str,
    ) -> Result<Option<Instance>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM openclaw_instances \
             WHERE model_token_digest = $1 AND status <> 'deleted'"
        ))
        .bind(digest.to_owned())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(instance_from_row).transpose()
    }
}
