//! `clawplane bench runtime`: starts a real `clawplane runtime` (this binary)
//! beside a real gateway and measures, in one run:
//!
//! - `GET /v1/devices` against `openclaw devices list --json` on the same gateway;
//! - `GET /v1/status` latency;
//! - a backup of an unchanged state, and a full backup against `tar czf` of
//!   the same directory;
//! - the agent's resident memory against the gateway's.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use clawplane_runtime::install;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::stats::{median, ms, p99, rss_kib};

/// Settings of the runtime benchmark.
#[derive(Debug, Args)]
pub struct RuntimeBenchArgs {
    /// Requests per HTTP measurement.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Runs of the OpenClaw CLI (each starts Node: seconds).
    #[arg(long, default_value_t = 5)]
    cli_runs: usize,
}

const SERVICE_TOKEN: &str = "bench-service-token-0123456789abcdef";
const GATEWAY_TOKEN: &str = "bench-gateway-token-0123456789abcdef";

/// Runs the runtime benchmark.
pub async fn run(args: RuntimeBenchArgs) -> anyhow::Result<ExitCode> {
    let installation = install::find(
        &install::default_cache_dir(),
        install::DEFAULT_OPENCLAW_VERSION,
    )?;
    let dir = tempfile::tempdir()?;
    let gateway_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut agent = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "runtime",
            "--listen",
            "127.0.0.1:0",
            "--gateway-port",
            &gateway_port.to_string(),
        ])
        .env("CLAWPLANE_STATE_DIR", dir.path().join("state"))
        .env("OPENAGENTS_SERVICE_TOKEN", SERVICE_TOKEN)
        .env("OPENCLAW_GATEWAY_TOKEN", GATEWAY_TOKEN)
        .env("CLAWPLANE_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = agent.stdout.take().context("agent stdout")?;
    let first = BufReader::new(stdout)
        .lines()
        .next_line()
        .await?
        .unwrap_or_default();
    let url = first
        .strip_prefix("clawplane runtime listening on ")
        .context("the agent did not print its address")?
        .to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()?;
    let get = |path: &str| {
        client
            .get(format!("{url}{path}"))
            .bearer_auth(SERVICE_TOKEN)
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let gateway_pid = loop {
        let status: serde_json::Value = get("/v1/status").send().await?.json().await?;
        if status["data"]["gateway"]["state"] == "running" {
            break status["data"]["gateway"]["pid"]
                .as_u64()
                .unwrap_or_default() as u32;
        }
        if Instant::now() > deadline {
            bail!("the gateway did not start in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // Devices: the agent's RPC path against the OpenClaw CLI.
    let devices = sample(args.requests, || async {
        get("/v1/devices")
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    })
    .await;
    let mut cli = Vec::new();
    for _ in 0..args.cli_runs {
        let started = Instant::now();
        let out = tokio::process::Command::new(&installation.node)
            .arg(&installation.openclaw)
            .args([
                "devices",
                "list",
                "--json",
                "--url",
                &format!("ws://127.0.0.1:{gateway_port}"),
                "--token",
                GATEWAY_TOKEN,
            ])
            .env("HOME", dir.path().join("cli-home"))
            .env("OPENCLAW_STATE_DIR", dir.path().join("cli-state"))
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", installation.node_bin_dir().display()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await?;
        if out.success() {
            cli.push(started.elapsed());
        }
    }
    cli.sort();
    let status = sample(args.requests, || async {
        get("/v1/status")
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    })
    .await;

    // Backups, with the gateway stopped so the state holds still: a full
    // backup into a fresh target, an unchanged one through the agent, and
    // `tar czf` of the same files (the same volatile parts left out).
    client
        .post(format!("{url}/v1/gateway/stop"))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await?;
    let state = dir.path().join("state/openclaw");
    let size = dir_size(&state) - dir_size(&state.join("cache")) - dir_size(&state.join("tmp"));
    let fresh = clawplane_backup::BackupTarget::parse(
        &format!("file://{}", dir.path().join("fresh-target").display()),
        &clawplane_backup::S3Settings::default(),
    )?;
    let fresh = clawplane_backup::BackupStore::open(&fresh, "bench").await?;
    let full_started = Instant::now();
    let full_report = fresh.backup(&state, "manual").await?;
    let full = (full_started.elapsed(), full_report.bytes_uploaded);
    timed_backup(&client, &url).await?;
    let unchanged = timed_backup(&client, &url).await?;
    let tar_started = Instant::now();
    let tar = tokio::process::Command::new("tar")
        .arg("czf")
        .arg(dir.path().join("state.tar.gz"))
        .args(["--exclude=./cache", "--exclude=./tmp", "--exclude=*.lock"])
        .arg("-C")
        .arg(&state)
        .arg(".")
        .status()
        .await?;
    let tar_time = tar_started.elapsed();
    let tar_bytes = std::fs::metadata(dir.path().join("state.tar.gz"))
        .map(|m| m.len())
        .unwrap_or(0);
    client
        .post(format!("{url}/v1/gateway/start"))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await?;
    let status_now: serde_json::Value = get("/v1/status").send().await?.json().await?;
    let gateway_pid = status_now["data"]["gateway"]["pid"]
        .as_u64()
        .map(|p| p as u32)
        .unwrap_or(gateway_pid);
    let agent_rss = rss_kib(agent.id().unwrap_or_default());
    let agent_anon = status_kib(agent.id().unwrap_or_default(), "RssAnon:");
    let gateway_rss = rss_kib(gateway_pid);
    let workers_rss: u64 = clawplane_runtime::gateway::process::descendants(gateway_pid)
        .into_iter()
        .map(rss_kib)
        .sum();

    println!("| measurement | clawplane | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    let cli_median = median(&cli);
    println!(
        "| devices list, median | `GET /v1/devices` {:.2} ms | `openclaw devices list --json` {:.0} ms | {:.0}x faster |",
        ms(median(&devices)),
        ms(cli_median),
        ms(cli_median) / ms(median(&devices)).max(0.001)
    );
    println!(
        "| `GET /v1/status` median / p99 | {:.2} ms / {:.2} ms | target 5 ms | |",
        ms(median(&status)),
        ms(p99(&status))
    );
    println!(
        "| full backup of the state ({:.1} MB without `cache/`, `tmp/`) | {:.0} ms, {} bytes uploaded | `tar czf` {:.0} ms, {} bytes{} | |",
        size as f64 / 1e6,
        ms(full.0),
        full.1,
        ms(tar_time),
        tar_bytes,
        if tar.success() { "" } else { " (tar failed)" }
    );
    println!(
        "| backup of an unchanged state | {:.0} ms, {} bytes uploaded | target 200 ms, 0 bytes | |",
        ms(unchanged.0),
        unchanged.1
    );
    println!(
        "| resident memory | agent {:.1} MB ({:.1} MB private, the rest pages of the shared binary) | gateway {:.1} MB (+ workers {:.1} MB) | |",
        agent_rss as f64 / 1024.0,
        agent_anon as f64 / 1024.0,
        gateway_rss as f64 / 1024.0,
        workers_rss as f64 / 1024.0
    );
    let _ = nix_terminate(&mut agent).await;
    Ok(ExitCode::SUCCESS)
}

async fn timed_backup(client: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let body: serde_json::Value = client
        .post(format!("{url}/v1/storage/backup"))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let elapsed = started.elapsed();
    let bytes = body["data"]["bytesUploaded"]
        .as_u64()
        .context("backup failed")?;
    Ok((elapsed, bytes))
}

async fn sample<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // Warm-up, then n timed calls (bounded in count).
    for _ in 0..5 {
        f().await;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        if f().await {
            out.push(t.elapsed());
        }
    }
    out.sort();
    out
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

async fn nix_terminate(child: &mut tokio::process::Child) -> std::io::Result<()> {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    Ok(())
}
