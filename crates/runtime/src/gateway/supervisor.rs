//! The supervisor: one task that owns the gateway process and moves it
//! through `stopped -> starting -> running -> stopping`, or `crashed` when it
//! exits on its own.
//!
//! - Ready means `/readyz` answered 200, not that a port opened.
//! - A crash restarts the gateway after an exponential backoff with a cap;
//!   the backoff resets once a start has stayed up for a while. Exit code 78
//!   (a configuration-class failure) runs `openclaw doctor --fix` once per
//!   crash streak before the next try.
//! - Stop and restart send SIGTERM to the gateway's group and descendants,
//!   wait a bounded time, then SIGKILL whatever is left.
//!
//! Commands arrive over a channel and each gets an answer once its outcome
//! is known; the current status is published on a watch channel, so reading
//! it never waits for, nor changes, anything.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::process;
use super::spec::GatewaySpec;
use super::LogSink;

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
    fn new() -> Self {
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

/// Timing of the supervisor.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// How long a start may take to become ready.
    pub ready_timeout: Duration,
    /// How long SIGTERM gets before SIGKILL.
    pub stop_grace: Duration,
    /// First restart delay after a crash.
    pub backoff_base: Duration,
    /// Longest restart delay.
    pub backoff_max: Duration,
    /// A start that stays ready this long resets the backoff.
    pub stable_after: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            ready_timeout: Duration::from_secs(180),
            stop_grace: Duration::from_secs(20),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
        }
    }
}

/// Why a command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SupervisorError {
    /// The gateway did not become ready.
    #[error("the gateway did not become ready: {0}")]
    NotReady(String),
    /// The supervisor is gone (the agent is shutting down).
    #[error("the runtime agent is shutting down")]
    ShuttingDown,
}

type Reply = oneshot::Sender<Result<GatewayStatus, SupervisorError>>;

enum Command {
    Start(Reply),
    Stop(Reply),
    Restart(Reply),
}

/// The handle to the supervisor task. Dropping every handle stops the gateway.
#[derive(Clone)]
pub struct Supervisor {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<GatewayStatus>,
}

impl Supervisor {
    /// Starts the supervisor task (the gateway stays stopped until `start`).
    pub fn spawn(
        spec: GatewaySpec,
        options: SupervisorOptions,
        sink: Arc<LogSink>,
    ) -> (Supervisor, tokio::task::JoinHandle<()>) {
        let (commands, rx) = mpsc::channel(16);
        let (status_tx, status) = watch::channel(GatewayStatus::new());
        let task = Task {
            spec: Arc::new(spec),
            options,
            sink,
            status: status_tx,
            child: None,
            waiting: Vec::new(),
            want_running: false,
            crash_streak: 0,
            doctor_tried: false,
            next_attempt: None,
            started: None,
        };
        let handle = tokio::spawn(task.run(rx));
        (Supervisor { commands, status }, handle)
    }

    /// The current status (never waits).
    pub fn status(&self) -> GatewayStatus {
        self.status.borrow().clone()
    }

    /// Updates as the status changes.
    pub fn subscribe(&self) -> watch::Receiver<GatewayStatus> {
        self.status.clone()
    }

    /// Starts the gateway and waits until it is ready (or fails to be).
    pub async fn start(&self) -> Result<GatewayStatus, SupervisorError> {
        self.ask(Command::Start).await
    }

    /// Stops the gateway; returns once no process of it is left.
    pub async fn stop(&self) -> Result<GatewayStatus, SupervisorError> {
        self.ask(Command::Stop).await
    }

    /// Stops, then starts and waits until ready.
    pub async fn restart(&self) -> Result<GatewayStatus, SupervisorError> {
        self.ask(Command::Restart).await
    }

    async fn ask(&self, make: fn(Reply) -> Command) -> Result<GatewayStatus, SupervisorError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| SupervisorError::ShuttingDown)?;
        answer.await.map_err(|_| SupervisorError::ShuttingDown)?
    }
}

struct RunningChild {
    pid: u32,
    exited: oneshot::Receiver<ExitInfo>,
    /// Every process seen in the gateway's tree, refreshed while it runs, so
    /// workers re-parented after the gateway died can still be found.
    tree: Vec<u32>,
}

struct Task {
    spec: Arc<GatewaySpec>,
    options: SupervisorOptions,
    sink: Arc<LogSink>,
    status: watch::Sender<GatewayStatus>,
    child: Option<RunningChild>,
    /// Start and restart requests waiting for readiness.
    waiting: Vec<Reply>,
    want_running: bool,
    crash_streak: u32,
    doctor_tried: bool,
    next_attempt: Option<Instant>,
    started: Option<Instant>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .unwrap_or_default();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            let state = self.status.borrow().state;
            let next_attempt = self.next_attempt;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => {
                        self.want_running = false;
                        self.stop_child().await;
                        break;
                    }
                },
                exit = wait_exit(&mut self.child) => self.on_exit(exit).await,
                _ = tick.tick(), if self.child.is_some() => {
                    self.refresh_tree();
                    if state == GatewayState::Starting {
                        self.probe(&probe).await;
                    }
                },
                _ = sleep_until(next_attempt), if next_attempt.is_some() && self.child.is_none() => {
                    self.next_attempt = None;
                    if self.want_running {
                        self.launch().await;
                    }
                },
            }
        }
        self.fail_waiting(SupervisorError::ShuttingDown);
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Start(reply) => {
                self.want_running = true;
                let status = self.status.borrow().clone();
                if status.state == GatewayState::Running {
                    let _ = reply.send(Ok(status));
                    return;
                }
                self.waiting.push(reply);
                if self.child.is_none() {
                    self.crash_streak = 0;
                    self.doctor_tried = false;
                    self.next_attempt = None;
                    self.launch().await;
                }
            }
            Command::Stop(reply) => {
                self.want_running = false;
                self.next_attempt = None;
                self.stop_child().await;
                self.fail_waiting(SupervisorError::NotReady("the gateway was stopped".into()));
                let _ = reply.send(Ok(self.status.borrow().clone()));
            }
            Command::Restart(reply) => {
                self.want_running = true;
                self.next_attempt = None;
                let had_run = self.child.is_some() || self.status.borrow().started_at.is_some();
                self.stop_child().await;
                self.crash_streak = 0;
                self.doctor_tried = false;
                if had_run {
                    self.status.send_modify(|s| s.restarts += 1);
                }
                self.waiting.push(reply);
                self.launch().await;
            }
        }
    }

    async fn launch(&mut self) {
        match self.spawn_gateway().await {
            Ok(child) => {
                let pid = child.pid;
                self.child = Some(child);
                self.started = Some(Instant::now());
                self.status.send_modify(|s| {
                    s.state = GatewayState::Starting;
                    s.pid = Some(pid);
                    s.started_at = Some(Utc::now());
                    s.last_error = None;
                });
                tracing::info!(pid, "gateway started");
            }
            Err(e) => {
                let message = format!("cannot start the gateway: {e}");
                tracing::error!("{message}");
                self.status.send_modify(|s| {
                    s.state = GatewayState::Crashed;
                    s.last_error = Some(message.clone());
                });
                self.fail_waiting(SupervisorError::NotReady(message));
                self.schedule_retry();
            }
        }
    }

    async fn spawn_gateway(&self) -> std::io::Result<RunningChild> {
        if let Some(cell) = &self.spec.cell {
            cell.before_start()?;
        }
        let mut command = self.spec.command(&["gateway", "run"]);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command.spawn()?;
        let pid = child.id().unwrap_or_default();
        std::fs::write(self.spec.pid_file(), pid.to_string())?;
        if let Some(cell) = &self.spec.cell {
            if let Err(e) = cell.after_spawn(pid).await {
                process::terminate_tree(pid, Duration::from_secs(2)).await;
                let _ = child.wait().await;
                cell.after_exit();
                return Err(std::io::Error::other(e));
            }
        }
        for stream in [
            child.stdout.take().map(Either::Out),
            child.stderr.take().map(Either::Err),
        ]
        .into_iter()
        .flatten()
        {
            let sink = self.sink.clone();
            tokio::spawn(async move {
                match stream {
                    Either::Out(s) => pump(BufReader::new(s), &sink).await,
                    Either::Err(s) => pump(BufReader::new(s), &sink).await,
                }
            });
        }
        let (tx, exited) = oneshot::channel();
        tokio::spawn(async move {
            let info = match child.wait().await {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    ExitInfo {
                        code: status.code(),
                        signal: status.signal(),
                        at: Utc::now(),
                    }
                }
                Err(_) => ExitInfo {
                    code: None,
                    signal: None,
                    at: Utc::now(),
                },
            };
            let _ = tx.send(info);
        });
        Ok(RunningChild {
            pid,
            exited,
            tree: Vec::new(),
        })
    }

    async fn probe(&mut self, client: &reqwest::Client) {
        let url = format!("http://127.0.0.1:{}/readyz", self.spec.port);
        let ready = matches!(client.get(&url).send().await, Ok(r) if r.status().as_u16() == 200);
        if ready {
            self.status.send_modify(|s| {
                s.state = GatewayState::Running;
                s.ready_at = Some(Utc::now());
            });
            tracing::info!("gateway is ready");
            let status = self.status.borrow().clone();
            for reply in self.waiting.drain(..) {
                let _ = reply.send(Ok(status.clone()));
            }
            return;
        }
        let too_long = self
            .started
            .is_some_and(|t| t.elapsed() > self.options.ready_timeout);
        if too_long {
            let message = format!(
                "not ready within {} s",
                self.options.ready_timeout.as_secs()
            );
            tracing::error!("gateway {message}; stopping it");
            self.stop_child().await;
            self.status.send_modify(|s| {
                s.state = GatewayState::Crashed;
                s.last_error = Some(message.clone());
            });
            self.fail_waiting(SupervisorError::NotReady(message));
            self.schedule_retry();
        }
    }

    async fn on_exit(&mut self, exit: ExitInfo) {
        let Some(child) = self.child.take() else {
            return;
        };
        // Workers may outlive the main process; none may survive it.
        process::kill_leftovers(child.pid, &child.tree);
        if let Some(cell) = &self.spec.cell {
            cell.after_exit();
        }
        let was_ready_for = self.started.map(|t| t.elapsed()).unwrap_or_default();
        if was_ready_for >= self.options.stable_after {
            self.crash_streak = 0;
            self.doctor_tried = false;
        }
        tracing::warn!(code = ?exit.code, signal = ?exit.signal, "gateway exited unexpectedly");
        let message = match (exit.code, exit.signal) {
            (Some(78), _) => "the gateway exited with code 78 (configuration problem)".to_owned(),
            (Some(code), _) => format!("the gateway exited with code {code}"),
            (_, Some(signal)) => format!("the gateway was killed by signal {signal}"),
            _ => "the gateway exited".to_owned(),
        };
        self.status.send_modify(|s| {
            s.state = GatewayState::Crashed;
            s.pid = None;
            s.crashes += 1;
            s.last_exit = Some(exit.clone());
            s.last_error = Some(message.clone());
        });
        if exit.code == Some(78) && !self.doctor_tried {
            self.doctor_tried = true;
            self.run_doctor().await;
        }
        if !self.waiting.is_empty() && self.crash_streak >= 3 {
            self.fail_waiting(SupervisorError::NotReady(message));
        }
        if self.want_running {
            self.schedule_retry();
        }
    }

    fn schedule_retry(&mut self) {
        let factor = 2u32.saturating_pow(self.crash_streak.min(16));
        let delay = self
            .options
            .backoff_base
            .saturating_mul(factor)
            .min(self.options.backoff_max);
        self.crash_streak += 1;
        self.next_attempt = Some(Instant::now() + delay);
        self.status.send_modify(|s| s.restarts += 1);
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "gateway restart scheduled"
        );
    }

    /// `openclaw doctor --fix --yes --non-interactive`, bounded, with the
    /// gateway's environment; its output goes to the gateway log.
    async fn run_doctor(&mut self) {
        tracing::warn!("running `openclaw doctor --fix` once before the next start");
        self.sink
            .line("[clawplane] running openclaw doctor --fix --yes --non-interactive");
        let mut command = self
            .spec
            .command(&["doctor", "--fix", "--yes", "--non-interactive"]);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let Ok(mut child) = command.spawn() else {
            self.sink
                .line("[clawplane] could not start openclaw doctor");
            return;
        };
        let pid = child.id().unwrap_or_default();
        if let Some(out) = child.stdout.take() {
            let sink = self.sink.clone();
            tokio::spawn(async move { pump(BufReader::new(out), &sink).await });
        }
        match tokio::time::timeout(Duration::from_secs(120), child.wait()).await {
            Ok(Ok(status)) => self
                .sink
                .line(&format!("[clawplane] openclaw doctor exited with {status}")),
            _ => {
                process::terminate_tree(pid, Duration::from_secs(2)).await;
                self.sink
                    .line("[clawplane] openclaw doctor did not finish in 120 s and was stopped");
            }
        }
    }

    async fn stop_child(&mut self) {
        let Some(mut child) = self.child.take() else {
            self.status.send_modify(|s| {
                s.state = GatewayState::Stopped;
                s.pid = None;
            });
            return;
        };
        self.status
            .send_modify(|s| s.state = GatewayState::Stopping);
        let killed = process::terminate_tree(child.pid, self.options.stop_grace).await;
        if killed {
            tracing::warn!(
                grace_secs = self.options.stop_grace.as_secs(),
                "gateway did not stop in time; killed it"
            );
        }
        let exit = match tokio::time::timeout(Duration::from_secs(10), &mut child.exited).await {
            Ok(Ok(info)) => Some(info),
            _ => None,
        };
        process::kill_leftovers(child.pid, &child.tree);
        if let Some(cell) = &self.spec.cell {
            cell.after_exit();
        }
        let _ = std::fs::remove_file(self.spec.pid_file());
        self.status.send_modify(|s| {
            s.state = GatewayState::Stopped;
            s.pid = None;
            if exit.is_some() {
                s.last_exit = exit;
            }
        });
        tracing::info!("gateway stopped");
    }

    fn refresh_tree(&mut self) {
        if let Some(child) = self.child.as_mut() {
            for pid in process::descendants(child.pid) {
                if !child.tree.contains(&pid) {
                    child.tree.push(pid);
                }
            }
        }
    }

    fn fail_waiting(&mut self, error: SupervisorError) {
        for reply in self.waiting.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

enum Either<A, B> {
    Out(A),
    Err(B),
}

async fn pump<R: tokio::io::AsyncBufRead + Unpin>(reader: R, sink: &LogSink) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        sink.line(&line);
    }
}

async fn wait_exit(child: &mut Option<RunningChild>) -> ExitInfo {
    match child {
        Some(c) => match (&mut c.exited).await {
            Ok(info) => info,
            Err(_) => ExitInfo {
                code: None,
                signal: None,
                at: Utc::now(),
            },
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
