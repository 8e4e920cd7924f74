//! `clawplane bench ingress`: the gateway ingress (`<runtime_name>.localhost:<port>`
//! on `clawplane serve`, which forwards through the instance's runtime agent to
//! its gateway on loopback) against direct loopback to the same gateway, side
//! by side in one run:
//!
//! - HTTP latency: one client, sequential requests of a cheap gateway route
//!   (`GET /healthz`, else `/readyz`) on a kept-alive connection each side;
//! - WebSocket round trip: a WebSocket Ping answered by the gateway's
//!   WebSocket library with a Pong, on one socket each side (no OpenClaw
//!   handshake: the gateway closes such a socket after its pre-auth timeout,
//!   and the bench then reconnects and counts it);
//! - WebSockets held: M sockets opened through the ingress and held open
//!   together, with the resident memory (`VmRSS`) of `serve` and of the
//!   runtime agent before and with all of them open.
//!
//! The two sides of each latency run alternate in blocks, so drift on a
//! shared machine affects both alike. `serve` runs as a child process (this
//! binary, the `local` provisioner, a real gateway), so its memory is its
//! own. The client's address is a documentation address (RFC 5737) in
//! `X-Forwarded-For`, believed because the bench is `serve`'s trusted proxy
//! on loopback: the gateway refuses proxied clients that are on loopback.
//! Nothing is sent beyond loopback; every loop is bounded in count and time;
//! no key or token is printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use clawplane_runtime::install;
use futures_util::{SinkExt, StreamExt};
use reqwest::header::HOST;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::stats::{machine, median, ms, p95, p99};
use clawplane_runtime::gateway::process::mentioning as processes_under;

/// Settings of the ingress benchmark.
#[derive(Debug, Args)]
pub struct IngressBenchArgs {
    /// Timed HTTP requests, and timed WebSocket pings, on each side.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Untimed requests (and pings) on each side before the timed ones.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Timed samples on one side before switching to the other.
    #[arg(long, default_value_t = 100)]
    block: usize,
    /// WebSockets opened through the ingress and held open together.
    #[arg(long, default_value_t = 500)]
    held: usize,
    /// WebSockets being opened at the same time while opening the held ones.
    #[arg(long, default_value_t = 16)]
    open_concurrency: usize,
}

const INTERNAL_KEY: &str = "bench-internal-key-0123456789abcdef";
/// A throwaway key for the bench's temporary database.
const ENCRYPTION_KEY: &str = "5e1f3c0e9d2a4b5c8e7f6a5b4c3d2e1f00112233445566778899aabbccdd0b1e";
const USER: &str = "bench-ingress";
/// The client's address the trusted proxy (the bench) names (RFC 5737).
const CLIENT_ADDRESS: &str = "203.0.113.60";
/// The target: what the ingress may add at the median.
const TARGET: Duration = Duration::from_millis(1);
/// Longest wait for the instance to be ready.
const READY_WITHIN: Duration = Duration::from_secs(300);
/// Longest time one latency run (both sides) may take.
const RUN_WITHIN: Duration = Duration::from_secs(300);
/// Longest wait for one HTTP answer or one Pong.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// Most timed samples per side, whatever the settings.
const MAX_REQUESTS: usize = 100_000;
/// Most WebSockets held, whatever the settings.
const MAX_HELD: usize = 10_000;
/// Sockets opened from one client address to see the gateway's per-address
/// limit on unauthenticated sockets.
const ONE_ADDRESS_PROBE: usize = 40;
/// The gateway's pre-auth handshake timeout (OpenClaw's default): a socket
/// that has not sent `connect` by then is closed by the gateway.
const GATEWAY_PREAUTH: Duration = Duration::from_secs(15);

/// Runs the ingress benchmark.
pub async fn run(args: IngressBenchArgs) -> anyhow::Result<ExitCode> {
    let cache = install::default_cache_dir();
    install::find(&cache, install::DEFAULT_OPENCLAW_VERSION).with_context(|| {
        format!(
            "OpenClaw {} is not installed under {}: run `clawplane openclaw install` first",
            install::DEFAULT_OPENCLAW_VERSION,
            cache.display()
        )
    })?;
    let held = args.held.min(MAX_HELD);
    // serve and the runtime each hold two descriptors per relayed socket;
    // they inherit this process's limit.
    let needed = (2 * (held + ONE_ADDRESS_PROBE) + 512) as u64;
    match open_files_limit() {
        Some(limit) if limit < needed => bail!(
            "the open-files limit is {limit}, and {held} held WebSockets need about {needed}: \
             raise it (`ulimit -n {needed}`) or lower --held"
        ),
        _ => {}
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());

    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let _reaper = Reaper(data.clone());
    let mut serve = Serve::start(dir.path(), &data).await?;
    eprintln!("serve listening on port {}", serve.port);
    let api = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;

    let mut created = false;
    let result = bench(&args, held, &load, &api, &serve, &data, &mut created).await;

    // Whatever happened: the instance is deleted, serve stops, and no runtime
    // or gateway is left behind.
    let mut cleanup = Ok(());
    if created {
        eprintln!("deleting the instance");
        cleanup = delete_instance(&api, &serve.base).await;
    }
    serve.stop().await;
    let left = reap(&data).await;
    if left > 0 {
        eprintln!("{left} runtime or gateway processes were left and killed");
    }
    let code = result?;
    cleanup?;
    Ok(code)
}

async fn bench(
    args: &IngressBenchArgs,
    held: usize,
    load: &str,
    api: &reqwest::Client,
    serve: &Serve,
    data: &Path,
    created: &mut bool,
) -> anyhow::Result<ExitCode> {
    // 1. The instance, ready.
    let started = Instant::now();
    *created = true;
    call(api, Method::POST, &serve.base, Duration::from_secs(30)).await?;
    let instance = loop {
        let body = call(api, Method::GET, &serve.base, Duration::from_secs(30)).await?;
        match body["data"]["status"].as_str() {
            Some("ready") => break body["data"].clone(),
            Some("error") => bail!("provisioning failed: {}", body["data"]["status_reason"]),
            _ => {}
        }
        if started.elapsed() > READY_WITHIN {
            bail!("the instance was not ready within {READY_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let ready_after = started.elapsed();
    let id = instance["id"].as_str().context("the instance has no id")?;
    let name = instance["runtime_name"]
        .as_str()
        .context("the instance has no runtime_name")?;
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("instances").join(id).join("runtime.json"))
            .context("read the runtime's runtime.json")?,
    )?;
    let gateway_port = record["gateway_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .context("runtime.json has no gateway_port")?;
    let runtime_pid = record["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .context("runtime.json has no pid")?;
    let host = format!("{name}.localhost:{}", serve.port);
    eprintln!(
        "ready after {:.1} s; gateway on port {gateway_port}",
        ready_after.as_secs_f64()
    );
    let serve_addr = SocketAddr::from(([127, 0, 0, 1], serve.port));
    let gateway_addr = SocketAddr::from(([127, 0, 0, 1], gateway_port));
    let requests = args.requests.clamp(1, MAX_REQUESTS);
    let warmup = args.warmup.min(MAX_REQUESTS);
    let block = args.block.clamp(1, requests);

    // 2. HTTP latency.
    let mut via = HttpSide::new(
        format!("http://{serve_addr}"),
        Some(host.clone()),
        Some(CLIENT_ADDRESS),
    )?;
    let mut direct = HttpSide::new(format!("http://{gateway_addr}"), None, None)?;
    let route = choose_route(&mut via, &mut direct).await?;
    via.path = route.clone();
    direct.path = route.clone();
    eprintln!("HTTP: GET {route}, {requests} requests each side");
    let http_started = Instant::now();
    let (http_via, http_direct) =
        interleaved(&mut via, &mut direct, warmup, requests, block).await?;
    let http_took = http_started.elapsed();

    // 3. WebSocket round trip.
    let mut ws_via = WsSide::new(serve_addr, host.clone(), Some(CLIENT_ADDRESS.to_owned()));
    let mut ws_direct = WsSide::new(gateway_addr, gateway_addr.to_string(), None);
    eprintln!("WebSocket: ping -> pong, {requests} each side");
    let ping_started = Instant::now();
    let (ping_via, ping_direct) =
        interleaved(&mut ws_via, &mut ws_direct, warmup, requests, block).await?;
    let ping_took = ping_started.elapsed();
    let reconnects = (ws_via.reconnects, ws_direct.reconnects);
    let close_seen = ws_via.close_seen.take().or(ws_direct.close_seen.take());
    drop(ws_via);
    drop(ws_direct);

    // 4. WebSockets held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = Pids {
        serve: serve.pid,
        runtime: runtime_pid,
        data: data.to_owned(),
    };
    eprintln!("holding {held} WebSockets through the ingress");
    let holding = hold(serve_addr, &host, held, args.open_concurrency, &pids).await;

    // 5. The gateway's limit on unauthenticated sockets from one address.
    let one_address = open_many(serve_addr, &host, ONE_ADDRESS_PROBE, 1, |_| {
        CLIENT_ADDRESS.to_owned()
    })
    .await;
    let one_address_open = one_address.sockets.len();
    let one_address_refused = one_address.refused_text();
    close_all(one_address.sockets).await;

    print_report(&Report {
        requests,
        warmup,
        block,
        load,
        ready_after,
        route: &route,
        http: (&http_via, &http_direct),
        ping: (&ping_via, &ping_direct),
        took: (http_took, ping_took),
        reconnects,
        close_seen: close_seen.as_deref(),
        one_address: (one_address_open, &one_address_refused),
        holding: &holding,
    });
    Ok(ExitCode::SUCCESS)
}

/// `clawplane serve` as a child process.
struct Serve {
    child: tokio::process::Child,
    pid: u32,
    port: u16,
    base: String,
}

impl Serve {
    /// Starts `serve` on a random loopback port over `data` and waits for its
    /// address line. Its log (warnings only) goes to `<dir>/serve.log`.
    async fn start(dir: &Path, data: &Path) -> anyhow::Result<Serve> {
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
    async fn stop(&mut self) {
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
async fn call(
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
async fn delete_instance(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
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
async fn reap(data: &Path) -> usize {
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
struct Reaper(PathBuf);

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
fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// One timed sample: an HTTP request or a WebSocket round trip.
trait Probe {
    /// One round trip, timed; an error is a failed sample.
    async fn once(&mut self) -> anyhow::Result<Duration>;
}

/// Timed samples of one side.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    failures: usize,
    first_error: Option<String>,
}

/// Warm-up on each side, then `requests` timed samples on each side in
/// alternating blocks of `block` (A then B, then B then A, ...).
async fn interleaved<A: Probe, B: Probe>(
    a: &mut A,
    b: &mut B,
    warmup: usize,
    requests: usize,
    block: usize,
) -> anyhow::Result<(Samples, Samples)> {
    for i in 0..warmup {
        a.once()
            .await
            .with_context(|| format!("warm-up {i} through the ingress"))?;
        b.once()
            .await
            .with_context(|| format!("warm-up {i} direct"))?;
    }
    let (mut sa, mut sb) = (Samples::default(), Samples::default());
    let started = Instant::now();
    let mut k = 0;
    while sa.times.len() + sa.failures < requests {
        if started.elapsed() > RUN_WITHIN {
            bail!("{requests} samples each side took over {RUN_WITHIN:?}");
        }
        let n = block.min(requests - sa.times.len() - sa.failures);
        if k % 2 == 0 {
            run_block(a, n, &mut sa).await;
            run_block(b, n, &mut sb).await;
        } else {
            run_block(b, n, &mut sb).await;
            run_block(a, n, &mut sa).await;
        }
        k += 1;
        if sa.times.is_empty() && sa.failures >= requests.min(100) {
            break;
        }
    }
    sa.times.sort();
    sb.times.sort();
    Ok((sa, sb))
}

async fn run_block<P: Probe>(p: &mut P, n: usize, into: &mut Samples) {
    for _ in 0..n {
        match p.once().await {
            Ok(d) => into.times.push(d),
            Err(e) => {
                into.failures += 1;
                into.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}

/// HTTP requests to the gateway: direct, or through the ingress (with the
/// ingress host and the client's address).
struct HttpSide {
    client: reqwest::Client,
    base: String,
    host: Option<String>,
    forwarded_for: Option<&'static str>,
    path: String,
}

impl HttpSide {
    fn new(
        base: String,
        host: Option<String>,
        forwarded_for: Option<&'static str>,
    ) -> anyhow::Result<Self> {
        // One client each: its own kept-alive connection.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ANSWER_WITHIN)
            .tcp_nodelay(true)
            .build()?;
        Ok(HttpSide {
            client,
            base,
            host,
            forwarded_for,
            path: "/healthz".into(),
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(h) = &self.host {
            request = request.header(HOST, h);
        }
        if let Some(x) = self.forwarded_for {
            request = request.header("x-forwarded-for", x);
        }
        let response = request.send().await?;
        let status = response.status();
        Ok((status, response.bytes().await?.to_vec()))
    }
}

impl Probe for HttpSide {
    async fn once(&mut self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let (status, _) = self.get(&self.path).await?;
        let elapsed = t.elapsed();
        if status != StatusCode::OK {
            bail!("GET {} answered {status}", self.path);
        }
        Ok(elapsed)
    }
}

/// `/healthz` if it answers 200 the same way on both sides, else `/readyz`.
async fn choose_route(via: &mut HttpSide, direct: &mut HttpSide) -> anyhow::Result<String> {
    let mut seen = Vec::new();
    for path in ["/healthz", "/readyz"] {
        let (sv, bv) = via.get(path).await?;
        let (sd, bd) = direct.get(path).await?;
        if sv == StatusCode::OK && sd == StatusCode::OK {
            if bv != bd {
                bail!(
                    "GET {path} through the ingress answered something else than the gateway: \
                     {} against {}",
                    String::from_utf8_lossy(&bv),
                    String::from_utf8_lossy(&bd)
                );
            }
            return Ok(path.to_owned());
        }
        seen.push(format!("{path}: {sv} through the ingress, {sd} direct"));
    }
    bail!(
        "no cheap gateway route answered 200 both ways: {}",
        seen.join("; ")
    )
}

type Socket = WebSocketStream<TcpStream>;

/// Why a WebSocket did not open.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Refusal {
    /// The upgrade was answered with this status instead of 101.
    Status(u16),
    /// No answer in time.
    Timeout,
    /// Another error (connection refused, reset...).
    Error(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Status(s) => write!(f, "HTTP {s}"),
            Refusal::Timeout => f.write_str("no answer in 10 s"),
            Refusal::Error(e) => f.write_str(e),
        }
    }
}

/// Opens a WebSocket on `addr` for `ws://{host}/` (the `Host` header), with
/// `X-Forwarded-For` when given, TCP_NODELAY on.
async fn open_ws(
    addr: SocketAddr,
    host: &str,
    forwarded_for: Option<&str>,
) -> Result<Socket, Refusal> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Refusal::Error(e.kind().to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| Refusal::Error(e.to_string()))?;
        let mut request = format!("ws://{host}/")
            .into_client_request()
            .map_err(|e| Refusal::Error(e.to_string()))?;
        if let Some(x) = forwarded_for {
            request.headers_mut().insert(
                "x-forwarded-for",
                x.parse()
                    .map_err(|_| Refusal::Error("bad address".into()))?,
            );
        }
        match tokio_tungstenite::client_async(request, stream).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(Refusal::Status(response.status().as_u16()))
            }
            Err(e) => Err(Refusal::Error(e.to_string())),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .unwrap_or(Err(Refusal::Timeout))
}

/// How a ping ended.
enum Pinged {
    Pong,
    /// The socket was closed (with this close frame, if any).
    Closed(Option<String>),
}

/// Sends a Ping with `payload` and waits for its Pong (other messages, such
/// as the gateway's `connect.challenge`, are skipped).
async fn ping(ws: &mut Socket, payload: Vec<u8>) -> anyhow::Result<Pinged> {
    let exchange = async {
        if ws.send(Message::Ping(payload.clone())).await.is_err() {
            return Ok(Pinged::Closed(None));
        }
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) if p == payload => return Ok(Pinged::Pong),
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Pinged::Closed(Some(describe_close(frame))))
                }
                Some(Ok(_)) => continue,
                Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))
                | Some(Err(tokio_tungstenite::tungstenite::Error::AlreadyClosed))
                | None => return Ok(Pinged::Closed(None)),
                Some(Err(e)) => return Err(anyhow::Error::new(e)),
            }
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .context("no pong within 5 s")?
}

/// One WebSocket, reopened when the gateway closes it.
struct WsSide {
    addr: SocketAddr,
    host: String,
    forwarded_for: Option<String>,
    ws: Option<Socket>,
    opened: usize,
    reconnects: usize,
    close_seen: Option<String>,
    seq: u64,
}

impl WsSide {
    fn new(addr: SocketAddr, host: String, forwarded_for: Option<String>) -> Self {
        WsSide {
            addr,
            host,
            forwarded_for,
            ws: None,
            opened: 0,
            reconnects: 0,
            close_seen: None,
            seq: 0,
        }
    }
}

impl Probe for WsSide {
    async fn once(&mut self) -> anyhow::Result<Duration> {
        // A socket closed under us is reopened once and the sample retaken.
        for _ in 0..2 {
            let ws = match &mut self.ws {
                Some(ws) => ws,
                None => {
                    let ws = open_ws(self.addr, &self.host, self.forwarded_for.as_deref())
                        .await
                        .map_err(|r| anyhow::anyhow!("the WebSocket did not open: {r}"))?;
                    if self.opened > 0 {
                        self.reconnects += 1;
                    }
                    self.opened += 1;
                    self.ws.insert(ws)
                }
            };
            self.seq += 1;
            let payload = self.seq.to_be_bytes().to_vec();
            let t = Instant::now();
            match ping(ws, payload).await {
                Ok(Pinged::Pong) => return Ok(t.elapsed()),
                Ok(Pinged::Closed(frame)) => {
                    if self.close_seen.is_none() {
                        self.close_seen = frame;
                    }
                    self.ws = None;
                }
                Err(e) => {
                    self.ws = None;
                    return Err(e);
                }
            }
        }
        bail!("the WebSocket closed twice in a row")
    }
}

/// Sockets opened together, and the refusals.
struct Opened {
    sockets: Vec<Socket>,
    refused: Vec<Refusal>,
    took: Duration,
}

impl Opened {
    /// "none", or the refusals counted by reason.
    fn refused_text(&self) -> String {
        if self.refused.is_empty() {
            return "none".into();
        }
        let mut reasons = self.refused.clone();
        reasons.sort();
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < reasons.len() {
            let n = reasons[i..]
                .iter()
                .take_while(|r| **r == reasons[i])
                .count();
            out.push(format!("{n} × {}", reasons[i]));
            i += n;
        }
        out.join(", ")
    }
}

/// Opens `n` WebSockets through the ingress, `concurrency` at a time, the
/// i-th from client address `address(i)`.
async fn open_many(
    addr: SocketAddr,
    host: &str,
    n: usize,
    concurrency: usize,
    address: impl Fn(usize) -> String,
) -> Opened {
    let started = Instant::now();
    let results: Vec<Result<Socket, Refusal>> = futures_util::stream::iter(0..n)
        .map(|i| {
            let forwarded_for = address(i);
            async move { open_ws(addr, host, Some(&forwarded_for)).await }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let took = started.elapsed();
    let mut opened = Opened {
        sockets: Vec::new(),
        refused: Vec::new(),
        took,
    };
    for r in results {
        match r {
            Ok(ws) => opened.sockets.push(ws),
            Err(e) => opened.refused.push(e),
        }
    }
    opened
}

/// Closes every socket (a close frame each, bounded), then drops them.
async fn close_all(sockets: Vec<Socket>) {
    let closing = futures_util::future::join_all(sockets.into_iter().map(|mut ws| async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }));
    let _ = tokio::time::timeout(Duration::from_secs(10), closing).await;
}

/// The i-th of 762 documentation addresses (RFC 5737: 203.0.113.0/24,
/// 198.51.100.0/24, 192.0.2.0/24, hosts 1-254), so that held sockets come
/// from many clients as they would in use.
fn documentation_address(i: usize) -> String {
    let k = i % (3 * 254);
    let host = 1 + k % 254;
    match k / 254 {
        0 => format!("203.0.113.{host}"),
        1 => format!("198.51.100.{host}"),
        _ => format!("192.0.2.{host}"),
    }
}

/// The processes whose memory is read.
struct Pids {
    serve: u32,
    runtime: u32,
    data: PathBuf,
}

/// Resident memory in KiB: serve, the runtime agent, and the gateway's
/// processes (everything else under the data directory) with their count.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    serve: u64,
    runtime: u64,
    gateway: u64,
    gateway_processes: usize,
}

fn memory(pids: &Pids) -> Memory {
    let others: Vec<i32> = processes_under(&pids.data)
        .into_iter()
        .filter(|p| *p != pids.serve as i32 && *p != pids.runtime as i32)
        .collect();
    Memory {
        serve: rss_kib(pids.serve).unwrap_or(0),
        runtime: rss_kib(pids.runtime).unwrap_or(0),
        gateway: others.iter().filter_map(|p| rss_kib(*p as u32)).sum(),
        gateway_processes: others.len(),
    }
}

/// What holding sockets showed.
struct Holding {
    wanted: usize,
    concurrency: usize,
    open: usize,
    refused: String,
    open_took: Duration,
    before: Memory,
    /// About a second after the last opened.
    early: Memory,
    early_at: Duration,
    early_answered: usize,
    /// Just before the gateway's pre-auth timeout of the first opened.
    late: Memory,
    late_at: Duration,
    late_answered: usize,
    after_close: Memory,
    /// After the gateway's pre-auth timeout of the last opened: sockets the
    /// gateway had closed, and its close frame.
    closed_later: usize,
    close_frame: Option<String>,
}

/// A ping on each socket; how many answered (bounded to 10 s in all).
async fn ping_all(sockets: &mut [Socket], round: u64) -> usize {
    let pings =
        futures_util::future::join_all(sockets.iter_mut().enumerate().map(|(i, ws)| async move {
            let payload = ((round << 32) | i as u64).to_be_bytes().to_vec();
            matches!(ping(ws, payload).await, Ok(Pinged::Pong))
        }));
    tokio::time::timeout(Duration::from_secs(10), pings)
        .await
        .map(|v| v.into_iter().filter(|ok| *ok).count())
        .unwrap_or(0)
}

/// A close frame as text.
fn describe_close(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!("code {}, no reason", u16::from(f.code)),
        Some(f) => format!("code {}, \"{}\"", u16::from(f.code), f.reason),
        None => "no close frame".into(),
    }
}

/// Opens `n` sockets through the ingress and holds them: memory before,
/// about a second after all opened and again just before the gateway's
/// pre-auth timeout, with a ping on each both times; then whether the
/// gateway closed them after that timeout; all closed at the end.
async fn hold(addr: SocketAddr, host: &str, n: usize, concurrency: usize, pids: &Pids) -> Holding {
    let before = memory(pids);
    let started = Instant::now();
    let opened = open_many(addr, host, n, concurrency, documentation_address).await;
    let refused = opened.refused_text();
    let (open_took, mut sockets) = (opened.took, opened.sockets);
    let open = sockets.len();
    eprintln!(
        "{open} of {n} open in {:.2} s (refused: {refused})",
        open_took.as_secs_f64()
    );
    // Let the relays of the last sockets start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let early = memory(pids);
    let early_at = started.elapsed();
    let early_answered = ping_all(&mut sockets, 1).await;

    // Held until shortly before the first opened reaches the gateway's
    // pre-auth timeout.
    if let Some(rest) = (GATEWAY_PREAUTH - Duration::from_secs(3)).checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let late = memory(pids);
    let late_at = started.elapsed();
    let late_answered = ping_all(&mut sockets, 2).await;
    eprintln!(
        "a ping answered by {early_answered} at {:.1} s and {late_answered} at {:.1} s after the \
         first opened; waiting out the gateway's pre-auth timeout",
        early_at.as_secs_f64(),
        late_at.as_secs_f64()
    );

    // Past the gateway's pre-auth timeout of the last opened: how many did
    // it close?
    let wait_until = open_took + GATEWAY_PREAUTH + Duration::from_secs(3);
    if let Some(rest) = wait_until.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let states = futures_util::future::join_all(sockets.iter_mut().map(|ws| async move {
        let drained = async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => return describe_close(frame),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return "closed without a close frame".to_owned(),
                }
            }
        };
        // Still open when nothing comes within the moment.
        tokio::time::timeout(Duration::from_millis(500), drained)
            .await
            .ok()
    }));
    let states = tokio::time::timeout(Duration::from_secs(10), states)
        .await
        .unwrap_or_default();
    let closed_later = states.iter().filter(|s| s.is_some()).count();
    let close_frame = states.into_iter().flatten().next();
    close_all(sockets).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_close = memory(pids);
    Holding {
        wanted: n,
        concurrency,
        open,
        refused,
        open_took,
        before,
        early,
        early_at,
        early_answered,
        late,
        late_at,
        late_answered,
        after_close,
        closed_later,
        close_frame,
    }
}

struct Report<'a> {
    requests: usize,
    warmup: usize,
    block: usize,
    load: &'a str,
    ready_after: Duration,
    route: &'a str,
    http: (&'a Samples, &'a Samples),
    ping: (&'a Samples, &'a Samples),
    /// How long the HTTP and the WebSocket runs took, both sides.
    took: (Duration, Duration),
    reconnects: (usize, usize),
    close_seen: Option<&'a str>,
    one_address: (usize, &'a str),
    holding: &'a Holding,
}

fn print_report(r: &Report<'_>) {
    println!("## Ingress: latency and WebSockets held\n");
    println!(
        "Machine: {}. Load average at the start: {}.\n",
        machine(),
        r.load
    );
    println!(
        "Settings: {} timed samples each side after {} warm-ups, sides alternating in blocks of \
         {}; one client on loopback; `serve` a child process (SQLite, the `local` provisioner, \
         request logging at `warn`), the instance ready {:.1} s after `POST \
         /api/openclaw/instance`; through the ingress with `Host: <runtime_name>.localhost:<port>` \
         and `X-Forwarded-For: {CLIENT_ADDRESS}` (127.0.0.1 is `serve`'s trusted proxy).\n",
        r.requests,
        r.warmup,
        r.block,
        r.ready_after.as_secs_f64()
    );
    println!("| what | path | p50 ms | p95 ms | p99 ms | max ms | samples | failures |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let rows = [
        (
            format!("HTTP `GET {}`", r.route),
            "direct to the gateway",
            r.http.1,
        ),
        (
            format!("HTTP `GET {}`", r.route),
            "through the ingress",
            r.http.0,
        ),
        (
            "WebSocket ping -> pong".to_owned(),
            "direct to the gateway",
            r.ping.1,
        ),
        (
            "WebSocket ping -> pong".to_owned(),
            "through the ingress",
            r.ping.0,
        ),
    ];
    for (what, path, s) in &rows {
        println!(
            "| {what} | {path} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
            ms(median(&s.times)),
            ms(p95(&s.times)),
            ms(p99(&s.times)),
            ms(s.times.last().copied().unwrap_or_default()),
            s.times.len(),
            s.failures
        );
    }
    println!();
    println!("| | added by the ingress at p50 ms | at p95 ms | at p99 ms | p50 within +1 ms |");
    println!("|---|---:|---:|---:|---|");
    for (what, (via, direct)) in [("HTTP", r.http), ("WebSocket", r.ping)] {
        let added = ms(median(&via.times)) - ms(median(&direct.times));
        println!(
            "| {what} | {added:+.3} | {:+.3} | {:+.3} | {} |",
            ms(p95(&via.times)) - ms(p95(&direct.times)),
            ms(p99(&via.times)) - ms(p99(&direct.times)),
            if added <= ms(TARGET) { "yes" } else { "**no**" }
        );
    }
    for (what, s) in [
        ("HTTP through the ingress", r.http.0),
        ("HTTP direct", r.http.1),
        ("ping through the ingress", r.ping.0),
        ("ping direct", r.ping.1),
    ] {
        if let Some(e) = &s.first_error {
            println!("\n{what}: first failure: {e}");
        }
    }
    println!(
        "\nThe HTTP run took {:.1} s and the WebSocket run {:.1} s (both sides, warm-ups \
         included). WebSockets reopened after the gateway closed them: {} through the ingress, \
         {} direct (close frame: {}).\n",
        r.took.0.as_secs_f64(),
        r.took.1.as_secs_f64(),
        r.reconnects.0,
        r.reconnects.1,
        r.close_seen.unwrap_or("none seen")
    );
    println!(
        "{ONE_ADDRESS_PROBE} WebSockets through the ingress from one client address: {} opened, \
         refused: {}.\n",
        r.one_address.0, r.one_address.1
    );

    let h = r.holding;
    println!(
        "### {} WebSockets held through the ingress\n\nOpened {} at a time, each from its own \
         documentation address: {} open in {:.2} s (refused: {}). A ping on each answered by {} \
         of {} at {:.1} s and by {} at {:.1} s after the first opened (memory read just before \
         each). After the gateway's {} s pre-auth timeout: {} closed by the gateway ({}).\n",
        h.wanted,
        h.concurrency,
        h.open,
        h.open_took.as_secs_f64(),
        h.refused,
        h.early_answered,
        h.open,
        h.early_at.as_secs_f64(),
        h.late_answered,
        h.late_at.as_secs_f64(),
        GATEWAY_PREAUTH.as_secs(),
        h.closed_later,
        h.close_frame.as_deref().unwrap_or("no close seen"),
    );
    println!(
        "| process | RSS before MiB | with {n} open, at {:.0} s | at {:.0} s | added MiB | KiB per \
         connection | after closing |",
        h.early_at.as_secs_f64(),
        h.late_at.as_secs_f64(),
        n = h.open
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mib = |k: u64| k as f64 / 1024.0;
    let per = |before: u64, with: u64| {
        if h.open == 0 {
            0.0
        } else {
            (with as f64 - before as f64) / h.open as f64
        }
    };
    let gateway = format!(
        "gateway ({} processes), for context",
        h.late.gateway_processes
    );
    for (name, b, e, l, a) in [
        (
            "`serve`",
            h.before.serve,
            h.early.serve,
            h.late.serve,
            h.after_close.serve,
        ),
        (
            "runtime agent",
            h.before.runtime,
            h.early.runtime,
            h.late.runtime,
            h.after_close.runtime,
        ),
        (
            gateway.as_str(),
            h.before.gateway,
            h.early.gateway,
            h.late.gateway,
            h.after_close.gateway,
        ),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:+.1} | {:.1} | {:.1} |",
            mib(b),
            mib(e),
            mib(l),
            mib(l) - mib(b),
            per(b, l),
            mib(a)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_addresses_are_distinct_and_documentation_only() {
        let all: std::collections::HashSet<String> = (0..762).map(documentation_address).collect();
        assert_eq!(all.len(), 762);
        assert!(all.iter().all(|a| a.starts_with("203.0.113.")
            || a.starts_with("198.51.100.")
            || a.starts_with("192.0.2.")));
        assert!(!all.iter().any(|a| a.ends_with(".0") || a.ends_with(".255")));
        assert_eq!(documentation_address(762), documentation_address(0));
    }

    #[test]
    fn resident_memory_is_read_from_proc_status() {
        let status = "Name:\tclawplane\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads: 4\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
