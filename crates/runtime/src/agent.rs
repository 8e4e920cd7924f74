//! The agent: builds every part from its settings, then runs the gateway,
//! the backup schedule and the `/v1` API until shutdown.
//!
//! Start-up order: find the installation, open the backup store (both are
//! fatal with one readable line when they fail), stop a gateway left over by
//! a previous agent, restore the latest backup when the gateway's state
//! directory is empty, write the gateway's config, then serve `/v1` at once
//! and start the gateway in the background.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Duration;

use clawplane_backup::{BackupStore, BackupTarget};
use clawplane_http::ListenerLimits;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::backups;
use crate::cell::Cell;
use crate::gateway::config_file::{self, ManagedConfig};
use crate::gateway::{process, GatewaySpec, GatewayState, LogSink, Supervisor, SupervisorOptions};
use crate::install;
use crate::rpc::GatewayRpc;
use crate::shared::Shared;
use crate::RuntimeConfig;

/// Why the agent could not start. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// OpenClaw is not installed.
    #[error(transparent)]
    NotInstalled(#[from] install::InstallError),
    /// The backup store cannot be used.
    #[error(transparent)]
    Backup(#[from] clawplane_backup::BackupError),
    /// The cell could not be prepared.
    #[error("cannot prepare the gateway's cell: {0}")]
    Cell(String),
    /// A directory could not be prepared.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The `/v1` listener's limits unless [`Agent::with_listener_limits`] says
/// otherwise: the listener's defaults, with fewer connections, since only
/// `serve` talks to a runtime.
pub const LISTENER_LIMITS: ListenerLimits = ListenerLimits {
    max_connections: 256,
    ..ListenerLimits::DEFAULT
};

/// A built agent, not yet running.
pub struct Agent {
    shared: Arc<Shared>,
    listener: TcpListener,
    limits: ListenerLimits,
    supervisor_task: tokio::task::JoinHandle<()>,
}

impl Agent {
    /// Prepares everything; fails with a readable error.
    pub async fn build(config: RuntimeConfig, listener: TcpListener) -> Result<Agent, AgentError> {
        let installation = install::find(&config.cache_dir, &config.openclaw_version)?;
        let target = BackupTarget::parse(&config.backup_url, &config.s3)?;
        let backups = BackupStore::open(&target, &config.instance_id).await?;
        let mut spec = GatewaySpec {
            installation: installation.clone(),
            root: config.state_dir.clone(),
            port: config.gateway_port,
            token: config.gateway_token.clone(),
            extra_env: config.provider_env.clone(),
            cell: None,
        };
        let gateway_logs = spec.gateway_json_log().parent().map(|p| p.to_path_buf());
        for dir in [config.state_dir.clone(), spec.home(), spec.logs_dir()]
            .into_iter()
            .chain(gateway_logs)
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| AgentError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
        }
        stop_leftover_gateway(&spec).await;
        if let Some(settings) = &config.cell {
            let cell = Cell::prepare(
                settings.clone(),
                config.state_dir.clone(),
                &installation,
                config.gateway_port,
            )
            .await
            .map_err(AgentError::Cell)?;
            spec.cell = Some(cell);
        } else {
            tracing::warn!("isolation is none: the gateway and its agent's commands run as this agent's own user, with its access");
        }
        let cell = spec.cell.clone();
        let state_dir = spec.state_dir();
        // Read once: decides the restore and seeds `lastBackup`.
        let latest = backups.latest().await?;
        if is_empty_dir(&state_dir) {
            if let Some(latest) = &latest {
                tracing::info!(backup = %latest.id, "the gateway's state is empty: restoring the latest backup");
                backups
                    .restore_and_swap(Some(&latest.id), &state_dir)
                    .await?;
            }
        }
        config_file::write(
            &spec.config_path(),
            &ManagedConfig {
                port: config.gateway_port,
                bind: config.bind,
                trusted_proxies: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
                log_file: spec.gateway_json_log(),
                models: config.models.clone(),
            },
        )
        .map_err(|source| AgentError::Io {
            path: spec.config_path().display().to_string(),
            source,
        })?;
        if config.dev_mode {
            tracing::warn!("OPENCLAW_DEV_MODE is set, but OpenClaw {} has no insecure Control UI auth to turn on: devices still pair", installation.version);
        }
        process::become_subreaper();
        let sink = Arc::new(LogSink::new(
            spec.logs_dir().join("gateway.log"),
            10 * 1024 * 1024,
            2000,
        ));
        let options = SupervisorOptions {
            stop_grace: config.stop_grace,
            ..Default::default()
        };
        let (supervisor, supervisor_task) = Supervisor::spawn(spec, options, sink.clone());
        let last_backup = RwLock::new(latest);
        let shared = Arc::new(Shared {
            rpc: GatewayRpc::new(config.gateway_port, config.gateway_token.clone()),
            config,
            supervisor,
            backups,
            sink,
            last_backup,
            storage_lock: Mutex::new(()),
            openclaw_version: installation.version,
            // The front door (`clawplane serve`) enforces the operator's
            // idle and total limits; this hop only bounds what it must.
            proxy: clawplane_proxy::Proxy::new(clawplane_proxy::Limits {
                idle: std::time::Duration::from_secs(24 * 60 * 60),
                total: std::time::Duration::from_secs(30 * 24 * 60 * 60),
                ..clawplane_proxy::Limits::default()
            }),
            cell,
        });
        Ok(Agent {
            shared,
            listener,
            limits: LISTENER_LIMITS,
            supervisor_task,
        })
    }

    /// Serves `/v1` within `limits` instead of [`LISTENER_LIMITS`].
    pub fn with_listener_limits(mut self, limits: ListenerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// What the handlers share (for tests and benchmarks).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown`; then takes a protective backup, stops the
    /// gateway (no process of it survives) and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Agent {
            shared,
            listener,
            limits,
            supervisor_task,
        } = self;
        let token = CancellationToken::new();
        if shared.config.autostart {
            let s = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = s.supervisor.start().await {
                    tracing::error!(error = %e, "the gateway did not start");
                }
            });
        }
        let schedule = tokio::spawn(backups::schedule(shared.clone(), token.clone()));
        let disk = tokio::spawn(watch_disk(shared.clone(), token.clone()));
        let signal = token.clone();
        let serve =
            clawplane_http::serve(listener, api::router(shared.clone()), limits, async move {
                shutdown.await;
                signal.cancel();
            });
        // Scoped so that the connections still open after the grace are
        // closed (dropping `serve` closes them) before the protective backup.
        let result = {
            tokio::pin!(serve);
            tokio::select! {
                r = &mut serve => r,
                _ = token.cancelled() => tokio::time::timeout(Duration::from_secs(10), &mut serve).await.unwrap_or(Ok(())),
            }
        };
        token.cancel();
        let _ = schedule.await;
        let _ = disk.await;
        if shared.supervisor.status().state == GatewayState::Running {
            if let Err(e) = backups::take(&shared, "before-stop").await {
                tracing::warn!(error = %e, "protective backup before shutdown failed");
            }
        }
        let _ = shared.supervisor.stop().await;
        drop(shared);
        let _ = tokio::time::timeout(Duration::from_secs(5), supervisor_task).await;
        result
    }
}

fn is_empty_dir(dir: &std::path::Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    }
}

/// A previous agent killed hard may leave its gateway running on the state
/// dir (cells and `setpriv --pdeathsig` make that rare): stop it (it holds
/// the state lock) before starting a new one, then kill whatever else still
/// names the state directory (a worker that left the gateway's tree, a
/// cell's sandbox or network helper). This agent has started nothing yet,
/// so all of it is a previous agent's: a restart finds nothing to fight with.
async fn stop_leftover_gateway(spec: &GatewaySpec) {
    stop_recorded_gateway(spec).await;
    for pid in process::mentioning(&spec.root) {
        tracing::warn!(pid, "killing a process left over by a previous agent");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

async fn stop_recorded_gateway(spec: &GatewaySpec) {
    let Ok(text) = std::fs::read_to_string(spec.pid_file()) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_gateway = String::from_utf8_lossy(&cmdline).contains("openclaw")
        || std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.contains("openclaw"));
    if process::is_alive(pid) && is_gateway {
        tracing::warn!(pid, "stopping a gateway left over by a previous agent");
        process::terminate_tree(pid, Duration::from_secs(10)).await;
    }
    let _ = std::fs::remove_file(spec.pid_file());
}

/// Measures the cell's disk use every minute; past the quota the gateway is
/// stopped and the status says why.
async fn watch_disk(shared: Arc<Shared>, token: CancellationToken) {
    let Some(cell) = shared.cell.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let measuring = cell.clone();
        let Ok(used) = tokio::task::spawn_blocking(move || measuring.measure_disk()).await else {
            continue;
        };
        let state = shared.supervisor.status().state;
        if let (Some(reason), false) = (cell.over_quota(used), state == GatewayState::Stopped) {
            tracing::warn!("{reason}");
            let _ = shared.supervisor.stop().await;
            cell.set_stopped_reason(reason);
        }
    }
}
