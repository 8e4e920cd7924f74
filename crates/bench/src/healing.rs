//! `clawplane bench healing`: what the supervision of runtimes buys and
//! costs, in one run.
//!
//! 1. **Healing.** Through a real in-process server (cells on, as `serve`
//!    defaults) with real runtimes and gateways: each round creates an
//!    instance (timed: `POST` until `ready` and the gateway `running`), lets
//!    it settle, kills its runtime agent with SIGKILL and times until `GET
//!    /api/openclaw/runtime/status` answers `running` from a new gateway.
//!    Each round has its own instance, so every kill is a first death (no
//!    backoff) and cold creates and kills alternate, drift hitting both. The
//!    gateway's own start (`readyAt - startedAt` of the status) is shown on
//!    both sides.
//! 2. **The loop's cost.** In this process: the instance service over a
//!    fresh SQLite store and a real local provisioner, with N `ready`
//!    instances whose runtimes are stand-ins (a `sh` whose command line names
//!    `runtime` and the instance id, and a loopback `/healthz` listener on a
//!    thread of its own, counting hits). The agents are stand-ins; the probe
//!    path (process check, then `/healthz`) is the real one. The process's
//!    CPU is read from `/proc/self/stat` over an idle period (listeners up,
//!    no supervisor) and over an equal period with the supervisor running.
//!
//! Loopback only; every loop is bounded in time and count; stand-ins and
//! instances are removed on every exit path.

mod cost;
mod standins;

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use clawplane_runtime::gateway::process;
use clawplane_runtime::install;
use clawplane_secrets::SecretString;
use clawplane_server::ServerConfig;
use clawplane_store::StoreOptions;
use serde_json::Value;

use super::cells::runtime_pid;
use super::local_server::LocalServer;
use super::serve::{request, time_to_ready, INTERNAL_KEY};
use super::stats::{machine, median};

/// Settings of the healing benchmark.
#[derive(Debug, Args)]
pub struct HealingBenchArgs {
    /// Rounds of cold create then SIGKILL of its runtime (0: skip part 1).
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// Seconds a ready gateway settles before its runtime is killed.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// Stand-in runtimes the supervisor checks (0: skip part 2).
    #[arg(long, default_value_t = 200)]
    instances: usize,
    /// Seconds of each CPU period (idle, then supervised).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The supervision interval, seconds.
    #[arg(long, default_value_t = 5)]
    interval_secs: u64,
}

/// Status polls: every 50 ms, for at most this long.
const POLL: Duration = Duration::from_millis(50);
const POLL_LIMIT: Duration = Duration::from_secs(180);

/// Runs the healing benchmark.
pub async fn run(args: HealingBenchArgs) -> anyhow::Result<ExitCode> {
    println!("Machine: {}\n", machine());
    if args.instances > 0 {
        let cost = cost::measure(&args).await?;
        cost::print(&args, &cost);
    }
    if args.kills > 0 {
        let rounds = kill_rounds(&args).await?;
        print_rounds(&args, &rounds);
    }
    Ok(ExitCode::SUCCESS)
}

// ---- Part 1: a runtime's death to running again, against a cold create.

struct Round {
    /// `POST` until `ready` and the gateway `running`.
    create: Duration,
    /// `POST` until the first gateway's `startedAt`.
    create_to_spawn: Duration,
    /// The first gateway's `readyAt - startedAt`.
    create_gateway: Duration,
    /// SIGKILL until the status answers `running` from a new gateway.
    heal: Duration,
    /// SIGKILL until the new gateway's `startedAt`.
    heal_to_spawn: Duration,
    /// The new gateway's `readyAt - startedAt`.
    heal_gateway: Duration,
    /// Status polls refused while it was down.
    refused: usize,
    /// Status polls answered by a gateway not (yet) running.
    starting: usize,
    /// Processes of the killed runtime still alive once healed.
    left: usize,
}

async fn kill_rounds(args: &HealingBenchArgs) -> anyhow::Result<Vec<Round>> {
    let cache = install::default_cache_dir();
    install::find(&cache, install::DEFAULT_OPENCLAW_VERSION)?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let config = ServerConfig {
        internal_key: Some(SecretString::from(INTERNAL_KEY.to_owned())),
        run_jobs: false,
        ..Default::default()
    };
    let server = LocalServer::start(
        &data,
        &cache,
        &StoreOptions::default(),
        Duration::from_secs(60),
        config,
    )
    .await?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut rounds = Vec::new();
    let mut outcome = Ok(());
    for i in 0..args.kills {
        let user = format!("bench-heal-{i}");
        let round = kill_round(&client, &server.base, &data, &user, args.settle_secs)
            .await
            // Read before the delete removes the instance's directory.
            .map_err(|e| e.context(runtime_logs(&data)));
        // Whatever happened, nothing of the round is left running.
        let deleted = request(
            &client,
            reqwest::Method::DELETE,
            &server.base,
            "/api/openclaw/instance",
            &user,
        )
        .await;
        match (round, deleted) {
            (Ok(r), Ok(_)) => rounds.push(r),
            (Err(e), _) | (Ok(_), Err(e)) => {
                outcome = Err(e.context(format!("round {}", i + 1)));
                break;
            }
        }
    }
    server.stop().await;
    outcome.map(|()| rounds)
}

/// The last lines of every runtime's log under `data`, for an error.
fn runtime_logs(data: &Path) -> String {
    let mut out = String::from("the runtimes' last log lines:");
    let Ok(dirs) = std::fs::read_dir(data.join("instances")) else {
        return out;
    };
    for dir in dirs.flatten() {
        let log = std::fs::read_to_string(dir.path().join("logs").join("runtime.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        for line in &lines[lines.len().saturating_sub(5)..] {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    out
}

async fn kill_round(
    client: &reqwest::Client,
    base: &str,
    data: &Path,
    user: &str,
    settle_secs: u64,
) -> anyhow::Result<Round> {
    let posted_at = Utc::now();
    let started = Instant::now();
    time_to_ready(client, base, user).await?;
    let first = running(client, base, user, None, started).await?;
    let create = started.elapsed();
    let create_gateway = span(&first.status, "startedAt", "readyAt")?;
    let create_to_spawn = since(posted_at, stamp(&first.status, "startedAt")?);

    tokio::time::sleep(Duration::from_secs(settle_secs)).await;
    let body = request(
        client,
        reqwest::Method::GET,
        base,
        "/api/openclaw/instance",
        user,
    )
    .await?;
    let id = body["data"]["id"].as_str().unwrap_or_default().to_owned();
    let pid = runtime_pid(&data.join("instances").join(&id))
        .context("the runtime's pid is not recorded in runtime.json")?;
    let old = process::descendants(pid);
    let killed_at = Utc::now();
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid)?),
        nix::sys::signal::Signal::SIGKILL,
    )
    .context("kill the runtime agent")?;
    // Dead (and reaped) before the first poll, so no answer comes from it.
    for _ in 0..500 {
        if !process::is_alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let healed = running(client, base, user, first.gateway_pid, killed).await?;
    let heal = killed.elapsed();
    Ok(Round {
        create,
        create_to_spawn,
        create_gateway,
        heal,
        heal_to_spawn: since(killed_at, stamp(&healed.status, "startedAt")?),
        heal_gateway: span(&healed.status, "startedAt", "readyAt")?,
        refused: healed.refused,
        starting: healed.starting,
        left: old.into_iter().filter(|p| process::is_alive(*p)).count()
            + usize::from(process::is_alive(pid)),
    })
}

struct Running {
    status: Value,
    gateway_pid: Option<u64>,
    refused: usize,
    starting: usize,
}

/// Polls `GET /api/openclaw/runtime/status` until it answers `running`
/// from a gateway other than `not_pid`, within [`POLL_LIMIT`] of `since`.
async fn running(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    not_pid: Option<u64>,
    since: Instant,
) -> anyhow::Result<Running> {
    let (mut refused, mut starting) = (0, 0);
    let most = POLL_LIMIT.as_millis() / POLL.as_millis();
    for _ in 0..most {
        match request(
            client,
            reqwest::Method::GET,
            base,
            "/api/openclaw/runtime/status",
            user,
        )
        .await
        {
            Ok(body) => {
                let gateway = &body["data"]["gateway"];
                let pid = gateway["pid"].as_u64();
                if gateway["state"] == "running" && (not_pid.is_none() || pid != not_pid) {
                    return Ok(Running {
                        status: body["data"]["gateway"].clone(),
                        gateway_pid: pid,
                        refused,
                        starting,
                    });
                }
                starting += 1;
            }
            Err(_) => refused += 1,
        }
        if since.elapsed() > POLL_LIMIT {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    bail!(
        "the gateway was not running within {} s",
        POLL_LIMIT.as_secs()
    )
}

fn stamp(gateway: &Value, key: &str) -> anyhow::Result<DateTime<Utc>> {
    gateway[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("the runtime status has no {key}: {gateway}"))
}

fn span(gateway: &Value, from: &str, to: &str) -> anyhow::Result<Duration> {
    Ok(since(stamp(gateway, from)?, stamp(gateway, to)?))
}

/// From `from` to `to` (zero if `to` is earlier).
fn since(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// Reads one measurement of a round.
type Measure = fn(&Round) -> Duration;

fn print_rounds(args: &HealingBenchArgs, rounds: &[Round]) {
    println!(
        "## A runtime's death to running again ({} rounds; cold create, {} s settle, SIGKILL of the runtime agent)\n",
        rounds.len(),
        args.settle_secs
    );
    println!("| measurement | median s | min s | max s |");
    println!("|---|---:|---:|---:|");
    let rows: [(&str, Measure); 6] = [
        (
            "cold create: `POST /api/openclaw/instance` to `ready`, gateway `running`",
            |r| r.create,
        ),
        ("of which `POST` to the gateway's `startedAt`", |r| {
            r.create_to_spawn
        }),
        (
            "of which the gateway's own start (`readyAt - startedAt`)",
            |r| r.create_gateway,
        ),
        (
            "SIGKILL of the runtime agent to status `running` (a new gateway)",
            |r| r.heal,
        ),
        (
            "of which SIGKILL to the new gateway's `startedAt` (notice, agent start, cell)",
            |r| r.heal_to_spawn,
        ),
        (
            "of which the new gateway's own start (`readyAt - startedAt`)",
            |r| r.heal_gateway,
        ),
    ];
    for (name, get) in rows {
        let mut v: Vec<Duration> = rounds.iter().map(get).collect();
        v.sort();
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            median(&v).as_secs_f64(),
            v.first().copied().unwrap_or_default().as_secs_f64(),
            v.last().copied().unwrap_or_default().as_secs_f64()
        );
    }
    let polls: Vec<String> = rounds
        .iter()
        .map(|r| format!("{} refused, {} not running", r.refused, r.starting))
        .collect();
    let left: usize = rounds.iter().map(|r| r.left).sum();
    println!(
        "\nStatus polls (every {} ms) between the kill and `running`, per round: {}. Processes of the killed runtimes still alive once healed: {left}.\n",
        POLL.as_millis(),
        polls.join("; ")
    );
}
