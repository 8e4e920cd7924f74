//! `clawplane bench ...`: benchmarks whose results go into
//! `docs/benchmarks.md`. Each measures side by side in one run and stops by
//! itself; none sends traffic beyond loopback.
//!
//! A library of the `clawplane` binary, which mounts [`BenchCommand`] as its
//! `bench` subcommand and calls [`run`]: the benchmarks start the runtime
//! agent and `serve` as child processes from `std::env::current_exe()`, so
//! they run only from inside that binary. Kept out of the binary's crate so
//! the product does not carry their code.

mod cells;
mod console;
mod healing;
mod ingress;
mod ledger;
mod local_server;
mod models;
mod runtime;
mod serve;
mod stats;

use std::process::ExitCode;

use clap::Subcommand;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// What a cell costs: create-to-ready and gateway memory with cells
    /// against `--isolation none`, and the runtime agent's memory.
    Cells(cells::CellsBenchArgs),
    /// The web console: server-side render time of each page against
    /// `GET /healthz`, with a ready instance.
    Console(console::ConsoleBenchArgs),
    /// Supervision of runtimes: a runtime's death to running again against
    /// a cold create, and the supervision loop's cost with many instances.
    Healing(healing::HealingBenchArgs),
    /// The gateway ingress against direct loopback to the gateway: HTTP and
    /// WebSocket round trips, and WebSockets held with memory per connection.
    Ingress(ingress::IngressBenchArgs),
    /// Ledger throughput and balance-read latency on SQLite and PostgreSQL.
    Ledger(ledger::LedgerBenchArgs),
    /// The metered model proxy against the fake upstream directly: time to
    /// first token, streams per second, memory per open stream, and holds
    /// and settles per second on SQLite and PostgreSQL.
    Models(models::ModelsBenchArgs),
    /// The proxy host child process of `bench models` (not run by hand).
    #[command(hide = true)]
    ModelsProxy(models::host::ProxyHostArgs),
    /// The runtime agent against the OpenClaw CLI, `tar czf` and the gateway.
    Runtime(runtime::RuntimeBenchArgs),
    /// The control plane: time to ready against a bare gateway, and API
    /// throughput against a trivial route.
    Serve(serve::ServeBenchArgs),
}

/// Runs a benchmark.
pub async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Cells(args) => cells::run(args).await,
        BenchCommand::Console(args) => console::run(args).await,
        BenchCommand::Healing(args) => healing::run(args).await,
        BenchCommand::Ingress(args) => ingress::run(args).await,
        BenchCommand::Ledger(args) => ledger::run(args).await,
        BenchCommand::Models(args) => models::run(args).await,
        BenchCommand::ModelsProxy(args) => models::host::run(args).await,
        BenchCommand::Runtime(args) => runtime::run(args).await,
        BenchCommand::Serve(args) => serve::run(args).await,
    }
}
