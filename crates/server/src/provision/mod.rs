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
use clawplane_domain::{Instance, InstanceFields};
use clawplane_secrets::SecretString;

/// What a runtime needs to be given (never logged, never returned).
#[derive(Clone)]
pub struct RuntimeSecrets {
    /// What the control plane presents to the runtime.
    pub service_token: SecretString,
    /// What the runtime presents to its gateway.
    pub gateway_token: SecretString,
    /// `OPENCLAW_PROVIDER_KEYS`: a JSON object of provider environment variables.
    pub provider_keys: Option<SecretString>,
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
}
