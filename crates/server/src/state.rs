//! Shared state handed to every handler.

use std::sync::Arc;

use clawplane_billing::Ledger;
use clawplane_store::{Store, Vault};

use crate::instances::Instances;
use crate::metrics::Metrics;
use crate::ServerConfig;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Plaintext secrets in and out.
    pub vault: Vault,
    /// The credit ledger.
    pub ledger: Ledger,
    /// Instances: provisioning, runtimes, deletion.
    pub instances: Instances,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The console's sign-in state.
    pub console: Arc<crate::console::ConsoleState>,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// The ingress's connection pool to the runtimes.
    pub ingress: clawplane_proxy::Proxy,
    /// The background tasks' states, for `/readyz`.
    pub tasks: crate::tasks::TaskHealth,
    /// With the model proxy: the operator's default model, which every
    /// instance's agent uses unless its user chose another.
    pub included_model: Option<Arc<str>>,
}
