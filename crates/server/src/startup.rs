//! Building and running the server. Start-up takes its listener and a
//! shutdown signal as arguments, so tests bind port 0 and stop it at will.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use clawplane_billing::{jobs, Ledger, Meter};
use clawplane_secrets::KeyRing;
use clawplane_store::{Store, Vault};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::router;
use crate::instances::fleet::RuntimeFleet;
use crate::instances::Instances;
use crate::metrics::Metrics;
use crate::provision::Provisioner;
use crate::state::AppState;
use crate::tasks::{TaskHealth, Tasks};
use crate::ServerConfig;

/// A built, not yet running, server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    models: Option<ModelsListener>,
}

/// The model proxy's own listener and what it offers.
pub struct ModelsListener {
    /// Where it listens (`CLAWPLANE_MODELS_LISTEN`).
    pub listener: TcpListener,
    /// The operator's models.
    pub catalog: clawplane_models::Catalog,
    /// Its timeouts and limits.
    pub settings: clawplane_models::proxy::ProxySettings,
}

impl Application {
    /// Wires the parts together around an already bound listener.
    pub fn build(
        config: ServerConfig,
        store: Store,
        keys: KeyRing,
        provisioner: Arc<dyn Provisioner>,
        listener: TcpListener,
    ) -> Self {
        let ledger = Ledger::new(store.clone(), config.billing.clone());
        let vault = Vault::new(store.clone(), keys);
        let metrics = Metrics::new();
        let instances = Instances::new(
            store.clone(),
            vault.clone(),
            ledger.clone(),
            provisioner,
            config.instances.clone(),
            metrics.clone(),
        );
        let state = AppState {
            vault,
            store,
            ledger,
            instances,
            metrics,
            console: Arc::new(crate::console::ConsoleState::new()),
            ingress: clawplane_proxy::Proxy::new(config.ingress.limits),
            tasks: TaskHealth::default(),
            config: Arc::new(config),
            included_model: None,
        };
        Application {
            listener,
            state,
            models: None,
        }
    }

    /// Also answers the metered model proxy on its own listener.
    pub fn with_models(mut self, models: ModelsListener) -> Self {
        self.state.included_model = Some(models.catalog.default_model().id.as_str().into());
        self.models = Some(models);
        self
    }

    /// The address it listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then, within one deadline (the
    /// configured grace period from that moment), lets in-flight requests
    /// finish, stops the background tasks at a safe point (aborting what is
    /// left at the deadline), and closes the store. Runtimes keep running:
    /// the next start finds them again.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            state,
            models,
        } = self;
        warn_of_unset_keys(&state.config);
        let token = CancellationToken::new();
        let hold_age = models
            .as_ref()
            .map(|m| m.settings.longest_request() + crate::models::sweep::MARGIN);
        let models = match models {
            Some(m) => Some(serve_models(m, &state, token.clone()).await?),
            None => None,
        };
        let tasks = Tasks::new(token.clone(), state.tasks.clone(), state.metrics.clone());
        spawn_background(&tasks, &state, &token, hold_age);
        let grace = state.config.shutdown_grace;
        let limits = state.config.listener;
        let store = state.store.clone();
        let instances = state.instances.clone();
        let signal = token.clone();
        let serve = clawplane_http::serve(listener, router(state), limits, async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            signal.cancel();
        });
        // One deadline for everything, from the moment shutdown begins.
        // Scoped so that connections still open at the deadline are closed
        // (dropping `serve` closes them) before the rest stops.
        let (result, deadline) = {
            tokio::pin!(serve);
            tokio::select! {
                r = &mut serve => (r, Instant::now() + grace),
                _ = token.cancelled() => {
                    let deadline = Instant::now() + grace;
                    let r = match tokio::time::timeout_at(deadline, &mut serve).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; closing them");
                            Ok(())
                        }
                    };
                    (r, deadline)
                }
            }
        };
        token.cancel();
        if let Some(models) = models {
            if tokio::time::timeout_at(deadline, models).await.is_err() {
                tracing::warn!("model requests did not finish in time; closing them");
            }
        }
        instances.shutdown_until(deadline).await;
        tasks.shutdown(deadline).await;
        store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// An unset service key is a warning at start (each request it would
/// authenticate is then a 401, never a 500).
fn warn_of_unset_keys(config: &ServerConfig) {
    if config.internal_key.is_none() {
        tracing::warn!("OA_INTERNAL_KEY is not set: /api/openclaw/* accepts only API tokens (Authorization: Bearer); X-OA-Internal-Key is refused with 401");
    }
    if config.control_key.is_none() {
        tracing::warn!(
            "OA_CONTROL_KEY is not set: /control/openclaw/* refuses every request with 401"
        );
    }
}

/// Releases the holds an earlier process left open (its requests ended
/// with it), then serves the model proxy until `stop`.
async fn serve_models(
    m: ModelsListener,
    state: &AppState,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let started = chrono::Utc::now();
    match state.ledger.recover_holds(started).await {
        Ok(report) if report.released > 0 => {
            tracing::warn!(
                released = report.released,
                "released model holds left open by an earlier run"
            )
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot recover model holds now; the next start tries again")
        }
    }
    let meter = Arc::new(crate::models::ModelAccounts::new(
        state.store.clone(),
        state.ledger.clone(),
        state.metrics.clone(),
    ));
    let proxy = clawplane_models::proxy::Proxy::new(m.catalog, meter, m.settings)
        .map_err(std::io::Error::other)?;
    let app = clawplane_models::proxy::router(Arc::new(proxy));
    let limits = state.config.listener;
    tracing::info!(listen = %m.listener.local_addr()?, "model proxy listening");
    Ok(tokio::spawn(async move {
        let stopped = stop.clone();
        if let Err(e) =
            clawplane_http::serve(
                m.listener,
                app,
                limits,
                async move { stopped.cancelled().await },
            )
            .await
        {
            tracing::error!(error = %e, "the model proxy's listener failed");
        }
    }))
}

/// The server's long-running tasks, each started again if it ends early;
/// with the model proxy (`hold_age`: when an open hold counts as left
/// open), also the sweep of model holds.
fn spawn_background(
    tasks: &Tasks,
    state: &AppState,
    token: &CancellationToken,
    hold_age: Option<std::time::Duration>,
) {
    let instances = state.instances.clone();
    tasks.spawn("reconciler", move || instances.clone().reconcile());
    let instances = state.instances.clone();
    tasks.spawn("supervisor", move || instances.clone().supervise());
    let (store, stop) = (state.store.clone(), token.clone());
    tasks.spawn("session sweeper", move || {
        let sweeper = crate::console::session::spawn_sweeper(
            store.clone(),
            crate::console::session::SWEEP_INTERVAL,
            stop.clone(),
        );
        async move {
            if let Err(e) = sweeper.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    });
    if let Some(age) = hold_age {
        let (ledger, stop) = (state.ledger.clone(), token.clone());
        tasks.spawn("model hold sweep", move || {
            crate::models::sweep::sweep_holds(
                ledger.clone(),
                age,
                crate::models::sweep::SWEEP_INTERVAL,
                stop.clone(),
            )
        });
    }
    if state.config.run_jobs {
        let (ledger, instances, stop) =
            (state.ledger.clone(), state.instances.clone(), token.clone());
        let interval = state.config.billing.metering_interval;
        tasks.spawn("billing", move || {
            let meter = Meter::new(
                ledger.clone(),
                Arc::new(RuntimeFleet::new(instances.clone())),
            );
            jobs::run(ledger.clone(), meter, interval, stop.clone())
        });
    }
}
