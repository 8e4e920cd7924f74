//! Provisioners: how an instance gets a runtime. One interface, two kinds:
//!
//! - [`local::LocalProvisioner`] (the default): one `clawplane runtime` child
//!   process per instance on this host, with its own directory, ports and
//!   environment, found again after a restart of the control plane;
//! - [`static_env::StaticProvisioner`]: the seed's environment-driven runtime
//!   URL and names, for runtimes someone else runs.

pub mod local;
pub mod static_env;

use async_trait::async_trait;
use clawplane_domain::{Instance, InstanceFields, InstanceId};
use clawplane_secrets::SecretString;
use serde::Serialize;
use tokio::sync::mpsc;

/// What a runtime needs to be given (never logged, never returned).
#[derive(Clone)]
pub struct RuntimeSecrets {
    /// What the control plane presents to the runtime.
    pub service_token: SecretString,
    /// What the runtime presents to its gateway.
    pub gateway_token: SecretString,
    /// `OPENCLAW_PROVIDER_KEYS`: a JSON object of provider environment variables.
    pub provider_keys: Option<SecretString>,
    /// `CLAWPLANE_MODEL_TOKEN`: the instance's token for the model proxy,
    /// when the operator includes models.
    pub model_token: Option<SecretString>,
}

impl std::fmt::Debug for RuntimeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeSecrets([redacted])")
    }
}

/// Why provisioning failed; the message is for the instance's status reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ProvisionError(pub String);

/// What a provisioner can tell of a runtime without asking it to do anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeHealth {
    /// Its process runs and answers `/healthz`.
    Alive,
    /// Its process runs but did not answer `/healthz` (busy, or hung).
    Unresponsive(String),
    /// Nothing runs for it: the reason says what was found.
    Dead(String),
    /// A provisioning step of this provisioner is under way: ask again later.
    Busy,
    /// This provisioner cannot tell (someone else runs the runtime).
    Unknown,
}

/// The newest backup of an instance, as its backup store has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptBackup {
    /// The backup's id.
    pub id: String,
    /// When it was written (RFC 3339).
    pub created_at: String,
    /// Why it was taken (`scheduled`, `protective`, ...).
    pub trigger: String,
}

/// The interface every provisioner implements.
#[async_trait]
pub trait Provisioner: Send + Sync {
    /// `local`, `static`.
    fn name(&self) -> &'static str;

    /// Creates (or finds again) the instance's runtime and returns the
    /// fields to record on the instance (runtime URL and name at least).
    async fn provision(
        &self,
        instance: &Instance,
        secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError>;

    /// Makes sure the runtime of an existing instance runs, without ever
    /// starting a second one (after a restart of the control plane).
    async fn ensure_running(
        &self,
        instance: &Instance,
        secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError>;

    /// Stops the runtime and starts it again with `secrets` (new provider
    /// keys reach the gateway this way). The state directory is kept.
    async fn restart(
        &self,
        instance: &Instance,
        secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError>;

    /// Stops and removes the runtime (its backups are kept).
    async fn remove(&self, instance: &Instance) -> Result<(), ProvisionError>;

    /// Whether the instance's runtime runs (cheap: its process, then its
    /// `/healthz`). Provisioners that do not run runtimes cannot tell.
    async fn health(&self, _instance: &Instance) -> RuntimeHealth {
        RuntimeHealth::Unknown
    }

    /// The ids of instances whose runtime this provisioner started and which
    /// exited without being asked to, as they exit (taken once, by the
    /// supervisor; `None` when the provisioner cannot see exits).
    fn take_exits(&self) -> Option<mpsc::UnboundedReceiver<InstanceId>> {
        None
    }

    /// The newest backup of the instance, read from its backup store
    /// without the runtime (which may be dead); `None` when there is none
    /// or the provisioner cannot read it.
    async fn last_backup(&self, _instance: &Instance) -> Option<KeptBackup> {
        None
    }
}
