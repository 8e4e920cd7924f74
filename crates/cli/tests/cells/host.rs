//! The host side of the attack: an endpoint the operator allows cells to
//! reach (a tiny HTTP server on loopback answering a marker), and what the
//! test knows about the host's processes to recognise them in a tenant's
//! output.

use std::os::unix::fs::MetadataExt;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback HTTP endpoint that answers every request with its marker;
/// stops when dropped.
pub struct Allowed {
    /// `127.0.0.1:<port>`, as `CLAWPLANE_CELL_ALLOW` lists it.
    pub address: String,
    pub marker: String,
    task: tokio::task::JoinHandle<()>,
}

impl Allowed {
    pub async fn start() -> Allowed {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the allowed endpoint on loopback");
        let address = listener.local_addr().expect("its address").to_string();
        let marker = format!("allowed-endpoint-{}", uuid::Uuid::new_v4().simple());
        let body = marker.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    // One request per connection: read its head, answer, close.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Allowed {
            address,
            marker,
            task,
        }
    }
}

impl Drop for Allowed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Files a tenant may manage to make on the host, removed when dropped
/// (one of them is in the OpenClaw install other tests share).
pub struct Removed(pub Vec<std::path::PathBuf>);

impl Drop for Removed {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The uid of this test process (and of `serve`, which it started).
pub fn own_uid() -> u32 {
    std::fs::metadata("/proc/self").expect("/proc/self").uid()
}

/// The start of a process's command line as `ps -o args` shows it (NULs as
/// spaces), to recognise the process in a listing; `None` once it is gone.
pub fn cmdline_start(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text: String = String::from_utf8_lossy(&raw)
        .replace('\0', " ")
        .trim()
        .chars()
        .take(40)
        .collect();
    let text = text.trim_end();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The port of `http://127.0.0.1:<port>...`.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("a port in {url}"))
}
