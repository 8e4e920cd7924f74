//! Cells: the gateway, and everything it starts, run in a sandbox of their
//! own, while this agent stays outside with the service token.
//!
//! A cell is built from well-known parts only (Debian's packages):
//! - `bubblewrap` gives it its own mount, PID, network, IPC and UTS
//!   namespaces: it sees the system's `/usr` and a few files of `/etc`
//!   read-only, the Node and OpenClaw install read-only, its own state
//!   directory and home read-write, a private `/tmp`, and nothing else;
//!   `--die-with-parent` ties it to the agent;
//! - util-linux's `setpriv` drops it to its own uid and gid (one per
//!   instance, chosen by the control plane), with no capabilities and
//!   `no_new_privs`; `prlimit` sets its open-file, process and core limits;
//! - cgroups (v1 controllers or v2, always beneath the agent's own cgroup)
//!   limit its memory, CPU and processes and measure them;
//! - `slirp4netns` gives it egress to public addresses (NAT, with the host's
//!   loopback disabled); private ranges and the host's own addresses are
//!   unreachable routes inside the cell. With egress off it has loopback only.
//!
//! The agent reaches the gateway through [`net::Forwarder`]: it listens on
//! the host's loopback port and opens each connection from inside the cell's
//! network namespace, so the gateway sees a loopback client as before. The
//! operator's `CLAWPLANE_CELL_ALLOW` endpoints are made reachable inside the
//! cell at the same address the same way, in the other direction.

pub mod cgroup;
pub mod check;
pub mod files;
pub mod net;
pub mod sandbox;
pub mod settings;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use settings::{CellSettings, Egress, Isolation};

use crate::install::Installation;

/// What `/v1/status` says about the cell.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CellStatus {
    /// `cell` or `none`.
    pub isolation: &'static str,
    /// The cell's uid (and gid).
    pub uid: Option<u32>,
    /// Its limits.
    pub limits: Option<CellLimitsView>,
    /// Egress to public addresses: `public` or `none`.
    pub egress: Option<&'static str>,
    /// Memory in use now, in bytes (cgroup).
    pub memory_bytes: Option<u64>,
    /// CPU time used by this cell's processes, in microseconds (cgroup).
    pub cpu_usec: Option<u64>,
    /// Processes in the cell now (cgroup).
    pub processes: Option<u64>,
    /// Disk used by the state directory and home, in bytes (last scan).
    pub disk_bytes: Option<u64>,
    /// Why the cell's gateway was stopped by the agent, if it was.
    pub stopped_reason: Option<String>,
}

/// The limits, as shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CellLimitsView {
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

/// One instance's cell: its settings, its cgroup and, while the gateway
/// runs, its network namespace.
pub struct Cell {
    settings: CellSettings,
    layout: sandbox::Layout,
    cgroup: cgroup::CellCgroup,
    forwarder: net::Forwarder,
    running: Mutex<Option<net::RunningNet>>,
    disk_bytes: Mutex<Option<u64>>,
    stopped_reason: Mutex<Option<String>>,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell")
            .field("uid", &self.settings.uid)
            .finish_non_exhaustive()
    }
}

impl Cell {
    /// Prepares the cell of the runtime in `root` (its files and cgroup) and
    /// starts listening on the gateway's host port. Fails with a sentence
    /// that says what is missing.
    pub async fn prepare(
        settings: CellSettings,
        root: PathBuf,
        installation: &Installation,
        gateway_port: u16,
    ) -> Result<Arc<Cell>, String> {
        let layout = sandbox::Layout::new(root, installation);
        files::write_identity(&layout, settings.uid)
            .map_err(|e| format!("cannot write the cell's files: {e}"))?;
        let cgroup = cgroup::CellCgroup::create(&settings)?;
        let forwarder = net::Forwarder::bind(gateway_port).await.map_err(|e| {
            format!("cannot listen on the gateway port 127.0.0.1:{gateway_port}: {e}")
        })?;
        Ok(Arc::new(Cell {
            settings,
            layout,
            cgroup,
            forwarder,
            running: Mutex::new(None),
            disk_bytes: Mutex::new(None),
            stopped_reason: Mutex::new(None),
        }))
    }

    /// The settings.
    pub fn settings(&self) -> &CellSettings {
        &self.settings
    }

    /// The `program` and `args` of a command that runs `inner` (a program
    /// and its arguments) inside this cell.
    pub fn wrap(&self, inner: &[std::ffi::OsString]) -> Vec<std::ffi::OsString> {
        sandbox::argv(
            &self.layout,
            &self.settings,
            &self.cgroup.procs_files(),
            inner,
        )
    }

    /// Before a start: refuses a state past its disk quota (saying so in the
    /// status), then gives the state directory and home to the cell's uid
    /// (nothing of the cell runs now, so nothing can race the walk).
    pub fn before_start(&self) -> std::io::Result<()> {
        let used = self.measure_disk();
        if let Some(reason) = self.over_quota(used) {
            self.set_stopped_reason(reason.clone());
            return Err(std::io::Error::other(reason));
        }
        *self.lock_reason() = None;
        files::give_to(&self.layout.writable(), self.settings.uid)
    }

    /// Why `used` bytes of disk are too many, if they are.
    pub fn over_quota(&self, used: u64) -> Option<String> {
        let quota = self.settings.disk_quota_bytes;
        (used > quota).then(|| {
            format!(
                "the instance uses {} MiB of disk, over its quota of {} MiB: the gateway is stopped; restore a smaller backup, or ask the operator for more room",
                used >> 20,
                quota >> 20
            )
        })
    }

    /// After the sandbox started as `pid` (on the host): finds its network
    /// namespace, closes the private ranges, starts egress and the allowed
    /// endpoints, and points the gateway port at it.
    pub async fn after_spawn(&self, pid: u32) -> Result<(), String> {
        let net = net::RunningNet::start(pid, &self.settings).await?;
        self.forwarder.point_at(Some(net.handle()));
        if let Ok(mut running) = self.running.lock() {
            *running = Some(net);
        }
        Ok(())
    }

    /// After the sandbox ended: stops egress and the allowed endpoints.
    pub fn after_exit(&self) {
        self.forwarder.point_at(None);
        let net = self.running.lock().ok().and_then(|mut r| r.take());
        drop(net);
    }

    /// Measures the disk use of the state directory and home; returns it.
    pub fn measure_disk(&self) -> u64 {
        let used = files::disk_usage(&self.layout.writable());
        if let Ok(mut d) = self.disk_bytes.lock() {
            *d = Some(used);
        }
        used
    }

    /// Records why the agent stopped the gateway (shown in the status).
    pub fn set_stopped_reason(&self, reason: String) {
        *self.lock_reason() = Some(reason);
    }

    fn lock_reason(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.stopped_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What `/v1/status` shows.
    pub fn status(&self) -> CellStatus {
        let usage = self.cgroup.usage();
        let s = &self.settings;
        CellStatus {
            isolation: "cell",
            uid: Some(s.uid),
            limits: Some(CellLimitsView {
                memory_bytes: s.memory_bytes,
                cpus: s.cpus,
                pids: s.pids,
                open_files: s.open_files,
                disk_quota_bytes: s.disk_quota_bytes,
            }),
            egress: Some(s.egress.as_str()),
            memory_bytes: usage.memory_bytes,
            cpu_usec: usage.cpu_usec,
            processes: usage.processes,
            disk_bytes: self.disk_bytes.lock().ok().and_then(|d| *d),
            stopped_reason: self.lock_reason().clone(),
        }
    }
}

impl CellStatus {
    /// The status of a runtime without a cell.
    pub fn none() -> CellStatus {
        CellStatus {
            isolation: "none",
            uid: None,
            limits: None,
            egress: None,
            memory_bytes: None,
            cpu_usec: None,
            processes: None,
            disk_bytes: None,
            stopped_reason: None,
        }
    }
}
