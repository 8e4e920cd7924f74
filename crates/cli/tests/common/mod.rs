//! A fixture that runs the real `clawplane` binary: spawn, wait for its
//! address line, and kill it (SIGKILL) on drop so no process outlives a test.

#![allow(dead_code)]

pub mod api;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CONTROL_KEY: &str = "control-key-for-cli-tests-0123456789";

pub fn clawplane() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawplane"));
    for var in [
        "OPENCLAW_ENCRYPTION_KEY",
        "OPENCLAW_ENCRYPTION_KEY_PREVIOUS",
        "DATABASE_URL",
        "CLAWPLANE_DATA_DIR",
        "OA_CONTROL_KEY",
        "OA_INTERNAL_KEY",
        "OA_INTERNAL_USER_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CLAWPLANE_LOG", "warn");
    cmd
}

pub struct Server {
    pub child: Child,
    pub address: String,
    pub stderr_path: std::path::PathBuf,
}

impl Server {
    /// Starts `clawplane serve` on a random loopback port over `data_dir`
    /// (and `database_url` when given) and waits for its address line.
    pub fn start(
        data_dir: &Path,
        database_url: Option<&str>,
        extra_env: &[(&str, &str)],
    ) -> Server {
        // The log lives beside the data directory, which the server creates itself.
        let parent = data_dir
            .parent()
            .expect("a data directory inside a temporary one");
        std::fs::create_dir_all(parent).unwrap();
        let stderr_path = parent.join(format!("serve-{}.log", uuid::Uuid::new_v4().simple()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = clawplane();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-jobs"])
            .env("CLAWPLANE_DATA_DIR", data_dir)
            .env("OA_CONTROL_KEY", CONTROL_KEY)
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(url) = database_url {
            cmd.env("DATABASE_URL", url);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn clawplane serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("clawplane listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let address = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "clawplane serve did not start: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        Server {
            child,
            address,
            stderr_path,
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Processes (runtimes, gateways) whose command line or environment names
/// `dir`.
pub use clawplane_runtime::gateway::process::mentioning as processes_under;

/// Kills (SIGKILL) every process left under a directory when dropped, so a
/// failing test leaves no runtime or gateway behind.
pub struct Reaper(pub std::path::PathBuf);

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
