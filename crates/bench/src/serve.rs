//! `clawplane bench serve`: the control plane measured side by side, in one
//! run, against its baselines:
//!
//! - from `POST /api/openclaw/instance` to `ready` (the `local` provisioner:
//!   a `clawplane runtime` child and its real gateway), against a bare
//!   `openclaw gateway run` with the same configuration reaching `/readyz`;
//! - requests per second and latency at N concurrent clients for
//!   `GET /api/openclaw/instance` and `GET /api/openclaw/billing/summary`,
//!   against `GET /healthz` of the same server.
//!
//! Everything runs on loopback; every loop is bounded in time and count.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use clawplane_runtime::gateway::config_file::{self, BindMode, ManagedConfig};
use clawplane_runtime::gateway::GatewaySpec;
use clawplane_runtime::install;
use clawplane_secrets::SecretString;
use clawplane_server::ServerConfig;
use clawplane_store::StoreOptions;
use serde_json::Value;

use super::local_server::LocalServer;
use super::stats::{median, ms, p99};

/// Settings of the control-plane benchmark.
#[derive(Debug, Args)]
pub struct ServeBenchArgs {
    /// Cold starts measured on each side.
    #[arg(long, default_value_t = 3)]
    starts: usize,
    /// Concurrent clients of the throughput runs.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Seconds of each throughput run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Database connections (SQLite: readers).
    #[arg(long, default_value_t = StoreOptions::default().max_connections)]
    db_max_connections: u32,
    /// Milliseconds reads may be answered from memory (0: every read goes to the database).
    #[arg(long, default_value_t = 1000)]
    read_cache_ms: u64,
}

pub(super) const INTERNAL_KEY: &str = "bench-internal-key-0123456789abcdef";
const GATEWAY_TOKEN: &str = "bench-gateway-token-0123456789abcdef";
/// Most requests of one throughput run, whatever the time.
const MAX_REQUESTS: usize = 2_000_000;

/// Runs the control-plane benchmark.
pub async fn run(args: ServeBenchArgs) -> anyhow::Result<ExitCode> {
    let cache = install::default_cache_dir();
    let installation = install::find(&cache, install::DEFAULT_OPENCLAW_VERSION)?;
    let dir = tempfile::tempdir()?;
    let cache_ttl = Duration::from_millis(args.read_cache_ms);
    let options = StoreOptions {
        max_connections: args.db_max_connections,
        read_cache_ttl: cache_ttl,
        ..Default::default()
    };
    let config = ServerConfig {
        internal_key: Some(SecretString::from(INTERNAL_KEY.to_owned())),
        billing: clawplane_billing::BillingConfig {
            summary_cache_ttl: cache_ttl,
            ..Default::default()
        },
        run_jobs: false,
        ..Default::default()
    };
    let server = LocalServer::start(
        &dir.path().join("data"),
        &cache,
        &options,
        Duration::from_secs(60),
        config,
    )
    .await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;

    let mut bare = Vec::new();
    let mut managed = Vec::new();
    for i in 0..args.starts {
        bare.push(bare_gateway_start(&installation, dir.path(), i).await?);
        let user = format!("bench-{i}");
        managed.push(time_to_ready(&client, &base, &user).await?);
        if i + 1 < args.starts {
            request(
                &client,
                reqwest::Method::DELETE,
                &base,
                "/api/openclaw/instance",
                &user,
            )
            .await?;
        }
    }
    bare.sort();
    managed.sort();
    println!(
        "## Time to a ready gateway ({} cold starts each)\n",
        args.starts
    );
    println!("| path | median s | min s | max s |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("bare `openclaw gateway run` to `/readyz` 200", &bare),
        (
            "clawplane `POST /api/openclaw/instance` to `ready`",
            &managed,
        ),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            median(v).as_secs_f64(),
            v.first().copied().unwrap_or_default().as_secs_f64(),
            v.last().copied().unwrap_or_default().as_secs_f64()
        );
    }
    println!(
        "\nclawplane adds {:.0} ms at the median.\n",
        ms(median(&managed)) - ms(median(&bare))
    );

    // The last user keeps a ready instance (its gateway idle) for the reads.
    let user = format!("bench-{}", args.starts.saturating_sub(1));
    println!(
        "## Throughput at {} concurrent clients, {} s each\n",
        args.clients, args.seconds
    );
    println!("| route | requests/s | p50 ms | p99 ms | non-2xx |");
    println!("|---|---|---|---|---|");
    let mut trivial_rps = 0.0;
    for path in [
        "/healthz",
        "/api/openclaw/instance",
        "/api/openclaw/billing/summary",
    ] {
        let r = load(
            &client,
            &base,
            path,
            &user,
            args.clients,
            Duration::from_secs(args.seconds),
        )
        .await;
        if path == "/healthz" {
            trivial_rps = r.rps;
        }
        println!(
            "| `GET {path}` | {:.0} ({:.0}% of trivial) | {:.2} | {:.2} | {} |",
            r.rps,
            100.0 * r.rps / trivial_rps.max(1.0),
            ms(r.p50),
            ms(r.p99),
            r.failures
        );
    }
    request(
        &client,
        reqwest::Method::DELETE,
        &base,
        "/api/openclaw/instance",
        &user,
    )
    .await?;
    server.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// A bare gateway with the runtime's configuration, timed from spawn to `/readyz` 200.
async fn bare_gateway_start(
    installation: &install::Installation,
    dir: &std::path::Path,
    i: usize,
) -> anyhow::Result<Duration> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let spec = GatewaySpec {
        installation: installation.clone(),
        root: dir.join(format!("bare-{i}")),
        port,
        token: SecretString::from(GATEWAY_TOKEN.to_owned()),
        extra_env: Vec::new(),
        cell: None,
    };
    for d in [spec.state_dir(), spec.home(), spec.logs_dir()] {
        std::fs::create_dir_all(&d)?;
    }
    config_file::write(
        &spec.config_path(),
        &ManagedConfig {
            port,
            bind: BindMode::Loopback,
            trusted_proxies: vec!["127.0.0.1".into()],
            log_file: spec.gateway_json_log(),
            models: None,
        },
    )?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let started = Instant::now();
    let mut child = spec
        .command(&["gateway", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("start the bare gateway")?;
    let url = format!("http://127.0.0.1:{port}/readyz");
    let elapsed = loop {
        if matches!(http.get(&url).send().await, Ok(r) if r.status().is_success()) {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!("the bare gateway was not ready within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    Ok(elapsed)
}

pub(super) async fn request(
    client: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    path: &str,
    user: &str,
) -> anyhow::Result<Value> {
    let response = client
        .request(method, format!("{base}{path}"))
        .header("x-oa-internal-key", INTERNAL_KEY)
        .header("x-oa-user-id", user)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("{path} answered {status}: {body}");
    }
    Ok(body)
}

/// From `POST /api/openclaw/instance` until `GET` says `ready` (polled every 50 ms).
pub(super) async fn time_to_ready(
    client: &reqwest::Client,
    base: &str,
    user: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    request(
        client,
        reqwest::Method::POST,
        base,
        "/api/openclaw/instance",
        user,
    )
    .await?;
    loop {
        let body = request(
            client,
            reqwest::Method::GET,
            base,
            "/api/openclaw/instance",
            user,
        )
        .await?;
        match body["data"]["status"].as_str() {
            Some("ready") => return Ok(started.elapsed()),
            Some("error") => bail!("provisioning failed: {}", body["data"]["status_reason"]),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(240) {
            bail!("not ready within 240 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct LoadResult {
    rps: f64,
    p50: Duration,
    p99: Duration,
    failures: usize,
}

/// `clients` tasks calling `GET path` back to back for `duration`.
async fn load(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    user: &str,
    clients: usize,
    duration: Duration,
) -> LoadResult {
    let started = Instant::now();
    let per_client = MAX_REQUESTS / clients.max(1);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, user) = (client.clone(), format!("{base}{path}"), user.to_owned());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut failures = 0;
                while started.elapsed() < duration && samples.len() + failures < per_client {
                    let t = Instant::now();
                    let ok = client
                        .get(&url)
                        .header("x-oa-internal-key", INTERNAL_KEY)
                        .header("x-oa-user-id", &user)
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    if ok {
                        samples.push(t.elapsed());
                    } else {
                        failures += 1;
                    }
                }
                (samples, failures)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failures = 0;
    for t in tasks {
        if let Ok((s, f)) = t.await {
            all.extend(s);
            failures += f;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    LoadResult {
        rps: all.len() as f64 / elapsed,
        p50: median(&all),
        p99: p99(&all),
        failures,
    }
}
