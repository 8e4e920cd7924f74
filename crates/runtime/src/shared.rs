//! What the agent's parts share while it runs: its settings, the gateway's
//! supervisor, RPC and output, the backup store and the latest backup, the
//! ingress's proxy and the cell. Built by [`crate::agent`]; read by the `/v1`
//! handlers ([`crate::api`]) and the backup schedule ([`crate::backups`]),
//! which depend on this module and not on the agent.

use std::sync::Arc;

use clawplane_backup::{BackupStore, BackupSummary, Retention};
use tokio::sync::{Mutex, RwLock};

use crate::cell::{Cell, CellStatus};
use crate::gateway::{LogSink, Supervisor};
use crate::rpc::GatewayRpc;
use crate::RuntimeConfig;

/// What every handler shares.
pub struct Shared {
    /// Settings.
    pub config: RuntimeConfig,
    /// The gateway's supervisor.
    pub supervisor: Supervisor,
    /// The gateway's admin RPC.
    pub rpc: GatewayRpc,
    /// The instance's backups.
    pub backups: BackupStore,
    /// The gateway's output.
    pub sink: Arc<LogSink>,
    /// The latest backup, read from the store at start and kept current.
    pub last_backup: RwLock<Option<BackupSummary>>,
    /// One backup or restore at a time.
    pub storage_lock: Mutex<()>,
    /// The installed OpenClaw version.
    pub openclaw_version: String,
    /// The ingress's connection pool to the gateway.
    pub proxy: clawplane_proxy::Proxy,
    /// The gateway's cell (`None`: `--isolation none`).
    pub cell: Option<Arc<Cell>>,
}

impl Shared {
    /// The cell's part of `/v1/status`.
    pub fn cell_status(&self) -> CellStatus {
        self.cell
            .as_ref()
            .map(|c| c.status())
            .unwrap_or_else(CellStatus::none)
    }

    /// Backup retention from the settings.
    pub fn retention(&self) -> Retention {
        Retention {
            keep_last: self.config.keep_last,
            keep_daily_days: self.config.keep_daily_days,
        }
    }
}
