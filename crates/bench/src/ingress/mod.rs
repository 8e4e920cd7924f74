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

mod hold;
mod latency;
mod memory;
mod report;
mod serve;
mod websocket;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use clawplane_runtime::install;
use reqwest::Method;
use serde_json::Value;

use hold::hold;
use latency::{choose_route, interleaved, HttpSide};
use memory::Pids;
use report::{print_report, Report};
use serve::{call, delete_instance, open_files_limit, reap, Reaper, Serve};
use websocket::{close_all, open_many, WsSide};

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
