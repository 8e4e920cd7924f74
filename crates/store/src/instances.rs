//! Instance rows: create, read, change status, set provisioner fields.
//!
//! Status writes read the current status, check the transition with the
//! domain's table, and write with `WHERE status = <what was read>`; if another
//! writer got there first the check is repeated against the new status.

use chrono::{DateTime, Utc};
use clawplane_domain::{
    Instance, InstanceFields, InstanceId, InstanceStatus, RuntimeName, SecretName, UserId,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_millis, now, to_millis};
use crate::{Store, StoreError};

/// Columns read for an [`Instance`]; secret values are never selected, only
/// their key ids (to know which secrets exist).
pub(crate) const COLUMNS: &str = "id, user_id, status, status_reason, runtime_url, runtime_name, \
    provisioner, instance_type, cf_account_id, cf_worker_name, cf_worker_id, \
    cf_container_app_id, cf_container_app_name, r2_bucket_name, \
    service_token_key_id, gateway_token_key_id, provider_keys_key_id, model_token_key_id, \
    created_at, updated_at, last_ready_at";

/// How often a status write retries after losing a race.
const MAX_STATUS_ATTEMPTS: usize = 8;

/// What is needed to create an instance: always starts as `provisioning`.
#[derive(Debug, Clone)]
pub struct NewInstance {
    /// The owner.
    pub user_id: UserId,
    /// Provisioner fields known up front (runtime name, provisioner...).
    pub fields: InstanceFields,
}

impl Store {
    /// Creates an instance in `provisioning`. Fails with
    /// [`StoreError::LiveInstanceExists`] when the user already has a live one:
    /// the database's partial unique index decides, so concurrent creates for
    /// one user leave exactly one row.
    pub async fn create_instance(&self, new: NewInstance) -> Result<Instance, StoreError> {
        let id = InstanceId::new();
        let at = to_millis(now());
        let f = &new.fields;
        let result = sqlx::query(
            "INSERT INTO openclaw_instances (id, user_id, status, runtime_url, runtime_name, \
             provisioner, instance_type, cf_account_id, cf_worker_name, cf_worker_id, \
             cf_container_app_id, cf_container_app_name, r2_bucket_name, \
             created_at, updated_at, status_changed_at) \
             VALUES ($1, $2, 'provisioning', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $13)",
        )
        .bind(id.to_string())
        .bind(new.user_id.as_str().to_owned())
        .bind(f.runtime_url.clone())
        .bind(f.runtime_name.clone())
        .bind(f.provisioner.clone())
        .bind(f.instance_type.clone())
        .bind(f.cf_account_id.clone())
        .bind(f.cf_worker_name.clone())
        .bind(f.cf_worker_id.clone())
        .bind(f.cf_container_app_id.clone())
        .bind(f.cf_container_app_name.clone())
        .bind(f.r2_bucket_name.clone())
        .bind(at)
        .execute(&self.write)
        .await;
        self.instances_changed();
        match result {
            Ok(_) => self.instance(id).await,
            Err(e)
                if StoreError::violates(
                    &e,
                    "openclaw_instances_one_live_per_user",
                    "openclaw_instances.user_id",
                ) =>
            {
                Err(StoreError::LiveInstanceExists(new.user_id))
            }
            Err(e) if StoreError::is_unique_violation(&e) => Err(StoreError::RuntimeNameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// The instance with this id, or [`StoreError::NotFound`].
    pub async fn instance(&self, id: InstanceId) -> Result<Instance, StoreError> {
        self.find_instance(id).await?.ok_or(StoreError::NotFound)
    }

    /// The instance with this id, if any.
    pub async fn find_instance(&self, id: InstanceId) -> Result<Option<Instance>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM openclaw_instances WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(instance_from_row).transpose()
    }

    /// The user's live (not deleted) instance, if any.
    pub async fn live_instance_for_user(
        &self,
        user: &UserId,
    ) -> Result<Option<Instance>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM openclaw_instances WHERE user_id = $1 AND status <> 'deleted'"
        ))
        .bind(user.as_str().to_owned())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(instance_from_row).transpose()
    }

    /// The live (not deleted) instance with this runtime name, if any: how
    /// the ingress finds the instance of a host name.
    pub async fn live_instance_by_runtime_name(
        &self,
        name: &RuntimeName,
    ) -> Result<Option<Instance>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM openclaw_instances WHERE runtime_name = $1 AND status <> 'deleted'"
        ))
        .bind(name.as_str().to_owned())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(instance_from_row).transpose()
    }

    /// The user's live instance or, when there is none, the most recently
    /// created deleted one (the seed's `getInstanceForUser` showed deleted rows).
    pub async fn current_instance_for_user(
        &self,
        user: &UserId,
    ) -> Result<Option<Instance>, StoreError> {
        let Some(cache) = &self.instance_cache else {
            return self.current_instance_uncached(user).await;
        };
        if let Some(hit) = cache.get(user.as_str()).await {
            return Ok(hit);
        }
        let found = self.current_instance_uncached(user).await?;
        cache.insert(user.as_str().to_owned(), found.clone()).await;
        Ok(found)
    }

    async fn current_instance_uncached(
        &self,
        user: &UserId,
    ) -> Result<Option<Instance>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM openclaw_instances WHERE user_id = $1 \
             ORDER BY CASE WHEN status = 'deleted' THEN 1 ELSE 0 END, created_at DESC, id DESC LIMIT 1"
        ))
        .bind(user.as_str().to_owned())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(instance_from_row).transpose()
    }

    /// Instances in `status` whose status last changed before `before`, oldest
    /// first (the reconciler's work list), at most `limit`.
    pub async fn instances_in_status(
        &self,
        status: InstanceStatus,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Instance>, StoreError> {
        let before = before.map(to_millis).unwrap_or(i64::MAX);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM openclaw_instances WHERE status = $1 AND status_changed_at < $2 \
             ORDER BY status_changed_at, id LIMIT $3"
        ))
        .bind(status.as_str())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(instance_from_row).collect()
    }

    /// How many instances are in each status (for metrics).
    pub async fn count_instances_by_status(
        &self,
    ) -> Result<Vec<(InstanceStatus, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM openclaw_instances GROUP BY status")
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                let n: i64 = r.try_get("n")?;
                Ok((parse_status(&status)?, n))
            })
            .collect()
    }

    /// Changes the status through the transition table, recording `reason`
    /// (cleared when `None`). `last_ready_at` is set on every transition into
    /// `ready`. Writing the current status again changes nothing but the reason.
    pub async fn set_instance_status(
        &self,
        id: InstanceId,
        to: InstanceStatus,
        reason: Option<&str>,
    ) -> Result<Instance, StoreError> {
        for _ in 0..MAX_STATUS_ATTEMPTS {
            let current = self.instance(id).await?;
            current.status.check_transition(to)?;
            let at = to_millis(now());
            let entering_ready =
                to == InstanceStatus::Ready && current.status != InstanceStatus::Ready;
            let changed = current.status != to;
            let reason = reason.map(truncate_reason);
            let result = sqlx::query(
                "UPDATE openclaw_instances SET status = $1, status_reason = $2, updated_at = $3, \
                 status_changed_at = CASE WHEN $4 = 1 THEN $3 ELSE status_changed_at END, \
                 last_ready_at = CASE WHEN $5 = 1 THEN $3 ELSE last_ready_at END \
                 WHERE id = $6 AND status = $7",
            )
            .bind(to.as_str())
            .bind(reason)
            .bind(at)
            .bind(i64::from(changed))
            .bind(i64::from(entering_ready))
            .bind(id.to_string())
            .bind(current.status.as_str())
            .execute(&self.write)
            .await;
            self.instances_changed();
            match result {
                Ok(done) if done.rows_affected() == 1 => return self.instance(id).await,
                Ok(_) => continue,
                Err(e) if StoreError::is_unique_violation(&e) => {
                    // Leaving `deleted` would make a second live instance.
                    return Err(StoreError::LiveInstanceExists(current.user_id));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Contended)
    }

    /// Sets the reason of an instance that is still in `status` (the status
    /// itself is not changed); `None` when it has left that status since.
    pub async fn set_instance_reason(
        &self,
        id: InstanceId,
        status: InstanceStatus,
        reason: Option<&str>,
    ) -> Result<Option<Instance>, StoreError> {
        let result = sqlx::query(
            "UPDATE openclaw_instances SET status_reason = $1, updated_at = $2 \
             WHERE id = $3 AND status = $4",
        )
        .bind(reason.map(truncate_reason))
        .bind(to_millis(now()))
        .bind(id.to_string())
        .bind(status.as_str())
        .execute(&self.write)
        .await?;
        self.instances_changed();
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.instance(id).await.map(Some)
    }

    /// Sets the provisioner's fields that are `Some` in `fields`; others are kept.
    /// Refused for deleted instances.
    pub async fn update_instance_fields(
        &self,
        id: InstanceId,
        fields: &InstanceFields,
    ) -> Result<Instance, StoreError> {
        let result = sqlx::query(
            "UPDATE openclaw_instances SET \
             runtime_url = COALESCE($1, runtime_url), runtime_name = COALESCE($2, runtime_name), \
             provisioner = COALESCE($3, provisioner), instance_type = COALESCE($4, instance_type), \
             cf_account_id = COALESCE($5, cf_account_id), cf_worker_name = COALESCE($6, cf_worker_name), \
             cf_worker_id = COALESCE($7, cf_worker_id), \
             cf_container_app_id = COALESCE($8, cf_container_app_id), \
             cf_container_app_name = COALESCE($9, cf_container_app_name), \
             r2_bucket_name = COALESCE($10, r2_bucket_name), updated_at = $11 \
             WHERE id = $12 AND status <> 'deleted'",
        )
        .bind(fields.runtime_url.clone())
        .bind(fields.runtime_name.clone())
        .bind(fields.provisioner.clone())
        .bind(fields.instance_type.clone())
        .bind(fields.cf_account_id.clone())
        .bind(fields.cf_worker_name.clone())
        .bind(fields.cf_worker_id.clone())
        .bind(fields.cf_container_app_id.clone())
        .bind(fields.cf_container_app_name.clone())
        .bind(fields.r2_bucket_name.clone())
        .bind(to_millis(now()))
        .bind(id.to_string())
        .execute(&self.write)
        .await;
        self.instances_changed();
        match result {
            Ok(done) if done.rows_affected() == 1 => self.instance(id).await,
            Ok(_) => match self.find_instance(id).await? {
                Some(instance) => Err(StoreError::WrongStatus(instance.status)),
                None => Err(StoreError::NotFound),
            },
            Err(e) if StoreError::is_unique_violation(&e) => Err(StoreError::RuntimeNameTaken),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reasons are for people; a runaway error text is cut to 1,000 characters.
fn truncate_reason(reason: &str) -> String {
    reason.chars().take(1000).collect()
}

fn parse_status(text: &str) -> Result<InstanceStatus, StoreError> {
    InstanceStatus::parse(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn instance_from_row(row: &AnyRow) -> Result<Instance, StoreError> {
    let id: String = row.try_get("id")?;
    let user_id: String = row.try_get("user_id")?;
    let status: String = row.try_get("status")?;
    let text = |col: &str| -> Result<Option<String>, StoreError> { Ok(row.try_get(col)?) };
    let mut secrets = Vec::new();
    for name in SecretName::ALL {
        if text(&format!("{}_key_id", name.as_str()))?.is_some() {
            secrets.push(name);
        }
    }
    let last_ready_at: Option<i64> = row.try_get("last_ready_at")?;
    Ok(Instance {
        id: InstanceId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        user_id: UserId::parse(&user_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        status: parse_status(&status)?,
        status_reason: text("status_reason")?,
        runtime_url: text("runtime_url")?,
        runtime_name: text("runtime_name")?,
        provisioner: text("provisioner")?,
        instance_type: text("instance_type")?,
        cf_account_id: text("cf_account_id")?,
        cf_worker_name: text("cf_worker_name")?,
        cf_worker_id: text("cf_worker_id")?,
        cf_container_app_id: text("cf_container_app_id")?,
        cf_container_app_name: text("cf_container_app_name")?,
        r2_bucket_name: text("r2_bucket_name")?,
        secrets,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
        last_ready_at: last_ready_at.map(from_millis).transpose()?,
    })
}
