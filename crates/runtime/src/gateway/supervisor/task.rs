//! The supervisor task: the loop that owns the gateway, answers commands,
//! probes `/readyz` while starting, and schedules a restart with backoff
//! after a crash. Spawning, stopping and `openclaw doctor` are in
//! [`super::child`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::child::{wait_exit, RunningChild};
use super::status::{ExitInfo, GatewayState, GatewayStatus};
use super::{Command, Reply, SupervisorError, SupervisorOptions};
use crate::gateway::process;
use crate::gateway::spec::GatewaySpec;
use crate::gateway::LogSink;

/// What the supervisor task owns: the gateway's child, the replies waiting
/// for it to be ready, and the crash streak behind the backoff.
pub(super) struct Task {
    pub(super) spec: Arc<GatewaySpec>,
    pub(super) options: SupervisorOptions,
    pub(super) sink: Arc<LogSink>,
    pub(super) status: watch::Sender<GatewayStatus>,
    pub(super) child: Option<RunningChild>,
    /// Start and restart requests waiting for readiness.
    pub(super) waiting: Vec<Reply>,
    pub(super) want_running: bool,
    pub(super) crash_streak: u32,
    pub(super) doctor_tried: bool,
    pub(super) next_attempt: Option<Instant>,
    pub(super) started: Option<Instant>,
}

impl Task {
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
