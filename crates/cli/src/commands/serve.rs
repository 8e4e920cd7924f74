//! `clawplane serve`: the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use clawplane_domain::UserId;
use clawplane_runtime::cell::Isolation;
use clawplane_runtime::install;
use clawplane_server::ingress::IngressConfig;
use clawplane_server::instances::supervision::SupervisionSettings;
use clawplane_server::instances::{Capacity, InstanceSettings};
use clawplane_server::provision::local::{
    LocalOptions, LocalProvisioner, LocalSettings, DEFAULT_CELL_UID_BASE,
};
use clawplane_server::provision::static_env::{StaticProvisioner, StaticSettings};
use clawplane_server::provision::Provisioner;
use clawplane_server::startup::ModelsListener;
use clawplane_server::{Application, ServerConfig};

use crate::commands::runtime::CellArgs;
use crate::config::{self, BillingArgs, KeyArgs, StoreArgs};
use crate::models::{Included, ModelsArgs};

/// Settings of `serve`. Keys (`OA_CONTROL_KEY`, `OA_INTERNAL_KEY`,
/// `OPENCLAW_ENCRYPTION_KEY`) come from the environment only
/// ([`config::SERVE_ENV`], listed by `--help`).
///
/// The console's single-user beta mode: `OA_INTERNAL_USER_ID` (the seed's
/// name) set, the console needs no sign-in and is that user's.
#[derive(Debug, Args)]
#[command(after_help = config::env_help(config::SERVE_ENV))]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CLAWPLANE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub keys: KeyArgs,

    #[command(flatten)]
    pub billing: BillingArgs,

    /// The console's single-user beta mode: no sign-in, every visitor is
    /// this user. Only for a console behind the operator's own authentication.
    #[arg(long, env = "OA_INTERNAL_USER_ID", value_parser = parse_user_id)]
    pub console_user: Option<UserId>,

    /// Host names `<runtime_name>.<domain>` reach that instance's gateway
    /// through `serve` (on the default, `<runtime_name>.localhost:<port>`).
    #[arg(long, env = "CLAWPLANE_INGRESS_DOMAIN", default_value = "localhost")]
    pub ingress_domain: String,

    /// Proxies in front of `serve` whose `X-Forwarded-For` is believed
    /// (comma-separated addresses); nobody's by default.
    #[arg(long, env = "CLAWPLANE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// A gateway WebSocket without traffic either way is closed after this.
    #[arg(long, env = "CLAWPLANE_INGRESS_IDLE_SECS", default_value_t = 600)]
    pub ingress_idle_secs: u64,

    /// A gateway WebSocket is closed after this, traffic or not.
    #[arg(long, env = "CLAWPLANE_INGRESS_MAX_SECS", default_value_t = 86_400)]
    pub ingress_max_secs: u64,

    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "CLAWPLANE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Do not run the background jobs (monthly grants, metering) in this process.
    #[arg(long, env = "CLAWPLANE_NO_JOBS", default_value_t = false)]
    pub no_jobs: bool,

    /// How instances get a runtime: `local` (a `clawplane runtime` child per
    /// instance on this host) or `static` (the seed's OPENCLAW_RUNTIME_URL...).
    #[arg(
        long,
        env = "CLAWPLANE_PROVISIONER",
        value_enum,
        default_value = "local"
    )]
    pub provisioner: ProvisionerKind,

    /// Seconds provisioning may take before the instance is `error`.
    #[arg(long, env = "CLAWPLANE_PROVISION_TIMEOUT_SECS", default_value_t = 300)]
    pub provision_timeout_secs: u64,

    /// Seconds a local runtime may take to answer after it is started.
    #[arg(
        long,
        env = "CLAWPLANE_RUNTIME_START_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub runtime_start_timeout_secs: u64,

    /// Seconds a local runtime gets to back up and stop its gateway when it
    /// is stopped or removed, before it is killed.
    #[arg(
        long,
        env = "CLAWPLANE_RUNTIME_STOP_TIMEOUT_SECS",
        default_value_t = 90
    )]
    pub runtime_stop_timeout_secs: u64,

    /// Seconds a local runtime may take to answer one health check.
    #[arg(
        long,
        env = "CLAWPLANE_RUNTIME_PROBE_TIMEOUT_SECS",
        default_value_t = 2
    )]
    pub runtime_probe_timeout_secs: u64,

    /// OpenClaw version local runtimes run (installed at the first start
    /// when missing).
    #[arg(long, env = "OPENCLAW_VERSION", default_value = install::DEFAULT_OPENCLAW_VERSION)]
    pub openclaw_version: String,

    /// The `static` provisioner's runtime (the seed's variables; boxed, as
    /// is the cell, to keep `serve`'s arguments small on the stack).
    #[command(flatten)]
    pub static_runtime: Box<StaticArgs>,

    /// Where OpenClaw is installed for local runtimes (default:
    /// `$CLAWPLANE_CACHE_DIR`, `$XDG_CACHE_HOME/clawplane` or `~/.cache/clawplane`).
    #[arg(long, env = "CLAWPLANE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Every local gateway's cell.
    #[command(flatten)]
    pub cell: Box<CellArgs>,

    /// The included models and the model proxy.
    #[command(flatten)]
    pub models: Box<ModelsArgs>,

    /// Memory for all running instances: `auto` (the host's memory less
    /// `--capacity-reserve`), a size such as `64GiB`, or `unlimited`. Each
    /// running instance counts its cell's memory limit.
    #[arg(long, env = "CLAWPLANE_CAPACITY_MEMORY", default_value = "auto")]
    pub capacity_memory: String,

    /// What `auto` capacity keeps for the host itself and `serve`.
    #[arg(long, env = "CLAWPLANE_CAPACITY_RESERVE", default_value = "2GiB")]
    pub capacity_reserve: String,

    /// Seconds a connection may take to send a whole request head (and, on
    /// a kept-alive connection, the longest wait for the next one).
    #[arg(long, env = "CLAWPLANE_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds a connection with no request in flight stays open.
    #[arg(long, env = "CLAWPLANE_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Seconds a request's body may take to arrive (responses are not
    /// timed: they stream).
    #[arg(long, env = "CLAWPLANE_BODY_TIMEOUT_SECS", default_value_t = 60)]
    pub body_timeout_secs: u64,

    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "CLAWPLANE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Seconds between two checks of each runtime that should run (spread
    /// over the interval); a dead one is restarted.
    #[arg(long, env = "CLAWPLANE_SUPERVISE_INTERVAL_SECS", default_value_t = 5)]
    pub supervise_interval_secs: u64,

    /// Restarts of a dying runtime allowed within ten minutes; one more
    /// leaves its instance in `error`.
    #[arg(long, env = "CLAWPLANE_RUNTIME_RESTARTS", default_value_t = 5)]
    pub runtime_restarts: usize,

    /// The first uid given to a cell (each instance gets the lowest free one).
    #[arg(long, env = "CLAWPLANE_CELL_UID_BASE", default_value_t = DEFAULT_CELL_UID_BASE)]
    pub cell_uid_base: u32,

    /// Seconds a sign-in or sign-up waits for its turn to hash a password
    /// before it is answered 429.
    #[arg(long, env = "CLAWPLANE_HASH_WAIT_SECS", default_value_t = 5)]
    pub hash_wait_secs: u64,
}

/// The `static` provisioner's settings: the seed's variables, each also a
/// flag. Blank values count as unset.
#[derive(Debug, Clone, Args)]
pub struct StaticArgs {
    /// `static`: every instance's runtime URL.
    #[arg(long, env = "OPENCLAW_RUNTIME_URL")]
    pub runtime_url: Option<String>,
    /// `static`: the runtime URL with `{user_id}` replaced by the sanitised id
    /// (before --runtime-url).
    #[arg(long, env = "OPENCLAW_RUNTIME_URL_TEMPLATE")]
    pub runtime_url_template: Option<String>,
    /// `static`: the runtime name recorded on the instance.
    #[arg(long, env = "OPENCLAW_RUNTIME_NAME")]
    pub runtime_name: Option<String>,
    /// `static`: the prefix of a per-user runtime name.
    #[arg(long, env = "OPENCLAW_RUNTIME_NAME_PREFIX")]
    pub runtime_name_prefix: Option<String>,
    /// `static`: the R2 bucket recorded on the instance.
    #[arg(long, env = "OPENCLAW_R2_BUCKET")]
    pub r2_bucket: Option<String>,
    /// `static`: the prefix of a per-user R2 bucket.
    #[arg(long, env = "OPENCLAW_R2_BUCKET_PREFIX")]
    pub r2_bucket_prefix: Option<String>,
    /// `static`: the Cloudflare account recorded on the instance.
    #[arg(long, env = "CF_ACCOUNT_ID")]
    pub cf_account_id: Option<String>,
    /// `static`: the Cloudflare worker recorded on the instance.
    #[arg(long, env = "OPENCLAW_CF_WORKER_NAME")]
    pub cf_worker_name: Option<String>,
    /// `static`: the Cloudflare container app recorded on the instance.
    #[arg(long, env = "OPENCLAW_CF_CONTAINER_APP_NAME")]
    pub cf_container_app_name: Option<String>,
}

impl StaticArgs {
    /// The provisioner's settings, values trimmed and blank ones unset.
    pub fn settings(&self) -> StaticSettings {
        let value = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        StaticSettings {
            runtime_url: value(&self.runtime_url),
            runtime_url_template: value(&self.runtime_url_template),
            runtime_name: value(&self.runtime_name),
            runtime_name_prefix: value(&self.runtime_name_prefix),
            r2_bucket: value(&self.r2_bucket),
            r2_bucket_prefix: value(&self.r2_bucket_prefix),
            cf_account_id: value(&self.cf_account_id),
            cf_worker_name: value(&self.cf_worker_name),
            cf_container_app_name: value(&self.cf_container_app_name),
        }
    }
}

/// The provisioners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProvisionerKind {
    /// One `clawplane runtime` child process per instance on this host.
    Local,
    /// The runtime URL and names come from the seed's environment.
    Static,
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(mut args: ServeArgs) -> anyhow::Result<ExitCode> {
    let billing = clawplane_billing::BillingConfig {
        summary_cache_ttl: args.store.read_cache_ttl(),
        ..args.billing.config()?
    };
    let store = args.store.open().await?;
    let keys = args.keys.key_ring(&args.store, store.backend())?;
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {}: the port may be in use; choose another address with --listen or CLAWPLANE_LISTEN",
            args.listen
        )
    })?;
    if args.models.models.is_some() && args.billing.meter_model_spend {
        anyhow::bail!(
            "--models and --meter-model-spend cannot be on together: included models are billed by the model proxy from what the upstream counted, and metering what gateways report would bill them twice (from a number the tenant's cell can change). Turn CLAWPLANE_METER_MODEL_SPEND off."
        );
    }
    let models = args.models.load().await?;
    if let Some(m) = &models {
        // The gateways' cells reach the proxy at its own address.
        let allow = &mut args.cell.cell_allow;
        let proxy = m.address.to_string();
        if !allow.split(',').any(|a| a.trim() == proxy) {
            *allow = match allow.trim() {
                "" => proxy,
                list => format!("{list},{proxy}"),
            };
        }
    }
    let provisioner = provisioner(&args, models.as_ref()).await?;
    let config = ServerConfig {
        control_key: config::CONTROL_KEY.secret(),
        internal_key: config::INTERNAL_KEY.secret(),
        billing,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        run_jobs: !args.no_jobs,
        instances: InstanceSettings {
            fixed_service_token: config::FIXED_SERVICE_TOKEN
                .secret()
                .or_else(|| config::SERVICE_TOKEN.secret()),
            provision_timeout: Duration::from_secs(args.provision_timeout_secs.max(10)),
            capacity: capacity(&args)?,
            supervision: SupervisionSettings {
                interval: Duration::from_secs(args.supervise_interval_secs.max(1)),
                restarts_allowed: args.runtime_restarts,
                ..Default::default()
            },
            model_tokens: models.is_some(),
            ..Default::default()
        },
        listener: clawplane_http::ListenerLimits {
            header_read_timeout: Duration::from_secs(args.header_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(args.idle_timeout_secs.max(1)),
            request_body_timeout: Duration::from_secs(args.body_timeout_secs.max(1)),
            max_connections: args.max_connections.max(1),
        },
        console_user: args.console_user.clone(),
        hash_wait: Duration::from_secs(args.hash_wait_secs),
        ingress: IngressConfig {
            domain: args
                .ingress_domain
                .trim()
                .trim_matches('.')
                .to_ascii_lowercase(),
            trusted_proxies: args.trusted_proxies.clone(),
            limits: clawplane_proxy::Limits {
                idle: Duration::from_secs(args.ingress_idle_secs.max(1)),
                total: Duration::from_secs(args.ingress_max_secs.max(1)),
                ..Default::default()
            },
        },
        ..Default::default()
    };
    if let Some(user) = &config.console_user {
        tracing::warn!(
            %user,
            "the console is in single-user mode (OA_INTERNAL_USER_ID): no sign-in; keep it behind your own authentication"
        );
    }
    if config.control_key.is_none() {
        tracing::warn!(
            "OA_CONTROL_KEY is not set: the /control/openclaw endpoints answer 500 until it is"
        );
    }
    let mut app = Application::build(config, store.clone(), keys, provisioner, listener);
    if let Some(m) = models {
        app = app.with_models(ModelsListener {
            listener: m.listener,
            catalog: m.catalog,
            settings: Default::default(),
        });
    }
    let addr = app.local_addr()?;
    tracing::info!(database = store.backend().as_str(), "clawplane is ready");
    println!("clawplane listening on http://{addr}");
    app.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The configured provisioner. For `local`, OpenClaw is installed first if
/// it is missing (once per machine), so a fresh machine provisions real
/// gateways without another step.
async fn provisioner(
    args: &ServeArgs,
    models: Option<&Included>,
) -> anyhow::Result<Arc<dyn Provisioner>> {
    match args.provisioner {
        ProvisionerKind::Static => Ok(Arc::new(StaticProvisioner::new(
            args.static_runtime.settings(),
        ))),
        ProvisionerKind::Local => {
            let cache_dir = config::cache_dir(args.cache_dir.clone());
            let version = match args.openclaw_version.trim() {
                "" => install::DEFAULT_OPENCLAW_VERSION.to_owned(),
                v => v.to_owned(),
            };
            if install::find(&cache_dir, &version).is_err() {
                tracing::info!(
                    version,
                    "OpenClaw is not installed yet: installing it (first start only)"
                );
                let (cache, v, path) = (cache_dir.clone(), version.clone(), config::search_path());
                let result = tokio::task::spawn_blocking(move || {
                    install::install(&cache, &v, &path, &mut |line| tracing::info!("{line}"))
                })
                .await?;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "OpenClaw could not be installed: instances will fail to provision until `clawplane openclaw install` succeeds");
                }
            }
            let cell_uid_base = cells(args).await?;
            let binary = std::env::current_exe()
                .context("cannot find the clawplane binary to run runtimes")?;
            let settings = LocalSettings {
                data_dir: std::path::absolute(&args.store.data_dir)
                    .context("cannot resolve the data directory")?,
                binary,
                cache_dir,
                start_timeout: Duration::from_secs(args.runtime_start_timeout_secs.max(1)),
                stop_timeout: Duration::from_secs(args.runtime_stop_timeout_secs.max(1)),
                cell_uid_base,
                runtime_args: args.cell.to_args(),
            };
            let options = LocalOptions {
                child_env: config::child_env(),
                probe_timeout: Duration::from_secs(args.runtime_probe_timeout_secs.max(1)),
                models_offer: models.map(|m| m.offer.clone()),
            };
            Ok(Arc::new(LocalProvisioner::with_options(settings, options)))
        }
    }
}

/// The host's budget for running instances (local runtimes only).
fn capacity(args: &ServeArgs) -> anyhow::Result<Option<Capacity>> {
    use clawplane_runtime::cell::settings::parse_size;
    if args.provisioner != ProvisionerKind::Local {
        return Ok(None);
    }
    let per_instance_bytes =
        parse_size(&args.cell.cell_memory).map_err(|e| anyhow::anyhow!("--cell-memory: {e}"))?;
    let budget_bytes = match args.capacity_memory.trim().to_ascii_lowercase().as_str() {
        "unlimited" => return Ok(None),
        "auto" | "" => {
            let reserve = parse_size(&args.capacity_reserve)
                .map_err(|e| anyhow::anyhow!("--capacity-reserve: {e}"))?;
            host_memory()
                .context("cannot read the host's memory from /proc/meminfo; set --capacity-memory")?
                .saturating_sub(reserve)
        }
        other => parse_size(other).map_err(|e| anyhow::anyhow!("--capacity-memory: {e}"))?,
    };
    let capacity = Capacity {
        budget_bytes,
        per_instance_bytes,
    };
    tracing::info!(
        budget_mib = budget_bytes >> 20,
        per_instance_mib = per_instance_bytes >> 20,
        slots = capacity.slots(),
        "capacity"
    );
    if capacity.slots() == 0 {
        tracing::warn!("the capacity budget is smaller than one instance's memory: no instance can run; lower --cell-memory or raise --capacity-memory");
    }
    Ok(Some(capacity))
}

/// `MemTotal` of `/proc/meminfo`, bytes.
fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Checks the cell settings and that cells work on this host (refusing to
/// start otherwise); with `--isolation none`, warns. The first cell uid, or
/// `None` without cells.
async fn cells(args: &ServeArgs) -> anyhow::Result<Option<u32>> {
    let (isolation, settings) = args.cell.settings(args.cell_uid_base, "serve")?;
    match (isolation, settings) {
        (Isolation::Cell, Some(settings)) => {
            let host = config::host_check(args.cell.cell_check_timeout_secs);
            if let Err(why) = clawplane_runtime::cell::check::run(settings.egress, &host).await {
                anyhow::bail!(
                    "cells do not work on this host, so clawplane will not host anyone: {why}"
                );
            }
            tracing::info!(
                uid_base = args.cell_uid_base,
                memory_mib = settings.memory_bytes >> 20,
                cpus = settings.cpus,
                pids = settings.pids,
                egress = settings.egress.as_str(),
                allow = ?settings.allow,
                "every gateway runs in a cell of its own"
            );
            Ok(Some(args.cell_uid_base))
        }
        _ => {
            tracing::warn!("isolation is none (--isolation none): every gateway, and every command its agent runs, has this user's access to this host, the control plane's key and database included; use it only for one trusted user");
            Ok(None)
        }
    }
}

fn parse_user_id(s: &str) -> Result<UserId, String> {
    UserId::parse(s.trim()).map_err(|e| e.to_string())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
