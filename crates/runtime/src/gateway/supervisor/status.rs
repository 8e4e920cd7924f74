//! What the supervisor publishes: the gateway's lifecycle state, how its
//! last process ended, and the status the agent reports.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The gateway's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayState {
    /// Not running, on purpose.
    Stopped,
    /// Started; `/readyz` has not answered 200 yet.
    Starting,
    /// Ready.
    Running,
    /// Being stopped.
    Stopping,
    /// Exited on its own; a restart is scheduled.
    Crashed,
}

/// How the last gateway process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitInfo {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when it was killed.
    pub signal: Option<i32>,
    /// When.
    pub at: DateTime<Utc>,
}

/// What the supervisor publishes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Lifecycle state.
    pub state: GatewayState,
    /// The gateway's pid while it runs.
    pub pid: Option<u32>,
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

impl GatewayStatus {
    pub(super) fn new() -> Self {
        GatewayStatus {
            state: GatewayState::Stopped,
            pid: None,
            started_at: None,
            ready_at: None,
            restarts: 0,
            crashes: 0,
            last_exit: None,
            last_error: None,
        }
    }

    /// Milliseconds since the current process started.
    pub fn uptime_ms(&self) -> Option<i64> {
        self.started_at
            .filter(|_| self.pid.is_some())
            .map(|t| (Utc::now() - t).num_milliseconds().max(0))
    }
}
