//! `clawplane runtime`: the per-instance agent beside an OpenClaw gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use clawplane_runtime::cell::check::HostCheck;
use clawplane_runtime::cell::settings::{parse_allow, parse_size};
use clawplane_runtime::cell::{CellSettings, Egress, Isolation};
use clawplane_runtime::gateway::config_file::BindMode;
use clawplane_runtime::{install, Agent, RuntimeConfig};
use clawplane_secrets::SecretString;

use crate::config::{self, EnvOnly};

/// Settings of `runtime`. The tokens come from the environment only
/// ([`config::RUNTIME_ENV`], listed by `--help`): `OPENAGENTS_SERVICE_TOKEN`
/// (what the control plane presents) and `OPENCLAW_GATEWAY_TOKEN` (what the
/// agent presents to the gateway).
#[derive(Debug, Args)]
#[command(after_help = config::runtime_env_help())]
pub struct RuntimeArgs {
    /// Address of the `/v1` API.
    #[arg(
        long,
        env = "CLAWPLANE_RUNTIME_LISTEN",
        default_value = "127.0.0.1:8787"
    )]
    pub listen: SocketAddr,
    /// The runtime's directory; the gateway's state is `<dir>/openclaw`.
    #[arg(
        long,
        env = "CLAWPLANE_STATE_DIR",
        default_value = "./clawplane-runtime"
    )]
    pub state_dir: PathBuf,
    /// Backup target: `file:///path` or `s3://bucket/prefix` (S3 keys from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL).
    /// Default: `file://<state dir>/backups`.
    #[arg(long, env = "CLAWPLANE_BACKUP_URL")]
    pub backup_url: Option<String>,
    /// The gateway's loopback port.
    #[arg(long, env = "CLAWPLANE_GATEWAY_PORT", default_value_t = 18789)]
    pub gateway_port: u16,
    /// The instance this runtime serves.
    #[arg(long, env = "CLAWPLANE_INSTANCE_ID", default_value = "local")]
    pub instance_id: String,
    /// The instance type reported in `/v1/status`.
    #[arg(long, env = "CLAWPLANE_INSTANCE_TYPE", default_value = "local")]
    pub instance_type: String,
    /// OpenClaw version (installed with `clawplane openclaw install`).
    #[arg(long, env = "OPENCLAW_VERSION", default_value = install::DEFAULT_OPENCLAW_VERSION)]
    pub openclaw_version: String,
    /// Where `clawplane openclaw install` put Node and OpenClaw.
    #[arg(long, env = "CLAWPLANE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Minutes between scheduled backups (taken only when something changed).
    #[arg(long, env = "CLAWPLANE_BACKUP_INTERVAL_MINUTES", default_value_t = 5)]
    pub backup_interval_minutes: u64,
    /// Backups kept: the last N.
    #[arg(long, env = "CLAWPLANE_BACKUP_KEEP_LAST", default_value_t = 10)]
    pub backup_keep_last: usize,
    /// Backups kept: one a day for this many days.
    #[arg(long, env = "CLAWPLANE_BACKUP_KEEP_DAILY_DAYS", default_value_t = 7)]
    pub backup_keep_daily_days: u32,
    /// Seconds SIGTERM gets before SIGKILL when stopping the gateway.
    #[arg(long, env = "CLAWPLANE_GATEWAY_STOP_GRACE_SECS", default_value_t = 20)]
    pub stop_grace_secs: u64,
    /// Do not start the gateway with the agent (wait for POST /v1/gateway/start).
    #[arg(long, env = "CLAWPLANE_NO_AUTOSTART", default_value_t = false)]
    pub no_autostart: bool,
    /// Where the gateway listens: `loopback`, `lan`, `tailnet` or `auto`.
    #[arg(long, env = "OPENCLAW_BIND_MODE", default_value = "loopback")]
    pub bind_mode: String,
    /// The gateway's development mode (any value but empty, `0` or `false`).
    #[arg(
        long,
        env = "OPENCLAW_DEV_MODE",
        action = clap::ArgAction::Set,
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = parse_dev_mode
    )]
    pub dev_mode: bool,
    /// The gateway's cell.
    #[command(flatten)]
    pub cell: CellArgs,
    /// The cell's uid and gid (at least 100000; `serve` gives each instance its own).
    #[arg(long, env = "CLAWPLANE_CELL_UID", default_value_t = 100_000)]
    pub cell_uid: u32,
}

/// The cell settings `serve` and `runtime` share.
#[derive(Debug, Clone, Args)]
pub struct CellArgs {
    /// `cell` (every gateway in a sandbox of its own) or `none` (the gateway
    /// runs as this user, with its access: for one trusted user only).
    #[arg(long, env = "CLAWPLANE_ISOLATION", default_value = "cell")]
    pub isolation: String,
    /// Memory limit of a cell.
    #[arg(long, env = "CLAWPLANE_CELL_MEMORY", default_value = "2GiB")]
    pub cell_memory: String,
    /// CPU limit of a cell, in CPUs.
    #[arg(long, env = "CLAWPLANE_CELL_CPUS", default_value_t = 2.0)]
    pub cell_cpus: f64,
    /// Process limit of a cell.
    #[arg(long, env = "CLAWPLANE_CELL_PIDS", default_value_t = 512)]
    pub cell_pids: u32,
    /// Open files per process in a cell.
    #[arg(long, env = "CLAWPLANE_CELL_OPEN_FILES", default_value_t = 8192)]
    pub cell_open_files: u32,
    /// Disk quota of a cell's state and home; past it the gateway is stopped.
    #[arg(long, env = "CLAWPLANE_CELL_DISK_QUOTA", default_value = "10GiB")]
    pub cell_disk_quota: String,
    /// `public` (NAT to public addresses; private ranges and the host are
    /// unreachable) or `none` (only the allowed endpoints).
    #[arg(long, env = "CLAWPLANE_CELL_EGRESS", default_value = "public")]
    pub cell_egress: String,
    /// Host endpoints a cell may reach, at the same address inside it
    /// (comma-separated `host:port`, IPv4 or localhost).
    #[arg(long, env = "CLAWPLANE_CELL_ALLOW", default_value = "")]
    pub cell_allow: String,
    /// Seconds the trial cell of the start-up check may take.
    #[arg(long, env = "CLAWPLANE_CELL_CHECK_TIMEOUT_SECS", default_value_t = HostCheck::DEFAULT_TIMEOUT.as_secs())]
    pub cell_check_timeout_secs: u64,
}

impl CellArgs {
    /// The isolation, and the cell's settings for `uid` and `name` when it is `cell`.
    pub fn settings(
        &self,
        uid: u32,
        name: &str,
    ) -> anyhow::Result<(Isolation, Option<CellSettings>)> {
        let isolation = Isolation::parse(&self.isolation).map_err(anyhow::Error::msg)?;
        let mut settings = CellSettings::new(uid, name).map_err(anyhow::Error::msg)?;
        settings.memory_bytes =
            parse_size(&self.cell_memory).map_err(|e| anyhow::anyhow!("--cell-memory: {e}"))?;
        settings.cpus = self.cell_cpus;
        settings.pids = self.cell_pids;
        settings.open_files = self.cell_open_files;
        settings.disk_quota_bytes = parse_size(&self.cell_disk_quota)
            .map_err(|e| anyhow::anyhow!("--cell-disk-quota: {e}"))?;
        settings.egress = Egress::parse(&self.cell_egress).map_err(anyhow::Error::msg)?;
        settings.allow = parse_allow(&self.cell_allow).map_err(anyhow::Error::msg)?;
        settings.validate().map_err(anyhow::Error::msg)?;
        Ok((
            isolation,
            (isolation == Isolation::Cell).then_some(settings),
        ))
    }

    /// The same settings as `runtime` flags for a child runtime, but
    /// `--isolation` (the provisioner adds it with the cell's uid).
    pub fn to_args(&self) -> Vec<String> {
        vec![
            format!("--cell-memory={}", self.cell_memory),
            format!("--cell-cpus={}", self.cell_cpus),
            format!("--cell-pids={}", self.cell_pids),
            format!("--cell-open-files={}", self.cell_open_files),
            format!("--cell-disk-quota={}", self.cell_disk_quota),
            format!("--cell-egress={}", self.cell_egress),
            format!("--cell-allow={}", self.cell_allow),
            format!("--cell-check-timeout-secs={}", self.cell_check_timeout_secs),
        ]
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(args: RuntimeArgs) -> anyhow::Result<ExitCode> {
    let service_token = required_secret(
        config::SERVICE_TOKEN,
        "the token the control plane presents on /v1",
    )?;
    let gateway_token = required_secret(
        config::GATEWAY_TOKEN,
        "the token the agent presents to the OpenClaw gateway",
    )?;
    let bind = BindMode::parse(&args.bind_mode).map_err(anyhow::Error::msg)?;
    let provider_env =
        RuntimeConfig::parse_provider_env(&config::PROVIDER_KEYS.value().unwrap_or_default())
            .map_err(anyhow::Error::msg)?;
    let state_dir = std::path::absolute(&args.state_dir).context("--state-dir")?;
    let backup_url = args
        .backup_url
        .unwrap_or_else(|| format!("file://{}", state_dir.join("backups").display()));
    // Refused here, before anything starts, with the message that says
    // which variable is missing. The agent parses the target again.
    let s3 = config::s3_settings();
    clawplane_backup::BackupTarget::parse(&backup_url, &s3)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
        format!("cannot listen on {}: the port may be in use; choose another with --listen or CLAWPLANE_RUNTIME_LISTEN", args.listen)
    })?;
    if std::net::TcpListener::bind(("127.0.0.1", args.gateway_port)).is_err() {
        bail!(
            "the gateway port {} is in use: choose another with --gateway-port or CLAWPLANE_GATEWAY_PORT",
            args.gateway_port
        );
    }
    let instance_name: String = args
        .instance_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    let (isolation, cell) = args.cell.settings(args.cell_uid, &instance_name)?;
    if let Some(cell) = &cell {
        let host = config::host_check(args.cell.cell_check_timeout_secs);
        clawplane_runtime::cell::check::run(cell.egress, &host)
            .await
            .map_err(anyhow::Error::msg)?;
    } else {
        tracing::warn!(isolation = isolation.as_str(), "isolation is none: the gateway runs as this user, with its access; never host other people this way");
    }
    let models = match (config::MODELS_OFFER.value(), config::MODEL_TOKEN.secret()) {
        (None, _) => None,
        (Some(offer), Some(token)) => Some(clawplane_runtime::gateway::config_file::IncludedModels {
            offer: clawplane_http::v1::ModelOffer::parse(&offer).map_err(anyhow::Error::msg)?,
            token,
        }),
        (Some(_), None) => anyhow::bail!(
            "CLAWPLANE_MODELS_OFFER is set without CLAWPLANE_MODEL_TOKEN: the gateway could not pay for a model"
        ),
    };
    let config = RuntimeConfig {
        models,
        state_dir,
        gateway_port: args.gateway_port,
        bind,
        service_token,
        gateway_token,
        dev_mode: args.dev_mode,
        instance_id: args.instance_id,
        instance_type: args.instance_type,
        openclaw_version: args.openclaw_version,
        cache_dir: config::cache_dir(args.cache_dir),
        backup_url,
        s3,
        backup_interval: Duration::from_secs(args.backup_interval_minutes.max(1) * 60),
        keep_last: args.backup_keep_last.max(1),
        keep_daily_days: args.backup_keep_daily_days,
        provider_env,
        body_limit: 64 * 1024,
        stop_grace: Duration::from_secs(args.stop_grace_secs),
        autostart: !args.no_autostart,
        cell,
    };
    let agent = Agent::build(config, listener).await?;
    println!(
        "clawplane runtime listening on http://{}",
        agent.local_addr()?
    );
    agent.run(crate::commands::serve::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn required_secret(var: EnvOnly, what: &str) -> anyhow::Result<SecretString> {
    match var.value() {
        Some(v) => Ok(SecretString::from(v)),
        None => bail!(
            "{} is not set: set it to {what} (at least 32 random characters, e.g. `openssl rand -hex 32`)",
            var.name
        ),
    }
}

/// `OPENCLAW_DEV_MODE`: on for any value but empty, `0` or `false`.
fn parse_dev_mode(text: &str) -> Result<bool, String> {
    let v = text.trim();
    Ok(!v.is_empty() && v != "0" && v != "false")
}
