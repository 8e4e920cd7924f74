//! The one place configuration is read. Settings shared by several
//! subcommands (where the data lives, the encryption keys, billing) are clap
//! arguments here, each subcommand's own in its `Args`; every one has a flag
//! and an environment variable (the seed's name where it had one). What is
//! read from the environment only (keys and tokens, which a flag would show
//! in `ps`, and the variables other programs share, such as `PATH`) is read
//! by the functions below and named in [`EnvOnly`] lists, which each
//! subcommand's `--help` prints; the README's settings table is checked
//! against that help by `tests/settings_table.rs`. The libraries below the
//! CLI never read the environment: they get typed settings.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use clawplane_billing::BillingConfig;
use clawplane_domain::MicroUsd;
use clawplane_secrets::keyfile::{self, KeyFileOutcome};
use clawplane_secrets::{EncryptionKey, KeyRing, SecretString};
use clawplane_store::{Backend, Store, StoreOptions};

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the SQLite database, the generated key file and local state.
    #[arg(long, env = "CLAWPLANE_DATA_DIR", default_value = "./clawplane-data")]
    pub data_dir: PathBuf,

    /// Database URL: `postgres://...` for PostgreSQL; unset means the SQLite
    /// file `clawplane.sqlite` in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Largest number of database connections.
    #[arg(long, env = "CLAWPLANE_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Milliseconds a user's instance and billing summary may be answered
    /// from memory (this process's writes clear them at once); 0 turns it off.
    #[arg(long, env = "CLAWPLANE_READ_CACHE_MS", default_value_t = 1000)]
    pub read_cache_ms: u64,
}

impl StoreArgs {
    /// The read cache's time to live.
    pub fn read_cache_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.read_cache_ms.min(60_000))
    }

    /// Opens the store, creating the SQLite file or running migrations as needed.
    pub async fn open(&self) -> anyhow::Result<Store> {
        let options = StoreOptions {
            max_connections: self.db_max_connections,
            read_cache_ttl: self.read_cache_ttl(),
            ..Default::default()
        };
        match self.database_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            None => Store::open_sqlite_dir(&self.data_dir, &options)
                .await
                .with_context(|| format!("cannot open the SQLite database in {}", self.data_dir.display())),
            Some(url) if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Store::connect(url, &options).await.context(
                    "cannot open the database at DATABASE_URL: check that it is reachable and the URL is right",
                )
            }
            Some(_) => bail!("DATABASE_URL must start with postgres:// or sqlite: (or be unset for the embedded SQLite file)"),
        }
    }
}

/// The encryption keys.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// A file holding the encryption key (64 hex characters or base64), as an
    /// alternative to OPENCLAW_ENCRYPTION_KEY.
    #[arg(long, env = "OPENCLAW_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The key ring: `OPENCLAW_ENCRYPTION_KEY` (or the key file), plus the
    /// decrypt-only keys in `OPENCLAW_ENCRYPTION_KEY_PREVIOUS`. With the
    /// embedded SQLite store and no key configured, a key is generated on
    /// first start and kept in the data directory (mode 0600).
    pub fn key_ring(&self, store: &StoreArgs, backend: Backend) -> anyhow::Result<KeyRing> {
        const NAME: &str = ENCRYPTION_KEY.name;
        let from_env = std::env::var(NAME).ok().map(SecretString::from);
        let from_file = match &self.encryption_key_file {
            Some(path) => Some(SecretString::from(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the key file {}", path.display()))?,
            )),
            None => None,
        };
        let configured = from_env.or(from_file);
        let current = match (configured, backend) {
            (Some(raw), _) => EncryptionKey::parse(NAME, Some(clawplane_secrets::ExposeSecret::expose_secret(&raw)))?,
            (None, Backend::Sqlite) => {
                let (key, outcome) = keyfile::load_or_create(&store.data_dir)?;
                if let KeyFileOutcome::Created(path) = outcome {
                    tracing::warn!(
                        path = %path.display(),
                        "OPENCLAW_ENCRYPTION_KEY is not set: generated a new encryption key and saved it (mode 0600); back it up, secrets cannot be read without it"
                    );
                }
                key
            }
            (None, Backend::Postgres) => {
                return Err(clawplane_secrets::KeyError::Unset(NAME)).context(
                    "with PostgreSQL the encryption key must be configured (it is shared by every replica)",
                )
            }
        };
        let previous = KeyRing::parse_previous(
            ENCRYPTION_KEY_PREVIOUS.name,
            std::env::var(ENCRYPTION_KEY_PREVIOUS.name).ok().as_deref(),
        )?;
        Ok(KeyRing::new(current).with_previous(previous))
    }
}

/// Billing settings.
#[derive(Debug, Clone, Args)]
pub struct BillingArgs {
    /// A burn may not take a balance below this many USD (negative allows an overdraft).
    #[arg(long, env = "CLAWPLANE_BILLING_FLOOR_USD", default_value = "0", value_parser = parse_usd, allow_hyphen_values = true)]
    pub billing_floor_usd: MicroUsd,

    /// USD granted to every user with an instance once per calendar month (UTC); 0 turns it off.
    #[arg(long, env = "CLAWPLANE_MONTHLY_GRANT_USD", default_value = "10", value_parser = parse_usd)]
    pub monthly_grant_usd: MicroUsd,

    /// USD burned per instance-hour of runtime; 0 turns runtime metering off.
    #[arg(long, env = "CLAWPLANE_INSTANCE_HOUR_PRICE_USD", default_value = "0.01", value_parser = parse_usd)]
    pub instance_hour_price_usd: MicroUsd,

    /// Length of one metering interval, in seconds.
    #[arg(long, env = "CLAWPLANE_METERING_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub metering_interval_secs: u64,

    /// Bill the model spend that gateways report (when the operator supplies the provider keys).
    #[arg(long, env = "CLAWPLANE_METER_MODEL_SPEND", default_value_t = false)]
    pub meter_model_spend: bool,

    /// Markup on reported model spend, in percent (up to two decimals).
    #[arg(long, env = "CLAWPLANE_MODEL_MARKUP_PERCENT", default_value = "0", value_parser = parse_percent_bps)]
    pub model_markup_percent: u32,
}

impl BillingArgs {
    /// The billing configuration.
    pub fn config(&self) -> anyhow::Result<BillingConfig> {
        if self.monthly_grant_usd < MicroUsd::ZERO || self.instance_hour_price_usd < MicroUsd::ZERO
        {
            bail!("CLAWPLANE_MONTHLY_GRANT_USD and CLAWPLANE_INSTANCE_HOUR_PRICE_USD must not be negative");
        }
        Ok(BillingConfig {
            floor: self.billing_floor_usd,
            monthly_grant: self.monthly_grant_usd,
            instance_hour_price: self.instance_hour_price_usd,
            metering_interval: std::time::Duration::from_secs(self.metering_interval_secs),
            meter_model_spend: self.meter_model_spend,
            model_markup_bps: self.model_markup_percent,
            ..Default::default()
        })
    }
}

/// A variable read from the environment only, with what it is for (one
/// line of `--help`).
#[derive(Debug, Clone, Copy)]
pub struct EnvOnly {
    /// The variable.
    pub name: &'static str,
    /// What it is for.
    pub meaning: &'static str,
}

impl EnvOnly {
    /// Its value, trimmed; unset or blank is `None`.
    pub fn value(&self) -> Option<String> {
        std::env::var(self.name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Its value as a secret, as set (unset or blank is `None`).
    pub fn secret(&self) -> Option<SecretString> {
        std::env::var(self.name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(SecretString::from)
    }
}

/// `OPENCLAW_ENCRYPTION_KEY` (or `--encryption-key-file`).
pub const ENCRYPTION_KEY: EnvOnly = EnvOnly {
    name: "OPENCLAW_ENCRYPTION_KEY",
    meaning: "the encryption key: 64 hex characters or base64 (or a key file)",
};
/// `OPENCLAW_ENCRYPTION_KEY_PREVIOUS`.
pub const ENCRYPTION_KEY_PREVIOUS: EnvOnly = EnvOnly {
    name: "OPENCLAW_ENCRYPTION_KEY_PREVIOUS",
    meaning: "comma-separated decrypt-only keys, for rotation",
};
/// `OA_CONTROL_KEY`.
pub const CONTROL_KEY: EnvOnly = EnvOnly {
    name: "OA_CONTROL_KEY",
    meaning: "the key of /control/openclaw/* (unset: they answer 500)",
};
/// `OA_INTERNAL_KEY`.
pub const INTERNAL_KEY: EnvOnly = EnvOnly {
    name: "OA_INTERNAL_KEY",
    meaning: "the API's internal key (unset: it answers 500)",
};
/// `OPENCLAW_SERVICE_TOKEN`.
pub const FIXED_SERVICE_TOKEN: EnvOnly = EnvOnly {
    name: "OPENCLAW_SERVICE_TOKEN",
    meaning: "one service token for every runtime (unset: one per instance)",
};
/// `OPENAGENTS_SERVICE_TOKEN`: `serve`'s second name for
/// [`FIXED_SERVICE_TOKEN`], the token a runtime requires.
pub const SERVICE_TOKEN: EnvOnly = EnvOnly {
    name: "OPENAGENTS_SERVICE_TOKEN",
    meaning: "the service token the control plane presents to runtimes",
};
/// `OPENCLAW_GATEWAY_TOKEN`.
pub const GATEWAY_TOKEN: EnvOnly = EnvOnly {
    name: "OPENCLAW_GATEWAY_TOKEN",
    meaning: "the token the agent presents to its gateway",
};
/// `OPENCLAW_PROVIDER_KEYS`.
pub const PROVIDER_KEYS: EnvOnly = EnvOnly {
    name: "OPENCLAW_PROVIDER_KEYS",
    meaning: "a JSON object of model-provider variables for the gateway",
};
/// `CLAWPLANE_MODELS_OFFER`: set by `serve` for the runtimes it starts.
pub const MODELS_OFFER: EnvOnly = EnvOnly {
    name: "CLAWPLANE_MODELS_OFFER",
    meaning: "the models serve includes, as JSON (serve sets it; unset: none)",
};
/// `CLAWPLANE_MODEL_TOKEN`: set by `serve` with [`MODELS_OFFER`].
pub const MODEL_TOKEN: EnvOnly = EnvOnly {
    name: "CLAWPLANE_MODEL_TOKEN",
    meaning: "the instance's token for serve's model proxy (serve sets it)",
};
/// `CLAWPLANE_LOG`.
pub const LOG: EnvOnly = EnvOnly {
    name: "CLAWPLANE_LOG",
    meaning: "the log filter (default info); serve passes it to its runtimes",
};
/// `RUST_LOG`.
pub const RUST_LOG: EnvOnly = EnvOnly {
    name: "RUST_LOG",
    meaning: "the log filter when CLAWPLANE_LOG is unset",
};
/// `PATH`.
pub const PATH: EnvOnly = EnvOnly {
    name: "PATH",
    meaning: "where npm and the cell's programs are found",
};
/// `HOME`.
pub const HOME: EnvOnly = EnvOnly {
    name: "HOME",
    meaning: "the default cache directory is under it",
};
/// `XDG_CACHE_HOME`.
pub const XDG_CACHE_HOME: EnvOnly = EnvOnly {
    name: "XDG_CACHE_HOME",
    meaning: "the default cache directory is <it>/clawplane",
};

/// What `serve` reads from the environment only.
pub const SERVE_ENV: &[EnvOnly] = &[
    ENCRYPTION_KEY,
    ENCRYPTION_KEY_PREVIOUS,
    CONTROL_KEY,
    INTERNAL_KEY,
    FIXED_SERVICE_TOKEN,
    SERVICE_TOKEN,
    LOG,
    RUST_LOG,
    PATH,
    HOME,
    XDG_CACHE_HOME,
];

/// What `runtime` reads from the environment only (the S3 variables are
/// [`s3_env`]'s).
pub const RUNTIME_ENV: &[EnvOnly] = &[
    SERVICE_TOKEN,
    GATEWAY_TOKEN,
    PROVIDER_KEYS,
    MODELS_OFFER,
    MODEL_TOKEN,
    LOG,
    RUST_LOG,
    PATH,
    HOME,
    XDG_CACHE_HOME,
];

/// What `openclaw install` reads from the environment only.
pub const INSTALL_ENV: &[EnvOnly] = &[LOG, RUST_LOG, PATH, HOME, XDG_CACHE_HOME];

/// What `admin secrets rotate` reads from the environment only.
pub const ROTATE_ENV: &[EnvOnly] = &[ENCRYPTION_KEY, ENCRYPTION_KEY_PREVIOUS, LOG, RUST_LOG];

/// The S3 variables of a backup target (`runtime`).
pub fn s3_env() -> Vec<EnvOnly> {
    clawplane_backup::S3Settings::VARIABLES
        .iter()
        .map(|&name| EnvOnly {
            name,
            meaning: match name {
                "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "an s3:// backup target's keys",
                "AWS_REGION" => "an s3:// target's region (auto when unset, as R2 expects)",
                "CLAWPLANE_S3_ALLOW_HTTP" => "true allows a plain http:// endpoint",
                _ => "an s3:// target's endpoint: R2, MinIO and the like",
            },
        })
        .collect()
}

/// The `--help` section that lists `vars` (the heading is what
/// `tests/settings_table.rs` looks for).
pub fn env_help(vars: &[EnvOnly]) -> String {
    let width = vars.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from(
        "Environment only (keys and tokens never come from a flag, which `ps` would show):",
    );
    for v in vars {
        out.push_str(&format!("\n  {:width$}  {}", v.name, v.meaning));
    }
    out
}

/// The help of `runtime`: [`RUNTIME_ENV`] and the S3 variables.
pub fn runtime_env_help() -> String {
    let mut vars = RUNTIME_ENV.to_vec();
    vars.extend(s3_env());
    env_help(&vars)
}

/// The log filter: `CLAWPLANE_LOG`, else `RUST_LOG`.
pub fn log_filter() -> Option<String> {
    LOG.value().or_else(|| RUST_LOG.value())
}

/// The cache directory: `explicit` (`--cache-dir` or `CLAWPLANE_CACHE_DIR`),
/// else `$XDG_CACHE_HOME/clawplane`, else `~/.cache/clawplane`.
pub fn cache_dir(explicit: Option<PathBuf>) -> PathBuf {
    let os = |v: EnvOnly| std::env::var_os(v.name).map(PathBuf::from);
    explicit
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| clawplane_runtime::install::cache_dir_in(os(XDG_CACHE_HOME), os(HOME)))
}

/// This process's `PATH` (`/usr/bin:/bin` when unset).
pub fn search_path() -> OsString {
    std::env::var_os(PATH.name).unwrap_or_else(|| "/usr/bin:/bin".into())
}

/// What the host check for cells needs, with its time limit.
pub fn host_check(timeout_secs: u64) -> clawplane_runtime::cell::check::HostCheck {
    clawplane_runtime::cell::check::HostCheck {
        search_path: search_path(),
        scratch_dir: std::env::temp_dir(),
        timeout: Duration::from_secs(timeout_secs.max(1)),
    }
}

/// What a runtime started by `serve` inherits of its environment.
pub fn child_env() -> clawplane_server::provision::local::ChildEnv {
    let defaults = clawplane_server::provision::local::ChildEnv::default();
    clawplane_server::provision::local::ChildEnv {
        path: std::env::var_os(PATH.name).unwrap_or(defaults.path),
        home: std::env::var_os(HOME.name).unwrap_or(defaults.home),
        log: std::env::var(LOG.name).unwrap_or(defaults.log),
    }
}

/// The S3 settings of a backup target, from the variables of [`s3_env`].
pub fn s3_settings() -> clawplane_backup::S3Settings {
    clawplane_backup::S3Settings::from_lookup(|name| std::env::var(name).ok())
}

/// Parses an exact USD amount for a flag.
pub fn parse_usd(text: &str) -> Result<MicroUsd, String> {
    MicroUsd::parse_decimal(text).map_err(|e| e.to_string())
}

/// Parses a percentage with at most two decimals into basis points.
fn parse_percent_bps(text: &str) -> Result<u32, String> {
    let micros = MicroUsd::parse_decimal(text)
        .map_err(|_| "expected a percentage such as 20 or 12.5".to_owned())?;
    let bps = micros.micros();
    if bps < 0 || bps % 10_000 != 0 || bps / 10_000 > 100_000 {
        return Err("expected a percentage from 0 to 1000 with at most two decimals".to_owned());
    }
    u32::try_from(bps / 10_000).map_err(|_| "percentage too large".to_owned())
}
