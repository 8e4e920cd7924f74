//! The gateway's output: a size-bounded file (`gateway.log`, rotated once to
//! `gateway.log.1` when it passes its limit) and the last lines in memory.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where the gateway's stdout and stderr go.
#[derive(Debug)]
pub struct LogSink {
    path: PathBuf,
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
            max_bytes: max_bytes.max(1024),
            keep_lines: keep_lines.max(1),
            inner: Mutex::new(Inner {
                file: None,
                written,
                recent: VecDeque::new(),
            }),
        }
    }

    /// Appends one line.
    pub fn line(&self, line: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
