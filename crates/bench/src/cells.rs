//! `clawplane bench cells`: what a cell costs, side by side in one run:
//! create-to-ready and the gateway's memory with every gateway in a cell
//! against the same without (`--isolation none`), and the runtime agent's
//! own memory. Two in-process servers over their own data directories; the
//! cold starts alternate between them so drift hits both alike.
//!
//! Memory is the resident set (VmRSS) summed over the runtime's descendants
//! (the gateway, its workers and, in a cell, bubblewrap), read after the
//! gateway has been ready for `--settle-secs`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use clawplane_runtime::gateway::process;
use clawplane_runtime::install;
use clawplane_secrets::SecretString;
use clawplane_server::ServerConfig;
use clawplane_store::StoreOptions;

use super::local_server::LocalServer;
use super::serve::{request, time_to_ready, INTERNAL_KEY};
use super::stats::{machine, median, rss_kib};

/// Settings of the cells benchmark.
#[derive(Debug, Args)]
pub struct CellsBenchArgs {
    /// Cold starts measured on each side.
    #[arg(long, default_value_t = 3)]
    starts: usize,
    /// Seconds a ready gateway settles before its memory is read.
    #[arg(long, default_value_t = 15)]
    settle_secs: u64,
}

struct Sample {
    ready: Duration,
    gateway_rss: u64,
    agent_rss: u64,
}

/// Runs the cells benchmark.
pub async fn run(args: CellsBenchArgs) -> anyhow::Result<ExitCode> {
    let cache = install::default_cache_dir();
    install::find(&cache, install::DEFAULT_OPENCLAW_VERSION)?;
    let dir = tempfile::tempdir()?;
    let config = || ServerConfig {
        internal_key: Some(SecretString::from(INTERNAL_KEY.to_owned())),
        run_jobs: false,
        ..Default::default()
    };
    let options = StoreOptions::default();
    let mut servers = Vec::new();
    for (name, cells) in [("none", false), ("cell", true)] {
        let data = dir.path().join(name);
        let server = LocalServer::start_with(
            &data,
            &cache,
            &options,
            Duration::from_secs(60),
            config(),
            cells,
        )
        .await?;
        servers.push((name, data, server, Vec::<Sample>::new()));
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    for i in 0..args.starts {
        for (name, data, server, samples) in servers.iter_mut() {
            let user = format!("bench-{name}-{i}");
            let ready = time_to_ready(&client, &server.base, &user).await?;
            tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
            let body = request(
                &client,
                reqwest::Method::GET,
                &server.base,
                "/api/openclaw/instance",
                &user,
            )
            .await?;
            let id = body["data"]["id"].as_str().unwrap_or_default().to_owned();
            let (gateway_rss, agent_rss) = memory(&data.join("instances").join(&id));
            samples.push(Sample {
                ready,
                gateway_rss,
                agent_rss,
            });
            request(
                &client,
                reqwest::Method::DELETE,
                &server.base,
                "/api/openclaw/instance",
                &user,
            )
            .await?;
        }
    }
    println!("Machine: {}\n", machine());
    println!(
        "## A cell's cost ({} cold starts each, memory after {} s ready)\n",
        args.starts, args.settle_secs
    );
    println!("| isolation | create to ready, median s | gateway memory, median MiB | runtime agent memory, median MiB |");
    println!("|---|---|---|---|");
    let mut medians = Vec::new();
    for (name, _, _, samples) in &servers {
        let ready: Vec<Duration> = sorted(samples.iter().map(|s| s.ready).collect());
        let gateway = median_u64(samples.iter().map(|s| s.gateway_rss).collect());
        let agent = median_u64(samples.iter().map(|s| s.agent_rss).collect());
        println!(
            "| `{name}` | {:.2} | {:.0} | {:.1} |",
            median(&ready).as_secs_f64(),
            mib(gateway),
            mib(agent)
        );
        medians.push((median(&ready).as_secs_f64(), gateway as f64));
    }
    if let [(t0, m0), (t1, m1)] = medians[..] {
        println!(
            "\nA cell adds {:+.1} % to time to ready and {:+.1} % to the gateway's memory.",
            100.0 * (t1 - t0) / t0.max(0.001),
            100.0 * (m1 - m0) / m0.max(1.0)
        );
    }
    for (_, _, server, _) in servers {
        server.stop().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Resident memory of the runtime's descendants, and of the runtime itself.
fn memory(instance_dir: &std::path::Path) -> (u64, u64) {
    let Some(pid) = runtime_pid(instance_dir) else {
        return (0, 0);
    };
    let gateway = process::descendants(pid).into_iter().map(rss).sum();
    (gateway, rss(pid))
}

/// The runtime agent's pid, from the `runtime.json` the local provisioner
/// keeps in the instance's directory.
pub(super) fn runtime_pid(instance_dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(instance_dir.join("runtime.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["pid"].as_u64())
        .and_then(|p| u32::try_from(p).ok())
}

/// VmRSS of a process, bytes.
fn rss(pid: u32) -> u64 {
    rss_kib(pid) * 1024
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
