//! The instance service: what the routes and the billing job may do to a
//! user's instance, over the store, the vault, the provisioner and the
//! runtime client.
//!
//! - this module: create (idempotent), delete, gateway actions, and the lookup of a user's runtime with the seed's errors;
//! - [`provisioning`]: the reconciler that drives `provisioning` to `ready`
//!   or `error`, and finds runtimes again after a restart;
//! - [`provider_keys`]: the user's model provider keys;
//! - [`runtime_ops`]: what a user asks of their runtime (status, devices,
//!   backups), one method each;
//! - [`secrets`]: the operator's audited reads and writes of a secret;
//! - [`control`]: status moves by the operator's services;
//! - [`InstanceError`]: what the service refuses or fails with, without HTTP;
//! - [`supervision`]: runtimes that die while `serve` runs are noticed and
//!   started again, or their instance ends in `error`;
//! - [`fleet`]: the billing job's view of the instances (model spend, stops).

pub mod cells;
pub mod control;
pub mod error;
pub mod fleet;
pub mod provider_keys;
pub mod provisioning;
pub mod runtime_ops;
pub mod secrets;
pub mod supervision;

pub use error::InstanceError;
pub use provider_keys::validate_provider_keys;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use clawplane_billing::Ledger;
use clawplane_domain::{Instance, InstanceFields, InstanceId, InstanceStatus, SecretName, UserId};
use clawplane_secrets::{generate_token, SecretString};
use clawplane_store::{NewInstance, Store, StoreError, Vault};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::provision::{Provisioner, RuntimeHealth, RuntimeSecrets};
use crate::runtime_client::{GatewayAction, RuntimeClient, RuntimeTarget};
use supervision::{SupervisionSettings, Watch};

/// Settings of the instance service.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    /// The seed's `OPENCLAW_SERVICE_TOKEN` / `OPENAGENTS_SERVICE_TOKEN`: one
    /// fixed token for every runtime, used only when set.
    pub fixed_service_token: Option<SecretString>,
    /// How long provisioning may take before the instance is `error`.
    pub provision_timeout: Duration,
    /// How often the reconciler looks for stuck work.
    pub reconcile_interval: Duration,
    /// The host's budget for running instances (`None`: unbounded).
    pub capacity: Option<Capacity>,
    /// How runtimes that die are noticed and restarted.
    pub supervision: SupervisionSettings,
    /// Whether the operator includes models: each instance then has a model
    /// token for the model proxy, made anew when it is provisioned.
    pub model_tokens: bool,
}

/// How many instances this host runs at once: a memory budget (by default
/// the host's memory less a reserve) over what each instance may use (its
/// cell's memory limit). Instances count while `provisioning` or `ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Memory for all instances, bytes.
    pub budget_bytes: u64,
    /// Memory one instance may use, bytes.
    pub per_instance_bytes: u64,
}

impl Capacity {
    /// How many instances fit.
    pub fn slots(&self) -> u64 {
        self.budget_bytes / self.per_instance_bytes.max(1)
    }
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            fixed_service_token: None,
            provision_timeout: Duration::from_secs(300),
            reconcile_interval: Duration::from_secs(30),
            capacity: None,
            supervision: SupervisionSettings::default(),
            model_tokens: false,
        }
    }
}

/// Most provider keys one instance may hold, and the longest value.
pub(crate) const MAX_PROVIDER_KEYS: usize = 32;
pub(crate) const MAX_PROVIDER_KEY_LEN: usize = 4096;

/// The service; cheap to clone.
#[derive(Clone)]
pub struct Instances {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    vault: Vault,
    ledger: Ledger,
    provisioner: Arc<dyn Provisioner>,
    client: RuntimeClient,
    settings: InstanceSettings,
    metrics: Metrics,
    /// Instances whose provisioning task runs in this process.
    in_flight: Mutex<HashSet<InstanceId>>,
    /// What the supervisor remembers of each runtime.
    watches: Mutex<HashMap<InstanceId, Watch>>,
    /// Runtime exits the provisioner reports, lent to the supervisor.
    exits: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<InstanceId>>>,
    /// One change of an instance's runtime at a time (delete, restore).
    leases: Mutex<HashMap<InstanceId, Arc<tokio::sync::Mutex<()>>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Instances {
    /// A service over these parts.
    pub fn new(
        store: Store,
        vault: Vault,
        ledger: Ledger,
        provisioner: Arc<dyn Provisioner>,
        settings: InstanceSettings,
        metrics: Metrics,
    ) -> Self {
        let exits = provisioner.take_exits();
        Instances {
            inner: Arc::new(Inner {
                store,
                vault,
                ledger,
                provisioner,
                client: RuntimeClient::new(Default::default()),
                settings,
                metrics,
                in_flight: Mutex::new(HashSet::new()),
                watches: Mutex::new(HashMap::new()),
                leases: Mutex::new(HashMap::new()),
                exits: Mutex::new(exits),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// The runtime client.
    pub fn client(&self) -> &RuntimeClient {
        &self.inner.client
    }

    /// The user's live instance or, without one, their last deleted one.
    pub async fn current(&self, user: &UserId) -> Result<Option<Instance>, InstanceError> {
        Ok(self.inner.store.current_instance_for_user(user).await?)
    }

    /// The user's live instance, or [`InstanceError::NotFound`].
    pub async fn live(&self, user: &UserId) -> Result<Instance, InstanceError> {
        self.inner
            .store
            .live_instance_for_user(user)
            .await?
            .ok_or(InstanceError::NotFound)
    }

    /// Creates the user's instance in `provisioning` and starts driving it;
    /// with a live one already, returns it (and re-provisions one in `error`).
    /// The month's credits are granted first; a balance at the floor is 402.
    pub async fn create(&self, user: &UserId) -> Result<Instance, InstanceError> {
        let store = &self.inner.store;
        if let Some(existing) = store.live_instance_for_user(user).await? {
            return self.resume(existing).await;
        }
        // Before anything is written: a full host leaves no trace.
        self.ensure_room().await?;
        self.inner.ledger.grant_monthly_to(user, Utc::now()).await?;
        self.inner.ledger.ensure_can_run(user).await?;
        let new = NewInstance {
            user_id: user.clone(),
            fields: InstanceFields {
                provisioner: Some(self.inner.provisioner.name().to_owned()),
                ..Default::default()
            },
        };
        match store.create_instance(new).await {
            Ok(instance) => {
                tracing::info!(instance = %instance.id, "instance created; provisioning");
                self.drive(instance.id);
                Ok(instance)
            }
            // A concurrent create won: answer with its instance.
            Err(StoreError::LiveInstanceExists(_)) => self.live(user).await,
            Err(e) => Err(e.into()),
        }
    }

    async fn resume(&self, existing: Instance) -> Result<Instance, InstanceError> {
        match existing.status {
            InstanceStatus::Error => {
                self.inner.ledger.ensure_can_run(&existing.user_id).await?;
                self.ensure_room().await?;
                let instance = self
                    .inner
                    .store
                    .set_instance_status(existing.id, InstanceStatus::Provisioning, None)
                    .await?;
                self.drive(instance.id);
                Ok(instance)
            }
            InstanceStatus::Provisioning => {
                self.drive(existing.id);
                Ok(existing)
            }
            _ => Ok(existing),
        }
    }

    /// [`InstanceError::HostFull`] when one more running instance would
    /// exceed the host's budget; nothing is changed either way.
    async fn ensure_room(&self) -> Result<(), InstanceError> {
        let Some(capacity) = self.inner.settings.capacity else {
            return Ok(());
        };
        let running: i64 = self
            .inner
            .store
            .count_instances_by_status()
            .await?
            .into_iter()
            .filter(|(status, _)| {
                matches!(status, InstanceStatus::Provisioning | InstanceStatus::Ready)
            })
            .map(|(_, n)| n)
            .sum();
        let slots = capacity.slots();
        if u64::try_from(running).unwrap_or(u64::MAX) >= slots {
            return Err(InstanceError::HostFull { slots, running });
        }
        Ok(())
    }

    /// Where the user's runtime is, with the seed's errors: 404 `instance
    /// not found`, 409 `runtime url not set`, 409 `service token not set`.
    pub async fn target(&self, user: &UserId) -> Result<(Instance, RuntimeTarget), InstanceError> {
        let instance = self.live(user).await?;
        let target = self.target_of(&instance).await?;
        Ok((instance, target))
    }

    /// The runtime target of an instance.
    pub async fn target_of(&self, instance: &Instance) -> Result<RuntimeTarget, InstanceError> {
        let base_url = instance
            .runtime_url
            .clone()
            .ok_or(InstanceError::RuntimeUrlNotSet)?;
        let service_token = match &self.inner.settings.fixed_service_token {
            Some(fixed) => fixed.clone(),
            None => self
                .inner
                .vault
                .get(instance.id, SecretName::ServiceToken)
                .await?
                .ok_or(InstanceError::ServiceTokenNotSet)?,
        };
        Ok(RuntimeTarget {
            base_url,
            service_token,
        })
    }

    /// The secrets a runtime is given; tokens are generated (CSPRNG, 256
    /// bits) and stored the first time.
    async fn runtime_secrets(&self, instance: &Instance) -> Result<RuntimeSecrets, InstanceError> {
        let service_token = match &self.inner.settings.fixed_service_token {
            Some(fixed) => fixed.clone(),
            None => self.token(instance.id, SecretName::ServiceToken).await?,
        };
        let gateway_token = self.token(instance.id, SecretName::GatewayToken).await?;
        let provider_keys = self
            .inner
            .vault
            .get(instance.id, SecretName::ProviderKeys)
            .await?;
        let model_token = if self.inner.settings.model_tokens {
            match self
                .inner
                .vault
                .get(instance.id, SecretName::ModelToken)
                .await?
            {
                Some(token) => Some(token),
                None => Some(self.new_model_token(instance.id).await?),
            }
        } else {
            None
        };
        Ok(RuntimeSecrets {
            service_token,
            gateway_token,
            provider_keys,
            model_token,
        })
    }

    async fn token(&self, id: InstanceId, name: SecretName) -> Result<SecretString, InstanceError> {
        let vault = &self.inner.vault;
        if let Some(existing) = vault.get(id, name).await? {
            return Ok(existing);
        }
        let token = generate_token();
        vault.put(id, name, &token).await?;
        Ok(token)
    }

    /// A fresh model token for the instance (256 bits, sealed, its digest
    /// beside it); the one before, if any, stops working at once.
    pub(super) async fn new_model_token(
        &self,
        id: InstanceId,
    ) -> Result<SecretString, InstanceError> {
        let token = generate_token();
        self.inner.vault.put_model_token(id, &token).await?;
        Ok(token)
    }

    /// The instance's lease: held by whatever changes its runtime (a
    /// delete, a restore by the supervisor), so they never interleave.
    pub(crate) async fn lease(&self, id: InstanceId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .inner
            .leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(id)
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Deletes the user's instance: a protective backup, the runtime stopped
    /// and removed, its secrets erased, the instance `deleted`. Backups are
    /// kept. When a running runtime cannot take the backup, nothing is
    /// deleted; when the runtime is dead, the delete goes on without one
    /// and the answer names the newest backup kept (see [`Self::delete_with`]).
    pub async fn delete(&self, user: &UserId) -> Result<(Instance, Value), InstanceError> {
        self.delete_with(user, false).await
    }

    /// [`Self::delete`]; with `fresh_backup_required`, a runtime that is dead
    /// refuses the delete too (409 `backup_failed`), as a live one that
    /// cannot back up does. The second value is the runtime's backup, or
    /// `{fresh: false, kept, note}` when none could be taken.
    pub async fn delete_with(
        &self,
        user: &UserId,
        fresh_backup_required: bool,
    ) -> Result<(Instance, Value), InstanceError> {
        let instance = self.live(user).await?;
        let _lease = self.lease(instance.id).await;
        // Re-read under the lease: a restore may have changed it meanwhile.
        let instance = self.live(user).await?;
        let mut backup = Value::Null;
        if matches!(
            instance.status,
            InstanceStatus::Ready | InstanceStatus::Stopped
        ) {
            let target = self.target_of(&instance).await?;
            match self.inner.client.backup(&target).await {
                Ok(b) => backup = serde_json::json!(b),
                Err(e) => {
                    let dead = matches!(
                        self.inner.provisioner.health(&instance).await,
                        RuntimeHealth::Dead(_)
                    );
                    let refuse = if dead {
                        fresh_backup_required
                    } else {
                        instance.status == InstanceStatus::Ready
                    };
                    if refuse {
                        return Err(InstanceError::BackupFailed((!dead).then_some(e)));
                    }
                    tracing::warn!(instance = %instance.id, error = %e, dead, "deleting without a protective backup");
                    backup = self.without_fresh_backup(&instance).await;
                }
            }
        }
        if let Err(e) = self.inner.provisioner.remove(&instance).await {
            tracing::error!(instance = %instance.id, error = %e, "removing the runtime failed");
            return Err(InstanceError::Provision(e));
        }
        self.inner.store.clear_all_secrets(instance.id).await?;
        let deleted = self
            .inner
            .store
            .set_instance_status(
                instance.id,
                InstanceStatus::Deleted,
                Some("deleted by its user"),
            )
            .await?;
        tracing::info!(instance = %instance.id, "instance deleted");
        Ok((deleted, backup))
    }

    /// What a delete answers when no protective backup could be taken: the
    /// newest backup kept, named.
    async fn without_fresh_backup(&self, instance: &Instance) -> Value {
        let kept = self.inner.provisioner.last_backup(instance).await;
        let note = match &kept {
            Some(k) => format!(
                "Its runtime was not running, so no fresh backup was taken; the newest backup, {} ({}, {}), is kept.",
                k.id, k.trigger, k.created_at
            ),
            None => "Its runtime was not running, so no fresh backup was taken, and it had no earlier backup.".to_owned(),
        };
        serde_json::json!({ "fresh": false, "kept": kept, "note": note })
    }

    /// Starts, stops or restarts the user's gateway; stop and start move the
    /// instance between `ready` and `stopped`. A start needs credits.
    pub async fn gateway(
        &self,
        user: &UserId,
        action: GatewayAction,
    ) -> Result<Value, InstanceError> {
        let (instance, target) = self.target(user).await?;
        let store = &self.inner.store;
        match action {
            GatewayAction::Start => {
                self.inner.ledger.ensure_can_run(user).await?;
                if instance.status != InstanceStatus::Ready {
                    self.ensure_room().await?;
                }
                instance.status.check_transition(InstanceStatus::Ready)?;
                let out = serde_json::json!(self.inner.client.gateway(&target, action).await?);
                store
                    .set_instance_status(instance.id, InstanceStatus::Ready, None)
                    .await?;
                Ok(out)
            }
            GatewayAction::Stop => {
                instance.status.check_transition(InstanceStatus::Stopped)?;
                let out = match self.inner.client.gateway(&target, action).await {
                    Ok(out) => serde_json::json!(out),
                    // Nothing runs, so the stop is done: the instance is
                    // `stopped`, and the supervisor brings the runtime back
                    // with its gateway stopped.
                    Err(e)
                        if matches!(
                            self.inner.provisioner.health(&instance).await,
                            RuntimeHealth::Dead(_)
                        ) =>
                    {
                        tracing::warn!(instance = %instance.id, error = %e, "stopping an instance whose runtime is dead");
                        serde_json::json!({ "stopped": true, "note": "Its runtime was not running; nothing is running now." })
                    }
                    Err(e) => return Err(e.into()),
                };
                store
                    .set_instance_status(
                        instance.id,
                        InstanceStatus::Stopped,
                        Some("stopped by its user"),
                    )
                    .await?;
                Ok(out)
            }
            GatewayAction::Restart => {
                if instance.status != InstanceStatus::Ready {
                    return Err(InstanceError::WrongStatus(instance.status));
                }
                Ok(serde_json::json!(
                    self.inner.client.gateway(&target, action).await?
                ))
            }
        }
    }

    /// Stops background work at a safe point and waits for it until
    /// `deadline`.
    pub async fn shutdown_until(&self, deadline: tokio::time::Instant) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout_at(deadline, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("instance tasks did not stop in time");
        }
    }
}
