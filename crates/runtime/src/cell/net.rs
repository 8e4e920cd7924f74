//! The cell's network: its own namespace (made by bubblewrap), reached from
//! the agent through a thread that lives inside it.
//!
//! - [`InCell`]: a thread that joined the cell's network namespace
//!   (`setns`) and opens sockets there for the agent; a socket keeps the
//!   namespace it was made in, so the agent's tasks use it as any other.
//! - [`Forwarder`]: the gateway's port on the host's loopback; every
//!   connection is opened to the same port inside the cell, so the gateway
//!   sees a loopback client (its local-client rules hold) and nothing on the
//!   host can be reached from the cell through it.
//! - [`RunningNet`]: what a running cell's network has: unreachable routes
//!   for private ranges and the host's own addresses, `slirp4netns` for
//!   public egress (host loopback disabled), and a listener inside the cell
//!   for each allowed host endpoint, at the same address.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::{CellSettings, Egress};

enum Request {
    Connect(SocketAddr, oneshot::Sender<io::Result<std::net::TcpStream>>),
    Listen(
        SocketAddr,
        oneshot::Sender<io::Result<std::net::TcpListener>>,
    ),
}

/// Opens sockets inside one cell's network namespace.
pub struct InCell {
    requests: std::sync::mpsc::Sender<Request>,
    pid: u32,
}

impl InCell {
    /// Joins the network namespace of `pid` on a thread of its own.
    pub fn enter(pid: u32) -> io::Result<InCell> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        let (requests, rx) = std::sync::mpsc::channel::<Request>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("cell-net-{pid}"))
            .spawn(move || {
                let joined = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from);
                drop(ns);
                let ok = joined.is_ok();
                let _ = ready_tx.send(joined);
                if !ok {
                    return;
                }
                for request in rx {
                    match request {
                        Request::Connect(addr, reply) => {
                            let stream =
                                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2));
                            let _ = reply.send(stream);
                        }
                        Request::Listen(addr, reply) => {
                            let _ = reply.send(std::net::TcpListener::bind(addr));
                        }
                    }
                }
            })?;
        ready
            .recv()
            .map_err(|_| io::Error::other("the cell's network thread ended"))??;
        Ok(InCell { requests, pid })
    }

    /// The host pid whose namespace this is.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A connection to `addr` as seen from inside the cell.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = self.ask(|reply| Request::Connect(addr, reply)).await?;
        stream.set_nonblocking(true)?;
        let stream = TcpStream::from_std(stream)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A listener on `addr` inside the cell.
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        let listener = self.ask(|reply| Request::Listen(addr, reply)).await?;
        listener.set_nonblocking(true)?;
        TcpListener::from_std(listener)
    }

    /// Sends a request to the cell's thread and waits for its socket.
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<io::Result<T>>) -> Request,
    ) -> io::Result<T> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .map_err(|_| io::Error::other("the cell has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the cell has stopped"))?
    }
}

/// Relays bytes both ways until either side closes.
async fn relay(mut a: TcpStream, mut b: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
    let _ = a.shutdown().await;
    let _ = b.shutdown().await;
}

/// Accepts on `listener` until aborted; each connection is relayed to what
/// `connect` opens for it (dropped when it opens nothing).
fn relay_each<F, Fut>(listener: TcpListener, connect: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<TcpStream>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let upstream = connect();
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                if let Some(upstream) = upstream.await {
                    let _ = upstream.set_nodelay(true);
                    relay(client, upstream).await;
                }
            });
        }
    })
}

/// The gateway's port on the host's loopback, forwarded into the cell.
pub struct Forwarder {
    target: Arc<RwLock<Option<Arc<InCell>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Listens on `127.0.0.1:port`; connections are refused (closed) until
    /// [`Forwarder::point_at`] names a running cell.
    pub async fn bind(port: u16) -> io::Result<Forwarder> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let target: Arc<RwLock<Option<Arc<InCell>>>> = Arc::default();
        let inner = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let shared = target.clone();
        let task = relay_each(listener, move || {
            // The cell that runs when the connection arrives.
            let cell = shared.read().ok().and_then(|t| t.clone());
            async move { cell?.connect(inner).await.ok() }
        });
        Ok(Forwarder { target, task })
    }

    /// Sends new connections to this cell (or nowhere).
    pub fn point_at(&self, cell: Option<Arc<InCell>>) {
        if let Ok(mut target) = self.target.write() {
            *target = cell;
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running cell's network; dropping it stops egress and the allowed
/// endpoints.
pub struct RunningNet {
    cell: Arc<InCell>,
    slirp: Option<tokio::process::Child>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningNet {
    /// Sets up the network of the sandbox started as `sandbox_pid`.
    pub async fn start(sandbox_pid: u32, settings: &CellSettings) -> Result<RunningNet, String> {
        let inner = find_namespaced_child(sandbox_pid).await?;
        let cell = Arc::new(
            InCell::enter(inner)
                .map_err(|e| format!("cannot enter the cell's network namespace: {e}"))?,
        );
        let mut net = RunningNet {
            cell: cell.clone(),
            slirp: None,
            tasks: Vec::new(),
        };
        let mut script = String::new();
        for range in BLOCKED {
            script.push_str(&format!("route add unreachable {range}\n"));
        }
        for ip in host_addresses() {
            script.push_str(&format!("route add unreachable {ip}/32\n"));
        }
        for addr in &settings.allow {
            if !addr.ip().is_loopback() {
                script.push_str(&format!("address add {}/32 dev lo\n", addr.ip()));
            }
        }
        run_in_netns(inner, &script).await?;
        for addr in settings.allow.clone() {
            let listener = cell
                .listen(addr)
                .await
                .map_err(|e| format!("cannot open the allowed endpoint {addr} in the cell: {e}"))?;
            net.tasks.push(relay_each(listener, move || async move {
                tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
                    .await
                    .ok()?
                    .ok()
            }));
        }
        if settings.egress == Egress::Public {
            net.slirp = Some(start_slirp(inner).await?);
        }
        Ok(net)
    }

    /// The handle for opening sockets in the cell.
    pub fn handle(&self) -> Arc<InCell> {
        self.cell.clone()
    }
}

impl Drop for RunningNet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(slirp) = self.slirp.as_mut() {
            let _ = slirp.start_kill();
        }
    }
}

/// Ranges a cell never reaches through egress: private, shared, link-local,
/// benchmark, multicast and reserved addresses. (slirp4netns's own network,
/// 10.0.2.0/24, is more specific and stays reachable: its resolver is there,
/// and its host address leads nowhere with the host loopback disabled.)
const BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// The host's own IPv4 addresses (public ones included: a service bound to
/// all addresses must not be reachable from a cell through them).
fn host_addresses() -> Vec<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let mut out: Vec<Ipv4Addr> = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("|-- ") {
            last = rest.parse().ok();
        } else if line.contains("/32 host LOCAL") {
            if let Some(ip) = last.filter(|ip| !ip.is_loopback() && !out.contains(ip)) {
                out.push(ip);
            }
        }
    }
    out
}

/// The first process under `pid` that lives in another network namespace
/// (bubblewrap's child): waits up to 5 s for it.
async fn find_namespaced_child(pid: u32) -> Result<u32, String> {
    let ours = std::fs::read_link("/proc/self/ns/net").ok();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        for child in crate::gateway::process::descendants(pid) {
            let theirs = std::fs::read_link(format!("/proc/{child}/ns/net")).ok();
            if theirs.is_some() && theirs != ours {
                return Ok(child);
            }
        }
        if tokio::time::Instant::now() > deadline || !crate::gateway::process::is_alive(pid) {
            return Err("the cell's sandbox did not start (no network namespace appeared)".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `ip -batch -` with `script` inside the network namespace of `pid`.
async fn run_in_netns(pid: u32, script: &str) -> Result<(), String> {
    if script.is_empty() {
        return Ok(());
    }
    let mut child = tokio::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["--", "ip", "-batch", "-"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run nsenter and ip (util-linux, iproute2): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes()).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .map_err(|_| "setting up the cell's routes took over 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "cannot set up the cell's routes: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// `slirp4netns` for the namespace of `pid`: NAT to public addresses, the
/// host's loopback disabled; it dies with the agent.
async fn start_slirp(pid: u32) -> Result<tokio::process::Child, String> {
    let child = tokio::process::Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--", "slirp4netns"])
        .args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--enable-sandbox",
            "--enable-seccomp",
        ])
        .arg(pid.to_string())
        .arg("tap0")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start slirp4netns (Debian package slirp4netns): {e}"))?;
    // Ready once tap0 has its address inside the cell.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let has_tap = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
            .is_ok_and(|s| s.contains("tap0:"));
        if has_tap {
            return Ok(child);
        }
        if tokio::time::Instant::now() > deadline {
            return Err("slirp4netns did not configure the cell's network within 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
