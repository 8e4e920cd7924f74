//! The gateway's output: a size-bounded file (`gateway.log`, rotated once to
//! `gateway.log.1` when it passes its limit) and the last lines in memory.
//! Known secrets (the gateway token, provider keys) are replaced by
//! `[redacted]` before a line is kept anywhere, in case the gateway prints one.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use clawplane_secrets::{ExposeSecret, SecretString};

/// Where the gateway's stdout and stderr go.
pub struct LogSink {
    path: PathBuf,
    redact: Vec<SecretString>,
    max_bytes: u64,
    keep_lines: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: Option<File>,
    written: u64,
    recent: VecDeque<String>,
}

impl LogSink {
    /// A sink writing to `path`, rotating past `max_bytes`, keeping `keep_lines` in memory.
    pub fn new(path: PathBuf, max_bytes: u64, keep_lines: usize) -> Self {
        let written = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        LogSink {
            path,
            redact: Vec::new(),
            max_bytes: max_bytes.max(1024),
            keep_lines: keep_lines.max(1),
            inner: Mutex::new(Inner {
                file: None,
                written,
                recent: VecDeque::new(),
            }),
        }
    }

    /// Replaces these values by `[redacted]` in every line (values shorter
    /// than 8 characters are ignored: they would match ordinary text).
    pub fn redacting(mut self, secrets: impl IntoIterator<Item = SecretString>) -> Self {
        self.redact
            .extend(secrets.into_iter().filter(|s| s.expose_secret().len() >= 8));
        self
    }

    /// Appends one line.
    pub fn line(&self, line: &str) {
        let mut owned;
        let mut line = line;
        for secret in &self.redact {
            if line.contains(secret.expose_secret()) {
                owned = line.replace(secret.expose_secret(), "[redacted]");
                line = owned.as_str();
            }
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.recent.len() == self.keep_lines {
            inner.recent.pop_front();
        }
        inner.recent.push_back(line.to_owned());
        if inner.written + line.len() as u64 + 1 > self.max_bytes {
            inner.file = None;
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
            inner.written = 0;
        }
        if inner.file.is_none() {
            inner.file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
                .ok();
        }
        if let Some(file) = inner.file.as_mut() {
            if writeln!(file, "{line}").is_ok() {
                inner.written += line.len() as u64 + 1;
            }
        }
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<String> {
        match self.inner.lock() {
            Ok(inner) => {
                let skip = inner.recent.len().saturating_sub(n);
                inner.recent.iter().skip(skip).cloned().collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// The log file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_never_reach_the_file_or_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.log");
        let sink = LogSink::new(path.clone(), 1 << 20, 10)
            .redacting([SecretString::from("gw-token-0123456789".to_owned())]);
        sink.line("dashboard: http://127.0.0.1:1/#token=gw-token-0123456789 ready");
        assert_eq!(
            sink.tail(1)[0],
            "dashboard: http://127.0.0.1:1/#token=[redacted] ready"
        );
        assert!(!std::fs::read_to_string(&path)
            .unwrap()
            .contains("gw-token-0123456789"));
    }

    #[test]
    fn the_file_is_bounded_and_the_tail_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.log");
        let sink = LogSink::new(path.clone(), 2048, 5);
        for i in 0..500 {
            sink.line(&format!("line {i:04} {}", "x".repeat(20)));
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 2048, "{size}");
        assert!(path.with_extension("log.1").exists());
        let tail = sink.tail(3);
        assert_eq!(tail.len(), 3);
        assert!(tail[2].starts_with("line 0499"));
        assert_eq!(sink.tail(100).len(), 5);
    }
}
