//! `clawplane bench ...` (filled in below).

use std::process::ExitCode;

use clap::Subcommand;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ledger throughput and balance-read latency.
    Ledger,
}

/// Runs a benchmark.
pub async fn run(_command: BenchCommand) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
