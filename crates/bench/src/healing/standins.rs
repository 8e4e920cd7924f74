//! The stand-in runtimes of `clawplane bench healing`'s cost part: a
//! process whose command line names `runtime` and the instance id (what the
//! local provisioner's process check looks for), and a loopback `/healthz`
//! listener per instance, all on one thread of their own, counting hits.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stand-in agents: `sh -c 'sleep N; :' runtime <instance id>`, each in
/// its own process group, killed (group and all) when dropped, so on every
/// exit path; `sleep N` bounds them even if this process is killed.
#[derive(Default)]
pub(super) struct StandIns(Vec<std::process::Child>);

impl StandIns {
    /// Starts one for instance `id`, living at most `lifetime_secs`; its pid.
    pub(super) fn spawn(&mut self, id: &str, lifetime_secs: u64) -> anyhow::Result<u32> {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("sleep {lifetime_secs}; :"))
            .arg("runtime")
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("start a stand-in runtime")?;
        let pid = child.id();
        self.0.push(child);
        Ok(pid)
    }
}

impl Drop for StandIns {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait();
        }
    }
}

#[derive(Default)]
pub(super) struct Counters {
    /// `GET /healthz` answered.
    pub(super) hits: AtomicU64,
    /// Connections accepted.
    pub(super) connections: AtomicU64,
}

/// The stand-ins' `/healthz` listeners, one per instance, all on one
/// thread of their own (a current-thread runtime), so their CPU is read
/// apart from the supervisor's. Stopped when dropped.
pub(super) struct Listeners {
    /// Their ports, one per instance.
    pub(super) ports: Vec<u16>,
    pub(super) counters: Arc<Counters>,
    /// Their thread's id.
    pub(super) tid: u32,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listeners {
    /// Binds `n` listeners on 127.0.0.1 and serves them until dropped.
    pub(super) async fn start(n: usize) -> anyhow::Result<Listeners> {
        let counters = Arc::new(Counters::default());
        let (ready, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = counters.clone();
        let thread = std::thread::Builder::new()
            .name("standin-healthz".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    let mut ports = Vec::with_capacity(n);
                    for _ in 0..n {
                        let bound = tokio::net::TcpListener::bind("127.0.0.1:0")
                            .await
                            .and_then(|l| Ok((l.local_addr()?.port(), l)));
                        match bound {
                            Ok((port, listener)) => {
                                ports.push(port);
                                tasks.spawn(accept(listener, shared.clone()));
                            }
                            Err(e) => {
                                let _ = ready.send(Err(e.into()));
                                return;
                            }
                        }
                    }
                    let _ = ready.send(thread_id().map(|tid| (ports, tid)));
                    let _ = stopped.await;
                });
            })?;
        let (ports, tid) = tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .context("the stand-in listeners did not start within 30 s")?
            .context("the stand-in listeners' thread ended")??;
        Ok(Listeners {
            ports,
            counters,
            tid,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections for ever; each may carry many requests (keep-alive).
async fn accept(listener: tokio::net::TcpListener, counters: Arc<Counters>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(answer(stream, counters.clone()));
    }
}

/// The stand-in's HTTP/1.1: `GET /healthz` is 200, anything else 404; a
/// request head is at most 16 KiB; the connection ends when the client
/// closes it.
async fn answer(mut stream: tokio::net::TcpStream, counters: Arc<Counters>) {
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
    const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 * 1024 {
                return;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let healthz = buf.starts_with(b"GET /healthz ");
        buf.drain(..end);
        let response = if healthz {
            counters.hits.fetch_add(1, Ordering::Relaxed);
            OK
        } else {
            NOT_FOUND
        };
        if stream.write_all(response).await.is_err() {
            return;
        }
    }
}

/// This thread's id, from `/proc/thread-self` (`<pid>/task/<tid>`).
fn thread_id() -> anyhow::Result<u32> {
    let link = std::fs::read_link("/proc/thread-self")?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .context("cannot read this thread's id from /proc/thread-self")
}
