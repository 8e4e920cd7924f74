//! `clawplane openclaw install [--version V]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use clawplane_runtime::install;

use crate::config;

/// OpenClaw itself.
#[derive(Debug, Subcommand)]
pub enum OpenclawCommand {
    /// Install the pinned Node and OpenClaw into the cache (a no-op when present).
    Install(InstallArgs),
}

/// Settings of `openclaw install`.
#[derive(Debug, Args)]
#[command(disable_version_flag = true, after_help = config::env_help(config::INSTALL_ENV))]
pub struct InstallArgs {
    /// OpenClaw version to install.
    #[arg(long = "version", env = "OPENCLAW_VERSION", default_value = install::DEFAULT_OPENCLAW_VERSION)]
    pub openclaw_version: String,
    /// Cache directory (default: `$XDG_CACHE_HOME/clawplane` or `~/.cache/clawplane`).
    #[arg(long, env = "CLAWPLANE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Runs an `openclaw` subcommand.
pub async fn run(command: OpenclawCommand) -> anyhow::Result<ExitCode> {
    match command {
        OpenclawCommand::Install(args) => {
            let cache = config::cache_dir(args.cache_dir);
            let version = args.openclaw_version.clone();
            let path = config::search_path();
            let result = tokio::task::spawn_blocking(move || {
                install::install(&cache, &version, &path, &mut |line| println!("{line}"))
            })
            .await?;
            match result {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
