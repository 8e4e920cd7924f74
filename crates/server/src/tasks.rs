//! The server's long-running background tasks, supervised as one set.
//!
//! Each task is started from a factory, so it can be started again. One that
//! ends before shutdown (it returned, or it panicked) is named in the log at
//! error level, marked down in `/readyz` until it runs again, counted in
//! `/metrics` (`clawplane_task_restarts_total{task}`), and started again
//! after a backoff (1 s doubling up to 30 s): the process never runs on
//! with a piece silently gone. Shutdown has one deadline for the whole set:
//! tasks see the cancellation token and stop at a safe point; whatever has
//! not stopped by the deadline is aborted.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// The longest wait before a failed task is started again.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What `/readyz` shows of one task.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TaskState {
    /// Whether it runs now.
    pub running: bool,
    /// How often it ended unexpectedly and was started again.
    pub restarts: u64,
    /// How it ended the last time it did (`returned`, or the panic's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// The states of the set's tasks, by name; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TaskHealth(Arc<Mutex<BTreeMap<&'static str, TaskState>>>);

impl TaskHealth {
    /// Every task's state, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, TaskState> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The names of tasks that are down now.
    pub fn down(&self) -> Vec<&'static str> {
        self.snapshot()
            .into_iter()
            .filter(|(_, s)| !s.running)
            .map(|(name, _)| name)
            .collect()
    }

    fn update(&self, name: &'static str, f: impl FnOnce(&mut TaskState)) {
        if let Ok(mut map) = self.0.lock() {
            f(map.entry(name).or_default());
        }
    }
}

/// The supervised set.
pub struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
    health: TaskHealth,
    metrics: Metrics,
    running: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Tasks {
    /// An empty set stopped by `token`.
    pub fn new(token: CancellationToken, health: TaskHealth, metrics: Metrics) -> Self {
        Tasks {
            token,
            tracker: TaskTracker::new(),
            health,
            metrics,
            running: Arc::default(),
        }
    }

    /// Runs `make()` until shutdown, starting it again whenever it ends
    /// before (see the module's documentation). The task must stop when the
    /// set's token is cancelled.
    pub fn spawn<F, Fut>(&self, name: &'static str, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.clone();
        let health = self.health.clone();
        let metrics = self.metrics.clone();
        let running = self.running.clone();
        self.tracker.spawn(async move {
            let mut failures: u32 = 0;
            loop {
                health.update(name, |s| s.running = true);
                let run = tokio::spawn(make());
                if let Ok(mut r) = running.lock() {
                    r.retain(|h| !h.is_finished());
                    r.push(run.abort_handle());
                }
                let ended = run.await;
                if token.is_cancelled() {
                    health.update(name, |s| s.running = false);
                    return;
                }
                let why = match ended {
                    Ok(()) => "it returned".to_owned(),
                    Err(e) if e.is_panic() => panic_message(e.into_panic()),
                    Err(_) => "it was aborted".to_owned(),
                };
                tracing::error!(
                    task = name,
                    why,
                    "a background task ended unexpectedly; starting it again"
                );
                health.update(name, |s| {
                    s.running = false;
                    s.restarts += 1;
                    s.last_failure = Some(why);
                });
                metrics.task_restarted(name);
                let wait = Duration::from_secs(1u64 << failures.min(5)).min(BACKOFF_CAP);
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// Cancels the set's token and waits for every task until `deadline`;
    /// those still running then are aborted.
    pub async fn shutdown(self, deadline: Instant) {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            let names = self.health.snapshot();
            tracing::warn!(tasks = ?names.keys().collect::<Vec<_>>(), "background tasks did not stop by the deadline; aborting them");
            if let Ok(r) = self.running.lock() {
                r.iter().for_each(AbortHandle::abort);
            }
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    format!("panicked: {}", text.chars().take(200).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_named_started_again_and_stops_at_shutdown() {
        let token = CancellationToken::new();
        let health = TaskHealth::default();
        let tasks = Tasks::new(token.clone(), health.clone(), Metrics::new());
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        let stop = token.clone();
        tasks.spawn("flaky", move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let stop = stop.clone();
            async move {
                if n < 2 {
                    panic!("boom {n}");
                }
                stop.cancelled().await;
            }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        let state = health.snapshot()["flaky"].clone();
        assert!(state.running);
        assert_eq!(state.restarts, 2);
        assert_eq!(state.last_failure.as_deref(), Some("panicked: boom 1"));
        assert!(health.down().is_empty());
        tasks
            .shutdown(Instant::now() + Duration::from_secs(1))
            .await;
        assert_eq!(health.down(), ["flaky"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_returns_is_down_until_it_runs_again() {
        let token = CancellationToken::new();
        let health = TaskHealth::default();
        let tasks = Tasks::new(token.clone(), health.clone(), Metrics::new());
        tasks.spawn("quitter", || async {});
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(health.down(), ["quitter"]);
        assert_eq!(
            health.snapshot()["quitter"].last_failure.as_deref(),
            Some("it returned")
        );
        tasks.shutdown(Instant::now()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_aborts_a_task_that_ignores_it_at_the_deadline() {
        let token = CancellationToken::new();
        let tasks = Tasks::new(token, TaskHealth::default(), Metrics::new());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tx = Arc::new(Mutex::new(Some(tx)));
        tasks.spawn("stubborn", move || {
            let keep = tx.lock().unwrap().take();
            async move {
                let _keep = keep;
                std::future::pending::<()>().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        tasks
            .shutdown(Instant::now() + Duration::from_secs(2))
            .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Aborted: the task's future was dropped, and with it the sender.
        assert!(rx.await.is_err());
    }
}
