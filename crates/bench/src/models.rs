//! `clawplane bench models`: the metered model proxy (issue 16) against the
//! fake upstream directly, side by side in one run, printed as Markdown for
//! `docs/benchmarks.md`:
//!
//! - time to first token: the same streamed request, one at a time, straight
//!   to the fake upstream, through the proxy with a meter that does nothing,
//!   and through the proxy with `serve`'s real accounts (`ModelAccounts`: a
//!   hold reserved and settled in SQLite per request); the sides alternate
//!   in blocks, so drift on a shared machine affects all alike;
//! - streams per second at 1, 16 and 256 concurrent clients, each side;
//! - the proxy's resident memory per open stream at 1, 16 and 256 streams
//!   held open by the fake's gate (a fresh proxy process per count);
//! - reserve-and-settle pairs per second through `clawplane_billing::Ledger`
//!   on SQLite and PostgreSQL, without the proxy.
//!
//! The proxy runs in a child process of this binary ([`host`]), so its
//! memory is its own; the fake upstream and the clients run here. The
//! proxy's per-instance rate limits are off (every request is one
//! instance's). Nothing is sent beyond loopback; every loop is bounded in
//! count and time.

mod client;
mod holds;
pub mod host;

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use clawplane_store::Backend;
use clawplane_testkit::fake_upstream::{FakeUpstream, UPSTREAM_KEY};
use tokio::io::AsyncBufReadExt;

use super::stats::{machine, median, ms, p99, rss_kib};
use client::{http_client, Side};

/// Settings of the model proxy benchmark.
#[derive(Debug, Args)]
pub struct ModelsBenchArgs {
    /// Timed sequential requests per side for time to first token.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Untimed requests per side before them.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Seconds of each throughput run (streams, and holds).
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Most streams (or hold pairs) per client in one throughput run.
    #[arg(long, default_value_t = 100_000)]
    max_per_client: usize,
    /// Where the hold pairs are measured: `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both", value_parser = ["sqlite", "postgres", "both"])]
    backend: String,
    /// A PostgreSQL server where a scratch database may be created and dropped.
    #[arg(
        long,
        env = "CLAWPLANE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
}

/// Timed samples on one side before the next side's turn.
const BLOCK: usize = 50;
/// The target: time to first token added by the proxy at the median.
const TARGET_MS: f64 = 2.0;
const CONCURRENCY: [usize; 3] = [1, 16, 256];

/// Runs the model proxy benchmark.
pub async fn run(args: ModelsBenchArgs) -> anyhow::Result<ExitCode> {
    let upstream = FakeUpstream::start().await;
    let direct = Side {
        name: "direct to the fake upstream",
        url: format!("{}/chat/completions", upstream.base_url),
        token: UPSTREAM_KEY,
    };
    let noop = Host::start(&upstream.base_url, "noop").await?;
    let ledger = Host::start(&upstream.base_url, "ledger").await?;
    let sides = [
        direct,
        noop.side("proxy, no-op meter"),
        ledger.side("proxy, ModelAccounts on SQLite"),
    ];
    println!(
        "Run {} on {}.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine()
    );
    time_to_first_token(&args, &sides).await?;
    throughput(&args, &sides).await?;
    noop.stop().await;
    ledger.stop().await;
    memory(&upstream).await?;
    hold_pairs(&args).await?;
    Ok(ExitCode::SUCCESS)
}

async fn time_to_first_token(args: &ModelsBenchArgs, sides: &[Side]) -> anyhow::Result<()> {
    let client = http_client(1)?;
    for side in sides {
        for _ in 0..args.warmup {
            client::stream_once(&client, side).await?;
        }
    }
    let mut first: Vec<Vec<Duration>> = vec![Vec::new(); sides.len()];
    let mut total: Vec<Vec<Duration>> = vec![Vec::new(); sides.len()];
    while first[0].len() < args.requests {
        for (i, side) in sides.iter().enumerate() {
            for _ in 0..BLOCK.min(args.requests - first[i].len()) {
                let t = client::stream_once(&client, side).await?;
                first[i].push(t.first);
                total[i].push(t.total);
            }
        }
    }
    println!(
        "### Time to first token ({} sequential streamed requests per path, {} warm-up)\n",
        args.requests, args.warmup
    );
    println!("| path | first piece p50 ms | p99 ms | added p50 ms | added p99 ms | whole stream p50 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for v in first.iter_mut().chain(total.iter_mut()) {
        v.sort();
    }
    let (base50, base99) = (ms(median(&first[0])), ms(p99(&first[0])));
    for (i, side) in sides.iter().enumerate() {
        let (p50, p99v) = (ms(median(&first[i])), ms(p99(&first[i])));
        let added = |v: f64, b: f64| {
            if i == 0 {
                "—".to_owned()
            } else {
                format!("{:.2}", v - b)
            }
        };
        println!(
            "| {} | {p50:.2} | {p99v:.2} | {} | {} | {:.2} |",
            side.name,
            added(p50, base50),
            added(p99v, base99),
            ms(median(&total[i]))
        );
    }
    let added = ms(median(&first[2])) - base50;
    println!(
        "\nAdded at the median with the real meter: {added:.2} ms; target at most {TARGET_MS} ms: {}.\n",
        if added <= TARGET_MS { "met" } else { "not met" }
    );
    Ok(())
}

async fn throughput(args: &ModelsBenchArgs, sides: &[Side]) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds);
    println!(
        "### Streams per second ({} s per run, at most {} streams per client)\n",
        args.seconds, args.max_per_client
    );
    println!("| concurrent clients | path | streams/s | stream p50 ms | stream p99 ms |");
    println!("|---:|---|---:|---:|---:|");
    for clients in CONCURRENCY {
        let client = http_client(clients)?;
        for side in sides {
            let r = client::load(&client, side, clients, duration, args.max_per_client).await?;
            println!(
                "| {clients} | {} | {:.0} | {:.2} | {:.2} |",
                side.name,
                r.per_second,
                ms(median(&r.totals)),
                ms(p99(&r.totals))
            );
        }
    }
    println!();
    Ok(())
}

async fn memory(upstream: &FakeUpstream) -> anyhow::Result<()> {
    println!("### Proxy memory per open stream (a fresh proxy process, `ModelAccounts` on SQLite, per count)\n");
    println!("| open streams | proxy RSS before MiB | with them open MiB | per open stream KiB |");
    println!("|---:|---:|---:|---:|");
    for n in CONCURRENCY {
        let host = Host::start(&upstream.base_url, "ledger").await?;
        let side = host.side("proxy");
        let client = http_client(n)?;
        // Warm up: ordinary streams and one gated stream held and finished.
        for _ in 0..5 {
            client::stream_once(&client, &side).await?;
        }
        let one = client::open_gated(&client, &side, 1).await?;
        upstream.gate.add_permits(3);
        client::finish(one).await?;
        let before = rss_kib(host.pid);
        let open = client::open_gated(&client, &side, n).await?;
        let with = rss_kib(host.pid);
        // Each gated stream waits for two more pieces and its usage.
        upstream.gate.add_permits(3 * n);
        client::finish(open).await?;
        drop(client);
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} |",
            before as f64 / 1024.0,
            with as f64 / 1024.0,
            with.saturating_sub(before) as f64 / n as f64
        );
        host.stop().await;
    }
    println!();
    Ok(())
}

async fn hold_pairs(args: &ModelsBenchArgs) -> anyhow::Result<()> {
    let backends: &[Backend] = match args.backend.as_str() {
        "sqlite" => &[Backend::Sqlite],
        "postgres" => &[Backend::Postgres],
        _ => &[Backend::Sqlite, Backend::Postgres],
    };
    println!(
        "### Holds and settles through the ledger ({} s per run, one `reserve_model` + one `settle_model` per pair)\n",
        args.seconds
    );
    println!("| backend | clients | paying users | pairs/s | pair p50 ms | pair p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let duration = Duration::from_secs(args.seconds);
    for &backend in backends {
        let scratch = crate::ledger::Scratch::new(backend, &args.postgres_url).await?;
        for (clients, users) in [(1, 1), (16, 1), (16, 16)] {
            let r = holds::pairs(
                &scratch.store,
                clients,
                users,
                duration,
                args.max_per_client,
            )
            .await?;
            println!(
                "| {} | {clients} | {users} | {:.0} | {:.2} | {:.2} |",
                backend.as_str(),
                r.per_second,
                ms(median(&r.latencies)),
                ms(p99(&r.latencies))
            );
        }
        let report = scratch.store.verify_ledger().await?;
        scratch.finish().await;
        anyhow::ensure!(report.is_clean(), "verify found differences: {report:?}");
    }
    Ok(())
}

/// A proxy host child process (see [`host`]); stopped when its stdin closes.
struct Host {
    child: tokio::process::Child,
    pid: u32,
    base: String,
    _dir: tempfile::TempDir,
}

impl Host {
    async fn start(upstream: &str, meter: &str) -> anyhow::Result<Host> {
        let dir = tempfile::tempdir()?;
        let log: PathBuf = dir.path().join("proxy.log");
        let data = dir.path().join("data");
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args([
                "bench",
                "models-proxy",
                "--upstream",
                upstream,
                "--meter",
                meter,
            ])
            .arg("--data")
            .arg(&data)
            .env("CLAWPLANE_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("start the proxy host")?;
        let pid = child.id().context("the proxy host has no pid")?;
        let stdout = child.stdout.take().context("the proxy host's stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix(host::LISTENING) {
                    return Some(a.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(base) = base else {
            let _ = child.kill().await;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            bail!(
                "the proxy host did not start; its last log lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        };
        Ok(Host {
            child,
            pid,
            base,
            _dir: dir,
        })
    }

    fn side(&self, name: &'static str) -> Side {
        Side {
            name,
            url: format!("{}/v1/chat/completions", self.base),
            token: host::MODEL_TOKEN,
        }
    }

    /// Closes its stdin and waits (at most 10 s, then kills it).
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
