//! Building and running the server. Start-up takes its listener and a
//! shutdown signal as arguments, so tests bind port 0 and stop it at will.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

use clawplane_billing::{jobs, Ledger, Meter};
use clawplane_secrets::KeyRing;
use clawplane_store::{Store, Vault};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::instances::fleet::RuntimeFleet;
use crate::instances::Instances;
use crate::metrics::Metrics;
use crate::provision::Provisioner;
use crate::routes::router;
use crate::state::AppState;
use crate::ServerConfig;

/// A built, not yet running, server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
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
            config: Arc::new(config),
        };
        Application { listener, state }
    }

    /// The address it listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish
    /// for at most the configured grace period, stops the background jobs and
    /// the reconciler at a safe point, and closes the store. Runtimes keep
    /// running: the next start finds them again.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application { listener, state } = self;
        let token = CancellationToken::new();
        // Expired console sessions, door passes and door cookies go on a
        // schedule, not only when someone signs out.
        let sweeper = crate::console::session::spawn_sweeper(
            state.store.clone(),
            crate::console::session::SWEEP_INTERVAL,
            token.clone(),
        );
        let reconciler = tokio::spawn(state.instances.clone().reconcile());
        let jobs = state.config.run_jobs.then(|| {
            let meter = Meter::new(
                state.ledger.clone(),
                Arc::new(RuntimeFleet::new(state.instances.clone())),
            );
            let interval = state.config.billing.metering_interval;
            tokio::spawn(jobs::run(
                state.ledger.clone(),
                meter,
                interval,
                token.clone(),
            ))
        });
        let grace = state.config.shutdown_grace;
        let store = state.store.clone();
        let instances = state.instances.clone();
        let signal = token.clone();
        let serve = axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            signal.cancel();
        })
        .into_future();
        tokio::pin!(serve);
        let result = tokio::select! {
            r = &mut serve => r,
            _ = token.cancelled() => match tokio::time::timeout(grace, &mut serve).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; closing them");
                    Ok(())
                }
            },
        };
        token.cancel();
        instances.shutdown(grace).await;
        let _ = tokio::time::timeout(grace, reconciler).await;
        if let Some(jobs) = jobs {
            if tokio::time::timeout(grace, jobs).await.is_err() {
                tracing::warn!("the billing job did not stop in time");
            }
        }
        if tokio::time::timeout(grace, sweeper).await.is_err() {
            tracing::warn!("the session sweeper did not stop in time");
        }
        store.close().await;
        tracing::info!("stopped");
        result
    }
}
