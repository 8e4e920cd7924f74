//! `clawplane`: one binary, one subcommand per role.
//!
//! - `serve`: the control plane (API, control endpoints, background jobs);
//! - `runtime`: the per-instance agent beside an OpenClaw gateway;
//! - `openclaw install`: the pinned Node and OpenClaw from npm;
//! - `admin`: operator commands against the store (credits, secrets, migrations);
//! - `bench`: benchmarks whose results go into `docs/benchmarks.md` (the
//!   `clawplane-bench` crate).

mod commands;
mod config;
mod logging;
mod models;

use clap::{Parser, Subcommand};

/// clawplane: a managed OpenClaw service you run on your own machines.
#[derive(Debug, Parser)]
#[command(name = "clawplane", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format: `text` for people, `json` for collectors.
    #[arg(long, env = "CLAWPLANE_LOG_FORMAT", default_value = "text", global = true, value_parser = ["text", "json"])]
    log_format: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane on its embedded defaults or the configured backends.
    Serve(commands::serve::ServeArgs),
    /// Run the per-instance agent beside an OpenClaw gateway (`/v1` API).
    Runtime(commands::runtime::RuntimeArgs),
    /// Install OpenClaw and the Node it needs.
    #[command(subcommand)]
    Openclaw(commands::openclaw::OpenclawCommand),
    /// Operator commands: credits, secrets, migrations.
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    /// Benchmarks (see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(clawplane_bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Runtime(args) => commands::runtime::run(args).await,
            Command::Openclaw(cmd) => commands::openclaw::run(cmd).await,
            Command::Admin(cmd) => commands::admin::run(cmd).await,
            Command::Bench(cmd) => clawplane_bench::run(cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
