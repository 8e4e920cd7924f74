//! Supervision of runtimes: `serve` notices a runtime that died while it
//! runs and starts it again, the way its start-up reconcile would.
//!
//! - **Noticing.** A runtime this process started is its child: the local
//!   provisioner reports its exit at once ([`Provisioner::take_exits`]).
//!   Every runtime that should run (its instance `ready` or `stopped`) is
//!   also checked once per interval (default 5 s), one at a time, spread
//!   evenly over the interval so hundreds of instances are never probed at
//!   once: its process, then its `/healthz`. A process that runs but does not
//!   answer three checks in a row counts as dead (and is stopped before
//!   another starts).
//! - **Restoring.** A dead runtime is started again through the same path
//!   as the start-up reconcile (`ensure_running`, never a second runtime),
//!   with capped exponential backoff (at once, then 1 s, 2 s, 4 s ... at most
//!   the cap); a `stopped` instance's gateway is stopped again, a `ready`
//!   one's waited for.
//! - **Showing it.** The instance keeps its status (`ready` stays `ready`:
//!   what its user asked for has not changed) and its reason says the
//!   runtime stopped and is being restarted, attempt by attempt; the reason
//!   is put back as it was once the runtime runs again. The choice of a
//!   reason over a new `degraded` status keeps the seed's five statuses and
//!   their transition table, and every client that reads `status_reason`
//!   (the API, the console's overview) shows the interruption unchanged.
//!   `/metrics` counts restarts by outcome and the instances being restored.
//! - **Giving up.** A runtime that dies more often than allowed within the
//!   window (default more than 5 times in 10 minutes) ends its instance in
//!   `error` with the last reason; supervision leaves `error` instances
//!   alone, and the user's create (or the operator's status change)
//!   provisions it again.
//!
//! The per-instance lease ([`Instances::lease`]) orders a restore with a
//! delete: a restore re-reads the instance under the lease, so it never
//! starts a runtime for an instance deleted meanwhile.

use std::collections::VecDeque;
use std::time::Duration;

use clawplane_domain::{Instance, InstanceId, InstanceStatus};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::Instances;
use crate::provision::RuntimeHealth;

/// Settings of the supervision of runtimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisionSettings {
    /// How often each runtime is checked (default 5 s).
    pub interval: Duration,
    /// Restarts allowed within [`Self::window`] before the instance is
    /// `error` (default 5).
    pub restarts_allowed: usize,
    /// The window of [`Self::restarts_allowed`] (default 10 minutes).
    pub window: Duration,
    /// The longest wait between two restarts (default 60 s).
    pub backoff_cap: Duration,
    /// Checks in a row a running but silent runtime may fail (default 3).
    pub unresponsive_checks: u32,
}

impl Default for SupervisionSettings {
    fn default() -> Self {
        SupervisionSettings {
            interval: Duration::from_secs(5),
            restarts_allowed: 5,
            window: Duration::from_secs(600),
            backoff_cap: Duration::from_secs(60),
            unresponsive_checks: 3,
        }
    }
}

impl SupervisionSettings {
    /// The wait before restart number `attempt` (1-based): none for the
    /// first, then 1 s doubling up to the cap.
    pub fn backoff(&self, attempt: usize) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let exp = u32::try_from(attempt - 2).unwrap_or(u32::MAX).min(16);
        Duration::from_secs(1u64 << exp).min(self.backoff_cap)
    }
}

/// What the supervisor remembers of one instance's runtime.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// When it died, within the window.
    deaths: VecDeque<Instant>,
    /// Failed `/healthz` checks in a row of a running process.
    silent: u32,
    /// A restore task runs for it.
    restoring: bool,
}

/// The exits receiver, given back when the supervisor ends (even by a
/// panic), so a supervisor started again still hears of exits.
struct Lent<'a> {
    slot: &'a std::sync::Mutex<Option<UnboundedReceiver<InstanceId>>>,
    rx: Option<UnboundedReceiver<InstanceId>>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.slot.lock() {
            *slot = self.rx.take();
        }
    }
}

/// How a restore attempt ended.
enum Restore {
    /// The runtime runs again.
    Running,
    /// The instance was deleted or changed meanwhile: nothing to do.
    Gone,
}

impl Instances {
    /// Runs for the life of the server: checks each runtime that should
    /// run, and at once each one that exits, and restores the dead ones.
    pub async fn supervise(self) {
        let mut lent = Lent {
            slot: &self.inner.exits,
            rx: self.inner.exits.lock().ok().and_then(|mut s| s.take()),
        };
        let exits = &mut lent.rx;
        let interval = self.inner.settings.supervision.interval;
        loop {
            let list = self.supervised().await;
            if list.is_empty() && !self.pause(interval, exits).await {
                return;
            }
            let gap = interval / u32::try_from(list.len().max(1)).unwrap_or(u32::MAX);
            for id in list {
                if !self.pause(gap, exits).await {
                    return;
                }
                self.check(id).await;
            }
        }
    }

    /// The instances whose runtime should run (`ready`, `stopped`) and that
    /// this provisioner runs.
    async fn supervised(&self) -> Vec<InstanceId> {
        let mut ids = Vec::new();
        for status in [InstanceStatus::Ready, InstanceStatus::Stopped] {
            match self
                .inner
                .store
                .instances_in_status(status, None, 100_000)
                .await
            {
                Ok(list) => ids.extend(list.into_iter().filter(|i| self.is_ours(i)).map(|i| i.id)),
                Err(e) => tracing::warn!(error = %e, "supervision cannot list the instances"),
            }
        }
        ids
    }

    fn is_ours(&self, instance: &Instance) -> bool {
        instance.provisioner.as_deref() == Some(self.inner.provisioner.name())
    }

    /// Waits `gap`, checking at once every runtime reported as exited
    /// meanwhile; `false` when the server shuts down.
    async fn pause(
        &self,
        gap: Duration,
        exits: &mut Option<UnboundedReceiver<InstanceId>>,
    ) -> bool {
        let until = Instant::now() + gap;
        loop {
            let exited = async {
                match exits.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(until) => return true,
                Some(id) = exited => self.check(id).await,
            }
        }
    }

    /// Checks one instance's runtime and starts restoring it when dead.
    pub(super) async fn check(&self, id: InstanceId) {
        if self.is_driven(id) || self.watch(id, |w| w.restoring) {
            return;
        }
        let Ok(instance) = self.inner.store.instance(id).await else {
            return;
        };
        if !matches!(
            instance.status,
            InstanceStatus::Ready | InstanceStatus::Stopped
        ) || !self.is_ours(&instance)
        {
            self.forget(id);
            return;
        }
        let why = match self.inner.provisioner.health(&instance).await {
            RuntimeHealth::Alive => {
                self.watch(id, |w| w.silent = 0);
                return;
            }
            RuntimeHealth::Busy | RuntimeHealth::Unknown => return,
            RuntimeHealth::Unresponsive(why) => {
                let allowed = self.inner.settings.supervision.unresponsive_checks;
                if self.watch(id, |w| {
                    w.silent += 1;
                    w.silent < allowed
                }) {
                    return;
                }
                why
            }
            RuntimeHealth::Dead(why) => why,
        };
        if self.watch(id, |w| std::mem::replace(&mut w.restoring, true)) {
            return;
        }
        tracing::warn!(instance = %id, reason = %why, "the runtime died; restoring it");
        self.inner.metrics.interrupted(true);
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            this.restore(instance, why).await;
            this.watch(id, |w| w.restoring = false);
            this.inner.metrics.interrupted(false);
        });
    }

    /// Restarts the runtime until it runs, the instance goes away, or it
    /// has died too often (then `error`).
    async fn restore(&self, instance: Instance, mut why: String) {
        let id = instance.id;
        let settings = self.inner.settings.supervision;
        let status = instance.status;
        let before = instance.status_reason.clone();
        loop {
            let now = Instant::now();
            let deaths = self.watch(id, |w| {
                w.silent = 0;
                while w
                    .deaths
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > settings.window)
                {
                    w.deaths.pop_front();
                }
                w.deaths.push_back(now);
                w.deaths.len()
            });
            if deaths > settings.restarts_allowed {
                let reason = format!(
                    "the runtime keeps dying ({deaths} times in {} minutes), so it is no longer restarted; last: {why}. Create the instance again to retry.",
                    settings.window.as_secs() / 60
                );
                tracing::error!(instance = %id, reason, "giving up on the runtime");
                self.inner.metrics.runtime_restart("given_up");
                if let Err(e) = self
                    .inner
                    .store
                    .set_instance_status(id, InstanceStatus::Error, Some(&reason))
                    .await
                {
                    tracing::warn!(instance = %id, error = %e, "cannot record the runtime's failure");
                }
                self.forget(id);
                return;
            }
            let wait = settings.backoff(deaths);
            let reason = format!(
                "The runtime stopped unexpectedly ({why}); restarting it{} (attempt {deaths} of {}).",
                if wait.is_zero() {
                    String::new()
                } else {
                    format!(" in {} s", wait.as_secs())
                },
                settings.restarts_allowed
            );
            match self
                .inner
                .store
                .set_instance_reason(id, status, Some(&reason))
                .await
            {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "cannot record the interruption")
                }
            }
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.restart_runtime(id, status).await {
                Ok(Restore::Running) => {
                    tracing::info!(instance = %id, attempt = deaths, "runtime restored");
                    self.inner.metrics.runtime_restart("restored");
                    let _ = self
                        .inner
                        .store
                        .set_instance_reason(id, status, before.as_deref())
                        .await;
                    return;
                }
                Ok(Restore::Gone) => return,
                Err(e) => {
                    tracing::warn!(instance = %id, attempt = deaths, error = %e, "the runtime could not be restored");
                    self.inner.metrics.runtime_restart("failed");
                    why = e;
                }
            }
        }
    }

    /// One restart, under the instance's lease: the same path as the
    /// start-up reconcile, then the gateway as the user left it.
    async fn restart_runtime(
        &self,
        id: InstanceId,
        status: InstanceStatus,
    ) -> Result<Restore, String> {
        let updated = {
            let _lease = self.lease(id).await;
            let instance = self
                .inner
                .store
                .instance(id)
                .await
                .map_err(|e| e.to_string())?;
            if instance.status != status {
                return Ok(Restore::Gone);
            }
            self.ensure_runtime(&instance).await?
        };
        if status == InstanceStatus::Stopped {
            self.keep_stopped(&updated).await;
            return Ok(Restore::Running);
        }
        let target = self.target_of(&updated).await.map_err(|e| e.reason())?;
        let wait = self.inner.settings.provision_timeout;
        match tokio::time::timeout(wait, self.wait_gateway_running(id, status, &target)).await {
            Ok(Ok(())) => Ok(Restore::Running),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "its gateway did not run within {} s of the restart",
                wait.as_secs()
            )),
        }
    }

    /// Reads or changes what the supervisor remembers of `id`.
    fn watch<T>(&self, id: InstanceId, f: impl FnOnce(&mut Watch) -> T) -> T {
        let mut map = self
            .inner
            .watches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(map.entry(id).or_default())
    }

    fn forget(&self, id: InstanceId) {
        if let Ok(mut map) = self.inner.watches.lock() {
            if map.get(&id).is_some_and(|w| !w.restoring) {
                map.remove(&id);
            }
        }
    }

    fn is_driven(&self, id: InstanceId) -> bool {
        self.inner
            .in_flight
            .lock()
            .map(|set| set.contains(&id))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_once_doubles_and_is_capped() {
        let s = SupervisionSettings::default();
        let waits: Vec<u64> = (1..=9).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(waits, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(s.backoff(usize::MAX), s.backoff_cap);
    }
}
