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

mod child;
mod status;
mod task;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::spec::GatewaySpec;
use super::LogSink;
use task::Task;

pub use status::{ExitInfo, GatewayState, GatewayStatus};

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
