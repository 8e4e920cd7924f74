//! Settings shared by several subcommands: where the data lives, the
//! encryption keys, billing. Every setting has a flag and an environment
//! variable (the seed's name where it had one). Secrets are read from the
//! environment or a file, never from a flag value, which `ps` would show.

use std::path::PathBuf;

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
        const NAME: &str = "OPENCLAW_ENCRYPTION_KEY";
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
            "OPENCLAW_ENCRYPTION_KEY_PREVIOUS",
            std::env::var("OPENCLAW_ENCRYPTION_KEY_PREVIOUS")
                .ok()
                .as_deref(),
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
