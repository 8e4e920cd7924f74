//! The reconciler: drives an instance from `provisioning` to `ready` (the
//! runtime reports its gateway running) or to `error` with the reason, and
//! after a restart of the control plane picks up what was left: instances
//! still `provisioning`, and the runtimes of `ready` and `stopped` instances
//! (found again, or started again, never started twice).

use std::time::{Duration, Instant};

use clawplane_domain::{Instance, InstanceId, InstanceStatus};

use super::Instances;
use crate::runtime_client::{GatewayAction, RuntimeTarget};

/// How often the runtime is asked whether its gateway runs yet.
const READY_POLL: Duration = Duration::from_millis(100);

impl Instances {
    /// Starts driving `id` unless this process already is.
    pub fn drive(&self, id: InstanceId) {
        let fresh = self
            .inner
            .in_flight
            .lock()
            .map(|mut set| set.insert(id))
            .unwrap_or(false);
        if !fresh {
            return;
        }
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            this.provision(id).await;
            if let Ok(mut set) = this.inner.in_flight.lock() {
                set.remove(&id);
            }
            // Provisioned again (from `error`) while this run was finishing:
            // that call found this run in flight, so drive it now.
            if !this.inner.shutdown.is_cancelled() {
                if let Ok(i) = this.inner.store.instance(id).await {
                    if i.status == InstanceStatus::Provisioning {
                        this.drive(id);
                    }
                }
            }
        });
    }

    async fn provision(&self, id: InstanceId) {
        let store = &self.inner.store;
        let instance = match store.instance(id).await {
            Ok(i) if i.status == InstanceStatus::Provisioning => i,
            Ok(_) => return,
            Err(e) => return tracing::warn!(instance = %id, error = %e, "cannot read the instance"),
        };
        let started = Instant::now();
        let timeout = self.inner.settings.provision_timeout;
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout, self.bring_up(&instance)) => r.unwrap_or_else(|_| {
                Err(format!("the runtime was not ready within {} s", timeout.as_secs()))
            }),
            _ = self.inner.shutdown.cancelled() => {
                tracing::info!(instance = %id, "shutting down: provisioning resumes at the next start");
                return;
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let (to, reason, label) = match &outcome {
            Ok(()) => (InstanceStatus::Ready, None, "ready"),
            Err(reason) => (InstanceStatus::Error, Some(reason.as_str()), "error"),
        };
        self.inner.metrics.provisioned(label, seconds);
        match store.set_instance_status(id, to, reason).await {
            Ok(_) if outcome.is_ok() => {
                tracing::info!(instance = %id, seconds, "instance ready")
            }
            Ok(_) => {
                tracing::warn!(instance = %id, reason = reason.unwrap_or(""), "provisioning failed")
            }
            Err(e) => match store.instance(id).await {
                // Deleted while provisioning: take away what was started.
                Ok(now) if now.status == InstanceStatus::Deleted => {
                    tracing::info!(instance = %id, "instance deleted during provisioning; removing its runtime");
                    if let Err(e) = self.inner.provisioner.remove(&instance).await {
                        tracing::warn!(instance = %id, error = %e, "cannot remove the runtime");
                    }
                }
                // Anything else (the database unreachable, say) is no sign the
                // instance is gone: its runtime stays, and the reconciler
                // drives the instance again once the store answers.
                _ => {
                    tracing::warn!(instance = %id, error = %e, "cannot record the provisioning outcome; the runtime is left running and provisioning resumes later")
                }
            },
        }
    }

    /// Secrets, provisioner, then wait for the gateway; the error is the
    /// instance's status reason.
    async fn bring_up(&self, instance: &Instance) -> Result<(), String> {
        // Provisioning again rotates the model token.
        if self.inner.settings.model_tokens {
            self.new_model_token(instance.id)
                .await
                .map_err(|e| e.reason())?;
        }
        let secrets = self
            .runtime_secrets(instance)
            .await
            .map_err(|e| e.reason())?;
        let fields = self
            .inner
            .provisioner
            .provision(instance, &secrets)
            .await
            .map_err(|e| e.to_string())?;
        let updated = self
            .inner
            .store
            .update_instance_fields(instance.id, &fields)
            .await
            .map_err(|e| e.to_string())?;
        let target = self.target_of(&updated).await.map_err(|e| e.reason())?;
        self.wait_gateway_running(instance.id, InstanceStatus::Provisioning, &target)
            .await
    }

    /// Polls `/v1/status` until the gateway is `running`; a refused service
    /// token, a gateway that keeps crashing or an instance that left
    /// `expected` meanwhile (deleted, say) ends the wait with the reason.
    pub(super) async fn wait_gateway_running(
        &self,
        id: InstanceId,
        expected: InstanceStatus,
        target: &RuntimeTarget,
    ) -> Result<(), String> {
        use clawplane_http::v1::GatewayState;
        let mut round = 0u64;
        loop {
            round += 1;
            if round % 20 == 0 {
                match self.inner.store.instance(id).await {
                    Ok(i) if i.status == expected => {}
                    Ok(i) => {
                        return Err(format!(
                            "the instance became {} while its runtime was starting",
                            i.status
                        ))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            match self.inner.client.status(target).await {
                Ok(status) => match status.gateway.state {
                    GatewayState::Running => return Ok(()),
                    GatewayState::Crashed if status.gateway.crashes >= 3 => {
                        let last = status.gateway.last_error.unwrap_or_default();
                        return Err(format!("the gateway keeps crashing: {last}"));
                    }
                    _ => {}
                },
                Err(crate::runtime_client::RuntimeError::Status { status: 401, .. }) => {
                    return Err("the runtime refused the service token".into())
                }
                Err(_) => {}
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Runs for the life of the server: first picks up what a previous run
    /// left, then every interval looks for provisioning that nobody drives.
    pub async fn reconcile(self) {
        self.recover().await;
        let interval = self.inner.settings.reconcile_interval;
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let stale = chrono::Utc::now()
                - chrono::Duration::from_std(self.inner.settings.provision_timeout)
                    .unwrap_or_default();
            match self
                .inner
                .store
                .instances_in_status(InstanceStatus::Provisioning, Some(stale), 100)
                .await
            {
                Ok(stuck) => stuck.into_iter().for_each(|i| self.drive(i.id)),
                Err(e) => tracing::warn!(error = %e, "cannot list provisioning instances"),
            }
        }
    }

    /// After a restart: drive every `provisioning` instance; find again (or
    /// start again) the runtimes of `ready` and `stopped` ones.
    pub async fn recover(&self) {
        let store = &self.inner.store;
        if let Ok(list) = store
            .instances_in_status(InstanceStatus::Provisioning, None, 10_000)
            .await
        {
            list.into_iter().for_each(|i| self.drive(i.id));
        }
        for status in [InstanceStatus::Ready, InstanceStatus::Stopped] {
            let Ok(list) = store.instances_in_status(status, None, 10_000).await else {
                continue;
            };
            for instance in list {
                if instance.provisioner.as_deref() != Some(self.inner.provisioner.name()) {
                    continue;
                }
                if self.inner.shutdown.is_cancelled() {
                    return;
                }
                self.reattach(instance).await;
            }
        }
    }

    /// A runtime started again starts its gateway; a `stopped` instance's
    /// gateway is stopped again so the instance stays as its user left it.
    pub(super) async fn keep_stopped(&self, instance: &Instance) {
        if let Ok(target) = self.target_of(instance).await {
            if let Err(e) = self
                .inner
                .client
                .gateway(&target, GatewayAction::Stop)
                .await
            {
                tracing::warn!(instance = %instance.id, error = %e, "could not stop the gateway of a stopped instance");
            }
        }
    }

    /// Finds the instance's runtime again or starts it (never a second
    /// one) and records its fields; the error is a status reason.
    pub(super) async fn ensure_runtime(&self, instance: &Instance) -> Result<Instance, String> {
        let secrets = self
            .runtime_secrets(instance)
            .await
            .map_err(|e| e.reason())?;
        let fields = self
            .inner
            .provisioner
            .ensure_running(instance, &secrets)
            .await
            .map_err(|e| e.to_string())?;
        self.inner
            .store
            .update_instance_fields(instance.id, &fields)
            .await
            .map_err(|e| e.to_string())
    }

    async fn reattach(&self, instance: Instance) {
        let id = instance.id;
        match self.ensure_runtime(&instance).await {
            Ok(updated) if instance.status == InstanceStatus::Stopped => {
                self.keep_stopped(&updated).await;
            }
            Ok(_) => tracing::debug!(instance = %id, "runtime running"),
            Err(reason) => {
                tracing::warn!(instance = %id, reason, "runtime could not be found or started again");
                let _ = self
                    .inner
                    .store
                    .set_instance_status(id, InstanceStatus::Error, Some(&reason))
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;
    use clawplane_billing::{BillingConfig, Ledger};
    use clawplane_domain::{InstanceFields, UserId};
    use clawplane_secrets::{EncryptionKey, KeyRing};
    use clawplane_store::{Backend, NewInstance, Store, Vault};
    use clawplane_testkit::TestDb;

    use super::*;
    use crate::metrics::Metrics;
    use crate::provision::{ProvisionError, Provisioner, RuntimeSecrets};

    /// A provisioner whose database goes away while it starts the runtime
    /// (the fault: an outage between the start and the status write), and
    /// which counts removals.
    struct DatabaseFailsDuringStart {
        store: Store,
        removed: AtomicUsize,
    }

    #[async_trait]
    impl Provisioner for DatabaseFailsDuringStart {
        fn name(&self) -> &'static str {
            "local"
        }
        async fn provision(
            &self,
            _: &Instance,
            _: &RuntimeSecrets,
        ) -> Result<InstanceFields, ProvisionError> {
            self.store.close().await;
            Ok(InstanceFields {
                runtime_url: Some("http://127.0.0.1:9".into()),
                ..Default::default()
            })
        }
        async fn ensure_running(
            &self,
            i: &Instance,
            s: &RuntimeSecrets,
        ) -> Result<InstanceFields, ProvisionError> {
            self.provision(i, s).await
        }
        async fn restart(
            &self,
            i: &Instance,
            s: &RuntimeSecrets,
        ) -> Result<InstanceFields, ProvisionError> {
            self.provision(i, s).await
        }
        async fn remove(&self, _: &Instance) -> Result<(), ProvisionError> {
            self.removed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_database_error_during_provisioning_leaves_the_runtime_alone() {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store.clone();
        let provisioner = Arc::new(DatabaseFailsDuringStart {
            store: store.clone(),
            removed: AtomicUsize::new(0),
        });
        let vault = Vault::new(
            store.clone(),
            KeyRing::new(EncryptionKey::from_bytes([7; 32])),
        );
        let instances = Instances::new(
            store.clone(),
            vault,
            Ledger::new(store.clone(), BillingConfig::default()),
            provisioner.clone(),
            Default::default(),
            Metrics::new(),
        );
        let instance = store
            .create_instance(NewInstance {
                user_id: UserId::parse("user-db-outage").unwrap(),
                fields: InstanceFields::default(),
            })
            .await
            .unwrap();
        instances.provision(instance.id).await;
        assert_eq!(
            provisioner.removed.load(Ordering::SeqCst),
            0,
            "an outage is not a delete: the runtime must be kept"
        );
    }
}
