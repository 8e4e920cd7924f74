//! The `local` provisioner: one `clawplane runtime` child process per
//! instance on this host.
//!
//! Each instance gets `<data dir>/instances/<instance id>/` as the runtime's
//! state directory (0700), two loopback ports (the agent's and the
//! gateway's), its own tokens in its environment (built from scratch), and
//! backups under `<data dir>/backups/<instance id>/`. `runtime.json` in that
//! directory records the pid and ports, so after a restart of the control
//! plane a runtime that still answers is found again instead of started a
//! second time. Runtimes run in their own process group: stopping the
//! control plane leaves them (and the users' gateways) running.
//!
//! The provisioner keeps the child it started and reports, on the channel
//! [`Provisioner::take_exits`] hands to the supervisor, every runtime that
//! exits without being asked to; a runtime found again after a restart of
//! the control plane is not its child, so the supervisor's periodic check
//! finds that one's death instead. A runtime that does not come up is never
//! left behind: a start that fails stops what it started.
//!
//! With cells, each instance also gets a uid of its own for its cell, the
//! lowest free one from the operator's base, recorded in `runtime.json`
//! (so it survives restarts; a deleted instance's uid is free again, since
//! nothing of its cell outlives it).

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clawplane_domain::{Instance, InstanceFields, InstanceId, RuntimeName};
use clawplane_secrets::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex, MutexGuard};

use super::{KeptBackup, ProvisionError, Provisioner, RuntimeHealth, RuntimeSecrets};

/// What is recorded about a runtime process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct RuntimeRecord {
    pid: u32,
    listen_port: u16,
    gateway_port: u16,
    #[serde(default)]
    cell_uid: Option<u32>,
}

/// The first cell uid unless the operator says otherwise: clear of the
/// host's own users and of the usual subordinate-uid ranges.
pub const DEFAULT_CELL_UID_BASE: u32 = 2_000_000;

/// How many cell uids there are from the base.
const CELL_UIDS: u32 = 1 << 20;

/// Settings of the local provisioner.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// The control plane's data directory.
    pub data_dir: PathBuf,
    /// The `clawplane` binary to run as `clawplane runtime`.
    pub binary: PathBuf,
    /// Where OpenClaw is installed (`CLAWPLANE_CACHE_DIR` of the children).
    pub cache_dir: PathBuf,
    /// How long a new runtime may take to answer `/healthz`.
    pub start_timeout: Duration,
    /// How long a removed runtime gets to back up and stop its gateway.
    pub stop_timeout: Duration,
    /// Cells: the first uid given to an instance's cell; `None` runs
    /// runtimes with `--isolation none`.
    pub cell_uid_base: Option<u32>,
    /// Arguments every runtime gets (the cell settings but `--isolation`,
    /// which follows `cell_uid_base`).
    pub runtime_args: Vec<String>,
}

/// What the local provisioner takes besides [`LocalSettings`]; the
/// defaults suit tests and benchmarks, `serve` passes its own.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// What every runtime's environment (built from scratch) gets of `serve`'s.
    pub child_env: ChildEnv,
    /// How long a runtime may take to answer one `/healthz` (default 2 s).
    pub probe_timeout: Duration,
    /// `CLAWPLANE_MODELS_OFFER` of every runtime (`v1::ModelOffer` as JSON),
    /// when the operator includes models; each runtime gets its own model
    /// token beside it.
    pub models_offer: Option<String>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            child_env: ChildEnv::default(),
            probe_timeout: Duration::from_secs(2),
            models_offer: None,
        }
    }
}

/// The variables a runtime inherits from `serve` (the CLI reads them from
/// its own environment); everything else in the runtime's environment is
/// set by the provisioner.
#[derive(Debug, Clone)]
pub struct ChildEnv {
    /// `PATH` (default `/usr/local/bin:/usr/bin:/bin`).
    pub path: OsString,
    /// `HOME` (default `/root`).
    pub home: OsString,
    /// `CLAWPLANE_LOG`, the runtime's log filter (default `info`).
    pub log: String,
}

impl Default for ChildEnv {
    fn default() -> Self {
        ChildEnv {
            path: "/usr/local/bin:/usr/bin:/bin".into(),
            home: "/root".into(),
            log: "info".into(),
        }
    }
}

/// Runs runtimes as child processes.
pub struct LocalProvisioner {
    settings: LocalSettings,
    options: LocalOptions,
    http: reqwest::Client,
    /// One provisioning step at a time, so a runtime is never started twice.
    lock: Mutex<()>,
    /// Pids of runtimes this provisioner is stopping: their exit is expected.
    stopping: Arc<std::sync::Mutex<HashSet<u32>>>,
    exits: mpsc::UnboundedSender<InstanceId>,
    exits_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<InstanceId>>>,
}

impl LocalProvisioner {
    /// A provisioner over `settings`, with the default [`LocalOptions`].
    pub fn new(settings: LocalSettings) -> Self {
        Self::with_options(settings, LocalOptions::default())
    }

    /// A provisioner over `settings` and `options`.
    pub fn with_options(settings: LocalSettings, options: LocalOptions) -> Self {
        let http = reqwest::Client::builder()
            .timeout(options.probe_timeout)
            .pool_idle_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .unwrap_or_default();
        let (exits, exits_rx) = mpsc::unbounded_channel();
        LocalProvisioner {
            settings,
            options,
            http,
            lock: Mutex::new(()),
            stopping: Arc::default(),
            exits,
            exits_rx: std::sync::Mutex::new(Some(exits_rx)),
        }
    }

    /// The runtime's state directory of an instance.
    pub fn instance_dir(&self, id: InstanceId) -> PathBuf {
        self.settings
            .data_dir
            .join("instances")
            .join(id.to_string())
    }

    /// The DNS-safe runtime name of an instance (`oc-` and 12 hex digits of its id).
    pub fn runtime_name(id: InstanceId) -> String {
        let hex = id.as_uuid().simple().to_string();
        RuntimeName::parse(&format!("oc-{}", &hex[..12]))
            .map(|n| n.as_str().to_owned())
            .unwrap_or_else(|_| format!("oc-{}", &hex[..12]))
    }

    fn fields(&self, id: InstanceId, record: &RuntimeRecord) -> InstanceFields {
        InstanceFields {
            runtime_url: Some(format!("http://127.0.0.1:{}", record.listen_port)),
            runtime_name: Some(Self::runtime_name(id)),
            provisioner: Some("local".into()),
            instance_type: Some("local".into()),
            ..Default::default()
        }
    }

    async fn answers(&self, record: &RuntimeRecord, id: InstanceId) -> bool {
        if !process_matches(record.pid, id) {
            return false;
        }
        let url = format!("http://127.0.0.1:{}/healthz", record.listen_port);
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// Finds the runtime again or starts it, under the provisioning lock
    /// (`_held` proves the caller holds it). A runtime whose process runs
    /// but does not answer is stopped first; a start that fails stops what
    /// it started.
    async fn attach_or_start(
        &self,
        _held: &MutexGuard<'_, ()>,
        instance: &Instance,
        secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError> {
        let dir = self.instance_dir(instance.id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| ProvisionError(format!("cannot create {}: {e}", dir.display())))?;
        let previous = read_record(&dir);
        if let Some(record) = &previous {
            if self.answers(record, instance.id).await {
                tracing::info!(instance = %instance.id, pid = record.pid, "runtime found again");
                return Ok(self.fields(instance.id, record));
            }
            if process_matches(record.pid, instance.id) {
                tracing::warn!(instance = %instance.id, pid = record.pid, "the runtime runs but does not answer; stopping it before starting another");
                self.stop_process(instance.id).await;
            }
        }
        let listen_port = previous
            .as_ref()
            .map(|r| r.listen_port)
            .filter(|p| port_free(*p))
            .unwrap_or_else(free_port);
        let gateway_port = previous
            .as_ref()
            .map(|r| r.gateway_port)
            .filter(|p| port_free(*p) && *p != listen_port)
            .unwrap_or_else(|| loop {
                let p = free_port();
                if p != listen_port {
                    break p;
                }
            });
        let cell_uid = match self.settings.cell_uid_base {
            Some(base) => Some(
                previous
                    .as_ref()
                    .and_then(|r| r.cell_uid)
                    .filter(|uid| (base..base.saturating_add(CELL_UIDS)).contains(uid))
                    .map_or_else(|| self.free_cell_uid(base), Ok)?,
            ),
            None => None,
        };
        let pid = self.spawn(
            instance.id,
            &dir,
            (listen_port, gateway_port),
            cell_uid,
            secrets,
        )?;
        let record = RuntimeRecord {
            pid,
            listen_port,
            gateway_port,
            cell_uid,
        };
        write_record(&dir, &record)?;
        let deadline = Instant::now() + self.settings.start_timeout;
        while !self.answers(&record, instance.id).await {
            let log = dir.join("logs/runtime.log");
            // Our own fresh child, so its pid is not recycled yet; its
            // command line may read empty for a moment while it execs, so
            // only its being gone counts.
            if !is_running(pid) {
                return Err(ProvisionError(format!(
                    "the runtime exited at start: {}",
                    last_line(&log).unwrap_or_else(|| format!("see {}", log.display()))
                )));
            }
            if Instant::now() > deadline {
                self.stop_process(instance.id).await;
                return Err(ProvisionError(format!(
                    "the runtime did not answer within {} s; see {}",
                    self.settings.start_timeout.as_secs(),
                    log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(instance = %instance.id, pid, listen_port, "runtime started");
        Ok(self.fields(instance.id, &record))
    }

    /// The lowest uid from `base` that no instance's record holds.
    fn free_cell_uid(&self, base: u32) -> Result<u32, ProvisionError> {
        let used: std::collections::HashSet<u32> =
            std::fs::read_dir(self.settings.data_dir.join("instances"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| read_record(&entry.path()).and_then(|r| r.cell_uid))
                .collect();
        (base..base.saturating_add(CELL_UIDS))
            .find(|uid| !used.contains(uid))
            .ok_or_else(|| ProvisionError("every cell uid is in use".into()))
    }

    fn spawn(
        &self,
        id: InstanceId,
        dir: &Path,
        (listen_port, gateway_port): (u16, u16),
        cell_uid: Option<u32>,
        secrets: &RuntimeSecrets,
    ) -> Result<u32, ProvisionError> {
        let logs = dir.join("logs");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&logs)
            .map_err(|e| ProvisionError(format!("cannot create {}: {e}", logs.display())))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join("runtime.log"))
            .map_err(|e| ProvisionError(format!("cannot open the runtime log: {e}")))?;
        let log_err = log.try_clone().map_err(|e| ProvisionError(e.to_string()))?;
        let backups = self.settings.data_dir.join("backups");
        let mut command = tokio::process::Command::new(&self.settings.binary);
        command
            .arg("runtime")
            .arg("--listen")
            .arg(format!("127.0.0.1:{listen_port}"))
            .arg("--state-dir")
            .arg(dir)
            .arg("--gateway-port")
            .arg(gateway_port.to_string())
            .arg("--instance-id")
            .arg(id.to_string())
            .arg("--instance-type")
            .arg("local")
            .arg("--backup-url")
            .arg(format!("file://{}", backups.display()))
            .args(&self.settings.runtime_args);
        match cell_uid {
            Some(uid) => command.args(["--isolation=cell".to_owned(), format!("--cell-uid={uid}")]),
            None => command.arg("--isolation=none"),
        };
        let inherited = &self.options.child_env;
        command
            .env_clear()
            .env("PATH", &inherited.path)
            .env("HOME", &inherited.home)
            .env("CLAWPLANE_CACHE_DIR", &self.settings.cache_dir)
            .env("CLAWPLANE_LOG", &inherited.log)
            .env(
                "OPENAGENTS_SERVICE_TOKEN",
                secrets.service_token.expose_secret(),
            )
            .env(
                "OPENCLAW_GATEWAY_TOKEN",
                secrets.gateway_token.expose_secret(),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .kill_on_drop(false);
        if let Some(keys) = &secrets.provider_keys {
            command.env("OPENCLAW_PROVIDER_KEYS", keys.expose_secret());
        }
        if let (Some(offer), Some(token)) = (&self.options.models_offer, &secrets.model_token) {
            command
                .env("CLAWPLANE_MODELS_OFFER", offer)
                .env("CLAWPLANE_MODEL_TOKEN", token.expose_secret());
        }
        let mut child = command
            .spawn()
            .map_err(|e| ProvisionError(format!("cannot start `clawplane runtime`: {e}")))?;
        let pid = child
            .id()
            .ok_or_else(|| ProvisionError("the runtime exited at once".into()))?;
        // Reaps the child and reports an exit nobody asked for.
        let (stopping, exits) = (self.stopping.clone(), self.exits.clone());
        tokio::spawn(async move {
            let status = child.wait().await;
            let expected = stopping.lock().map(|s| s.contains(&pid)).unwrap_or(false);
            if !expected {
                tracing::warn!(instance = %id, pid, status = ?status.ok(), "the runtime exited unexpectedly");
                let _ = exits.send(id);
            }
        });
        Ok(pid)
    }
}

#[async_trait]
impl Provisioner for LocalProvisioner {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn provision(
        &self,
        instance: &Instance,
        secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError> {
        let held = self.lock.lock().await;
        self.attach_or_start(&held, instance, secrets).await
    }

    async fn ensure_running(
        &self,
        instance: &Instance,
        secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError> {
        let held = self.lock.lock().await;
        self.attach_or_start(&held, instance, secrets).await
    }

    async fn restart(
        &self,
        instance: &Instance,
        secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError> {
        let held = self.lock.lock().await;
        self.stop_process(instance.id).await;
        self.attach_or_start(&held, instance, secrets).await
    }

    async fn remove(&self, instance: &Instance) -> Result<(), ProvisionError> {
        let _guard = self.lock.lock().await;
        self.stop_process(instance.id).await;
        let dir = self.instance_dir(instance.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| ProvisionError(format!("cannot remove {}: {e}", dir.display())))?;
        }
        Ok(())
    }

    async fn health(&self, instance: &Instance) -> RuntimeHealth {
        // A start, restart or removal under way: its outcome is not known yet.
        let Ok(_held) = self.lock.try_lock() else {
            return RuntimeHealth::Busy;
        };
        let Some(record) = read_record(&self.instance_dir(instance.id)) else {
            return RuntimeHealth::Dead("no runtime is recorded for it".into());
        };
        if !process_matches(record.pid, instance.id) {
            return RuntimeHealth::Dead(format!("its process ({}) is gone", record.pid));
        }
        if self.answers(&record, instance.id).await {
            RuntimeHealth::Alive
        } else {
            RuntimeHealth::Unresponsive(format!(
                "it runs but did not answer /healthz within {} s",
                self.options.probe_timeout.as_secs_f64()
            ))
        }
    }

    fn take_exits(&self) -> Option<mpsc::UnboundedReceiver<InstanceId>> {
        self.exits_rx.lock().ok()?.take()
    }

    async fn last_backup(&self, instance: &Instance) -> Option<KeptBackup> {
        let url = format!(
            "file://{}",
            self.settings.data_dir.join("backups").display()
        );
        let target = clawplane_backup::BackupTarget::parse(&url, &Default::default()).ok()?;
        let store = clawplane_backup::BackupStore::open(&target, &instance.id.to_string())
            .await
            .ok()?;
        let latest = store.latest().await.ok()??;
        Some(KeptBackup {
            id: latest.id,
            created_at: latest.created_at.to_rfc3339(),
            trigger: latest.trigger,
        })
    }
}

impl LocalProvisioner {
    /// SIGTERM (the agent takes a protective backup and stops its gateway),
    /// then SIGKILL to the process group after the stop timeout.
    async fn stop_process(&self, id: InstanceId) {
        let Some(record) = read_record(&self.instance_dir(id)) else {
            return;
        };
        if !process_matches(record.pid, id) {
            return;
        }
        if let Ok(mut stopping) = self.stopping.lock() {
            stopping.insert(record.pid);
        }
        let pid = nix::unistd::Pid::from_raw(record.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + self.settings.stop_timeout;
        while process_matches(record.pid, id) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if process_matches(record.pid, id) {
            tracing::warn!(instance = %id, "runtime did not stop in time; killing it");
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        }
        // Its exit has been seen by now (or it was not this process's
        // child); the pid may later belong to another runtime.
        let (stopping, done) = (self.stopping.clone(), record.pid);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if let Ok(mut s) = stopping.lock() {
                s.remove(&done);
            }
        });
    }
}

fn read_record(dir: &Path) -> Option<RuntimeRecord> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("runtime.json")).ok()?).ok()
}

fn write_record(dir: &Path, record: &RuntimeRecord) -> Result<(), ProvisionError> {
    let text = serde_json::to_string(record).map_err(|e| ProvisionError(e.to_string()))?;
    let tmp = dir.join("runtime.json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, dir.join("runtime.json")))
        .map_err(|e| ProvisionError(format!("cannot record the runtime: {e}")))
}

/// Whether `pid` is a live `clawplane runtime` of this instance (a recycled
/// pid belongs to another program and is never signalled).
fn process_matches(pid: u32, id: InstanceId) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let text = String::from_utf8_lossy(&cmdline);
    is_running(pid) && text.contains("runtime") && text.contains(&id.to_string())
}

/// Whether a process `pid` exists and is not a zombie.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| !s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

/// The last line of a log, for a reason (bounded: only the file's tail is read).
fn last_line(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.chars().filter(|c| !c.is_control()).take(300).collect())
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
