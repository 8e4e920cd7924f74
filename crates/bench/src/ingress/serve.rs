//! `clawplane serve` as the bench's child process, the API calls on the
//! bench user's instance, and the reaping of whatever the run left under
//! its data directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clawplane_runtime::gateway::process::mentioning as processes_under;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use super::{ENCRYPTION_KEY, INTERNAL_KEY, USER};

/// `clawplane serve` as a child process.
pub(super) struct Serve {
    pub(super) child: tokio::process::Child,
    pub(super) pid: u32,
    pub(super) port: u16,
    pub(super) base: String,
}

impl Serve {
    /// Starts `serve` on a random loopback port over `data` and waits for its
    /// address line. Its log (warnings only) goes to `<dir>/serve.log`.
    pub(super) async fn start(dir: &Path, data: &Path) -> anyhow::Result<Serve> {
        let log = dir.join("serve.log");
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command.args(["serve", "--listen", "127.0.0.1:0", "--no-jobs"]);
        // Only the bench's settings: none of the caller's server settings.
        for (name, _) in std::env::vars_os() {
            let n = name.to_string_lossy();
            let server_setting = (n.starts_with("CLAWPLANE_") && n != "CLAWPLANE_CACHE_DIR")
                || n.starts_with("OA_")
                || n.starts_with("OPENCLAW_")
                || n.starts_with("OPENAGENTS_")
                || n == "DATABASE_URL";
            if server_setting {
                command.env_remove(&name);
            }
        }
        command
            .env("CLAWPLANE_DATA_DIR", data)
            .env("OA_INTERNAL_KEY", INTERNAL_KEY)
            .env("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env("CLAWPLANE_TRUSTED_PROXIES", "127.0.0.1")
            .env("CLAWPLANE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true);
        let mut child = command.spawn().context("start clawplane serve")?;
        let pid = child.id().context("serve has no pid")?;
        let stdout = child.stdout.take().context("serve's stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("clawplane listening on ") {
                    return Some(a.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(base) = address else {
            let _ = child.kill().await;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            bail!(
                "clawplane serve did not start; its last log lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        };
        // Nothing else is printed, but the pipe stays drained.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("serve printed no port")?;
        Ok(Serve {
            child,
            pid,
            port,
            base,
        })
    }

    /// SIGTERM, then SIGKILL after 30 s.
    pub(super) async fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("serve did not stop within 30 s; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// An API call on the bench user's instance; the JSON answer, which must be 2xx.
pub(super) async fn call(
    client: &reqwest::Client,
    method: Method,
    base: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let response = client
        .request(method.clone(), format!("{base}/api/openclaw/instance"))
        .header("x-oa-internal-key", INTERNAL_KEY)
        .header("x-oa-user-id", USER)
        .timeout(timeout)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{method} /api/openclaw/instance answered {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Deletes the bench user's instance (the runtime and its gateway stop); an
/// instance that is not there is fine.
pub(super) async fn delete_instance(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let response = client
        .delete(format!("{base}/api/openclaw/instance"))
        .header("x-oa-internal-key", INTERNAL_KEY)
        .header("x-oa-user-id", USER)
        .timeout(Duration::from_secs(240))
        .send()
        .await?;
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_FOUND {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    bail!("DELETE /api/openclaw/instance answered {status}: {text}")
}

/// Waits up to 10 s for the processes under `data` to end, then kills
/// (SIGKILL) those left; how many were left.
pub(super) async fn reap(data: &Path) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_under(data).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = processes_under(data);
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    left.len()
}

/// Kills (SIGKILL) every process left under the data directory when
/// dropped, so a failed run leaves no runtime or gateway behind.
pub(super) struct Reaper(pub(super) PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in processes_under(&self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The soft limit on open files of this process (inherited by `serve`).
pub(super) fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}
