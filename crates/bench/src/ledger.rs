//! `clawplane bench ledger`: burns per second and balance-read latency on
//! SQLite and PostgreSQL, printed as Markdown for `docs/benchmarks.md`.
//!
//! Each run uses a fresh database (a temporary SQLite directory, or a new
//! PostgreSQL database that is dropped afterwards) and stops by itself: every
//! load phase is bounded in time and in count.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use clawplane_billing::{BillingConfig, BurnRequest, GrantRequest, Ledger};
use clawplane_domain::{IdempotencyKey, MicroUsd, UserId};
use clawplane_store::{Backend, Store, StoreOptions};
use sqlx::Connection;

/// Settings of the ledger benchmark.
#[derive(Debug, Args)]
pub struct LedgerBenchArgs {
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both", value_parser = ["sqlite", "postgres", "both"])]
    backend: String,
    /// A PostgreSQL server where a scratch database may be created and dropped.
    #[arg(
        long,
        env = "CLAWPLANE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Largest ledger size for the balance-read measurement.
    #[arg(long, default_value_t = 1_000_000)]
    max_entries: i64,
}

/// Runs the ledger benchmark.
pub async fn run(args: LedgerBenchArgs) -> anyhow::Result<ExitCode> {
    let backends: &[Backend] = match args.backend.as_str() {
        "sqlite" => &[Backend::Sqlite],
        "postgres" => &[Backend::Postgres],
        _ => &[Backend::Sqlite, Backend::Postgres],
    };
    println!("| backend | clients | users | burns/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut reads = Vec::new();
    for &backend in backends {
        let scratch = Scratch::new(backend, &args.postgres_url).await?;
        let store = scratch.store.clone();
        let ledger = Ledger::new(store.clone(), BillingConfig::default());
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        for clients in [1usize, 16, 64] {
            for users in [1000usize, 1] {
                let r = throughput(
                    &ledger,
                    &run_id,
                    clients,
                    users,
                    Duration::from_secs(args.seconds),
                )
                .await?;
                println!(
                    "| {} | {clients} | {} | {:.0} | {:.2} | {:.2} |",
                    backend.as_str(),
                    if users == 1 {
                        "1 (hot)".to_owned()
                    } else {
                        users.to_string()
                    },
                    r.per_second,
                    r.p50_ms,
                    r.p99_ms
                );
            }
        }
        for entries in [10i64, 100_000, args.max_entries] {
            let user = UserId::parse(&format!("reader-{entries}"))?;
            store
                .bulk_load_grants_for_benchmark(&user, entries, MicroUsd::from_micros(1))
                .await?;
            let (p50, p99) = read_latency(&store, &user).await?;
            reads.push((backend, entries, p50, p99));
        }
        let report = store.verify_ledger().await?;
        anyhow::ensure!(report.is_clean(), "verify found differences: {report:?}");
        scratch.finish().await;
    }
    println!();
    println!("| backend | ledger entries of the user | balance read p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    for (backend, entries, p50, p99) in reads {
        println!("| {} | {entries} | {p50:.0} | {p99:.0} |", backend.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

struct Throughput {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn throughput(
    ledger: &Ledger,
    run_id: &str,
    clients: usize,
    users: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    // Fund every user generously so no burn is refused.
    for u in 0..users {
        ledger
            .grant(GrantRequest {
                user_id: UserId::parse(&format!("u{u}"))?,
                amount: MicroUsd::from_usd(1_000_000),
                source: "benchmark".into(),
                idempotency_key: IdempotencyKey::parse(&format!(
                    "{run_id}-fund-{clients}-{users}-{u}"
                ))?,
                meta: serde_json::Value::Null,
            })
            .await?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (ledger, done, run_id) = (ledger.clone(), done.clone(), run_id.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Bounded in time and in count.
            for i in 0..1_000_000u64 {
                if start.elapsed() >= duration {
                    break;
                }
                let user = format!("u{}", (c as u64 * 7919 + i) % users as u64);
                let t = Instant::now();
                ledger
                    .burn(BurnRequest {
                        user_id: UserId::parse(&user)?,
                        amount: MicroUsd::from_micros(1),
                        source: "benchmark".into(),
                        idempotency_key: IdempotencyKey::parse(&format!(
                            "{run_id}-{clients}-{users}-{c}-{i}"
                        ))?,
                        meta: serde_json::Value::Null,
                    })
                    .await?;
                latencies.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Ok(Throughput {
        per_second: done.load(Ordering::Relaxed) as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

async fn read_latency(store: &Store, user: &UserId) -> anyhow::Result<(f64, f64)> {
    for _ in 0..200 {
        store.balance(user).await?;
    }
    let mut samples = Vec::with_capacity(5_000);
    for _ in 0..5_000 {
        let t = Instant::now();
        store.balance(user).await?;
        samples.push(t.elapsed());
    }
    samples.sort();
    let us = |p: f64| {
        samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6
    };
    Ok((us(0.50), us(0.99)))
}

/// A database that exists for one benchmark run: a temporary SQLite
/// directory, or a new PostgreSQL database dropped by [`Scratch::finish`]
/// (also used by the model proxy's hold benchmark).
pub(crate) struct Scratch {
    /// The open store.
    pub(crate) store: Store,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Scratch {
    /// A fresh database on `backend`; PostgreSQL's is made on `admin_url`'s server.
    pub(crate) async fn new(backend: Backend, admin_url: &str) -> anyhow::Result<Scratch> {
        let options = StoreOptions {
            max_connections: 32,
            ..Default::default()
        };
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let store = Store::open_sqlite_dir(dir.path(), &options).await?;
                Ok(Scratch {
                    store,
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres => {
                let name = format!("clawplane_bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin_url)
                    .await
                    .context("connect to PostgreSQL for the benchmark")?;
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                    .await?;
                conn.close().await?;
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(admin_url);
                let store = Store::connect(&format!("{base}/{name}"), &options).await?;
                Ok(Scratch {
                    store,
                    _dir: None,
                    pg: Some((admin_url.to_owned(), name)),
                })
            }
        }
    }

    /// Closes the store and drops a PostgreSQL database.
    pub(crate) async fn finish(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.pg {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::Executor::execute(
                    &mut conn,
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                )
                .await;
                let _ = conn.close().await;
            }
        }
    }
}
