//! The gateway's process under the supervisor task: spawning it (in its
//! cell, if any) with its output pumped to the log, waiting for its exit,
//! stopping its whole tree, and `openclaw doctor --fix`.

use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

use super::status::{ExitInfo, GatewayState};
use super::task::Task;
use crate::gateway::process;
use crate::gateway::LogSink;

/// A gateway process the task started.
pub(super) struct RunningChild {
    pub(super) pid: u32,
    pub(super) exited: oneshot::Receiver<ExitInfo>,
    /// Every process seen in the gateway's tree, refreshed while it runs, so
    /// workers re-parented after the gateway died can still be found.
    pub(super) tree: Vec<u32>,
}

impl Task {
    pub(super) async fn spawn_gateway(&self) -> std::io::Result<RunningChild> {
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

    /// `openclaw doctor --fix --yes --non-interactive`, bounded, with the
    /// gateway's environment; its output goes to the gateway log.
    pub(super) async fn run_doctor(&mut self) {
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

    pub(super) async fn stop_child(&mut self) {
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

pub(super) async fn wait_exit(child: &mut Option<RunningChild>) -> ExitInfo {
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
