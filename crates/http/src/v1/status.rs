//! `GET /v1/status`, `GET /v1/logs`, `GET /v1/usage` and `GET /healthz`:
//! what the runtime says about its gateway, its cell and itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::present::present;
use super::storage::BackupSummary;

/// `GET /v1/status`: answered from memory, never changes anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The gateway's supervisor, with [`GatewayStatus::uptime_ms`].
    pub gateway: GatewayStatus,
    /// The latest backup (`null`: none yet).
    pub last_backup: Option<BackupSummary>,
    /// The gateway's cell, its limits and readings.
    pub cell: CellStatus,
    /// The instance's id.
    pub instance_id: String,
    /// The instance type the runtime was started with.
    pub instance_type: String,
    /// The installed OpenClaw version (the seed's field; also in `versions`).
    pub version: String,
    /// Versions of what runs.
    pub versions: Versions,
}

/// [`Status::versions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// OpenClaw's.
    pub openclaw: String,
    /// The runtime agent's (clawplane's).
    pub clawplane: String,
}

/// The gateway's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayState {
    /// Not running, on purpose.
    Stopped,
    /// Started; not ready yet.
    Starting,
    /// Ready.
    Running,
    /// Being stopped.
    Stopping,
    /// Exited on its own; a restart is scheduled.
    Crashed,
}

impl GatewayState {
    /// The wire's name: `stopped`, `starting`, `running`, `stopping`, `crashed`.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayState::Stopped => "stopped",
            GatewayState::Starting => "starting",
            GatewayState::Running => "running",
            GatewayState::Stopping => "stopping",
            GatewayState::Crashed => "crashed",
        }
    }
}

impl std::fmt::Display for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the gateway's supervisor publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Lifecycle state.
    pub state: GatewayState,
    /// The gateway's pid while it runs.
    pub pid: Option<u32>,
    /// Milliseconds since the current process started. Only `/v1/status`
    /// has the field (`Some`, `null` while nothing runs); the gateway routes'
    /// answers do not (`None`, left out).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub uptime_ms: Option<Option<i64>>,
    /// When the current process started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it last became ready.
    pub ready_at: Option<DateTime<Utc>>,
    /// Starts after the first: crash recoveries and requested restarts.
    pub restarts: u32,
    /// Exits that nobody asked for.
    pub crashes: u32,
    /// How the last process ended.
    pub last_exit: Option<ExitInfo>,
    /// The last failure, for people.
    pub last_error: Option<String>,
}

/// How the last gateway process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitInfo {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when it was killed.
    pub signal: Option<i32>,
    /// When.
    pub at: DateTime<Utc>,
}

/// [`Status::cell`]: the sandbox the gateway runs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CellStatus {
    /// `cell` or `none` (`--isolation none`: every other field is `null`).
    pub isolation: String,
    /// The cell's uid (and gid).
    pub uid: Option<u32>,
    /// Its limits.
    pub limits: Option<CellLimits>,
    /// Egress to public addresses: `public` or `none`.
    pub egress: Option<String>,
    /// Memory in use now, in bytes (cgroup).
    pub memory_bytes: Option<u64>,
    /// CPU time used by the cell's processes, in microseconds (cgroup).
    pub cpu_usec: Option<u64>,
    /// Processes in the cell now (cgroup).
    pub processes: Option<u64>,
    /// Disk used by the state directory and home, in bytes (last scan).
    pub disk_bytes: Option<u64>,
    /// Why the runtime stopped the gateway itself (its disk quota), if it did.
    pub stopped_reason: Option<String>,
}

impl CellStatus {
    /// Whether the gateway runs in a cell (`isolation` is `cell`).
    pub fn is_isolated(&self) -> bool {
        self.isolation == "cell"
    }

    /// Whether the cell reaches public addresses (`egress` is `public`).
    pub fn has_public_egress(&self) -> bool {
        self.egress.as_deref() == Some("public")
    }
}

/// [`CellStatus::limits`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CellLimits {
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// CPUs (fractional).
    pub cpus: f64,
    /// Processes.
    pub pids: u32,
    /// Open files per process.
    pub open_files: u32,
    /// Disk quota of the state directory and home, bytes.
    pub disk_quota_bytes: u64,
}

/// `GET /v1/logs?lines=N`: the gateway's latest output, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// One line each.
    pub lines: Vec<String>,
}

/// `GET /v1/usage`: the model spend the gateway reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// The gateway's `usage.cost` answer for the last 30 days, as it is
    /// (OpenClaw's JSON: `daily[].date`, `daily[].totalCost`, `cacheStatus`...).
    pub usage: Value,
}

/// `GET /healthz`: the agent answers (says nothing about its gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `live`.
    pub status: String,
}
