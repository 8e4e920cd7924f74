//! The model proxy as the benchmark's child process (`clawplane bench
//! models-proxy`, hidden): `clawplane_models`' proxy on 127.0.0.1:0 in front
//! of the fake upstream, metered by `serve`'s real accounts
//! (`ModelAccounts` over a SQLite store in a directory, with one instance,
//! its model token and credits) or by a meter that does nothing, so the
//! ledger's share of the cost can be told apart. It serves like `serve`'s
//! model listener (`clawplane_http::serve`, default listener limits), prints
//! its address, and stops when its stdin closes (at most after
//! [`MAX_LIFETIME`]). Its resident memory is then the proxy's own: the fake
//! upstream and the clients live in the parent.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clap::Args;
use clawplane_billing::{BillingConfig, GrantRequest, Ledger};
use clawplane_domain::{IdempotencyKey, InstanceFields, MicroUsd, UserId};
use clawplane_models::cost::Usage;
use clawplane_models::proxy::{Caller, HoldId, Meter, Refusal, Unavailable};
use clawplane_models::{Catalog, Proxy, ProxySettings};
use clawplane_secrets::{EncryptionKey, KeyRing, SecretString};
use clawplane_server::metrics::Metrics;
use clawplane_server::models::ModelAccounts;
use clawplane_store::{NewInstance, Store, StoreOptions, Vault};
use clawplane_testkit::fake_upstream::UPSTREAM_KEY;
use tokio::io::AsyncReadExt;

/// The model token of the bench's instance (a bench value, not a secret).
pub(super) const MODEL_TOKEN: &str = "bench-model-token-0123456789abcdefghijklmnop";
/// The catalog's model the bench asks for.
pub(super) const MODEL: &str = "gpt-mini";
/// The line the host prints before its address.
pub(super) const LISTENING: &str = "model proxy listening on ";
/// Longest a host lives, whatever its parent does.
const MAX_LIFETIME: Duration = Duration::from_secs(45 * 60);

/// Settings of the proxy host (given by `clawplane bench models`).
#[derive(Debug, Args)]
pub struct ProxyHostArgs {
    /// The fake upstream, `http://127.0.0.1:<port>/v1`.
    #[arg(long)]
    upstream: String,
    /// `ledger` (serve's `ModelAccounts` over SQLite) or `noop`.
    #[arg(long, value_parser = ["ledger", "noop"])]
    meter: String,
    /// A directory for the SQLite store (ledger meter).
    #[arg(long)]
    data: PathBuf,
}

/// Runs the proxy host until its stdin closes.
pub async fn run(args: ProxyHostArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.upstream.starts_with("http://127.0.0.1:"),
        "the bench's upstream is on loopback only"
    );
    let catalog = catalog(&args.upstream)?;
    let meter: Arc<dyn Meter> = match args.meter.as_str() {
        "ledger" => Arc::new(ledger_meter(&args.data).await?),
        _ => Arc::new(NoopMeter),
    };
    let settings = ProxySettings {
        // The limits are per instance, and every bench request is one
        // instance's: off, so they measure the proxy, not the limiter.
        requests_per_minute: 0,
        tokens_per_minute: 0,
        ..ProxySettings::default()
    };
    let proxy = Proxy::new(catalog, meter, settings)?;
    let app = clawplane_models::router(Arc::new(proxy));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{LISTENING}http://{}", listener.local_addr()?);
    let stop = async {
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(
            MAX_LIFETIME,
            tokio::io::stdin().take(1 << 20).read_to_end(&mut sink),
        )
        .await;
    };
    clawplane_http::serve(
        listener,
        app,
        clawplane_http::ListenerLimits::default(),
        stop,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn catalog(upstream: &str) -> anyhow::Result<Catalog> {
    let text = format!(
        r#"
default = "{MODEL}"
[[providers]]
id = "fake"
base_url = "{upstream}"
api_key_env = "BENCH_UPSTREAM_KEY"
[[providers.models]]
id = "{MODEL}"
upstream = "gpt-4o-mini"
input_per_million = 150000
output_per_million = 600000
cached_per_million = 75000
max_output_tokens = 16384
context_window = 128000
"#
    );
    let env = |name: &str| (name == "BENCH_UPSTREAM_KEY").then(|| UPSTREAM_KEY.to_owned());
    Ok(Catalog::parse(&text, "models.toml".as_ref(), &env)?)
}

/// `serve`'s accounts over a fresh SQLite store: one instance with
/// [`MODEL_TOKEN`] and credits for far more requests than the bench makes.
async fn ledger_meter(data: &std::path::Path) -> anyhow::Result<ModelAccounts> {
    let options = StoreOptions {
        max_connections: 32,
        ..Default::default()
    };
    let store = Store::open_sqlite_dir(data, &options).await?;
    let user_id = UserId::parse("bench-models")?;
    let instance = store
        .create_instance(NewInstance {
            user_id: user_id.clone(),
            fields: InstanceFields::default(),
        })
        .await?;
    Vault::new(store.clone(), KeyRing::new(EncryptionKey::generate()))
        .put_model_token(instance.id, &SecretString::from(MODEL_TOKEN.to_owned()))
        .await?;
    let ledger = Ledger::new(store.clone(), BillingConfig::default());
    ledger
        .grant(GrantRequest {
            user_id,
            amount: MicroUsd::from_usd(1_000_000),
            source: "benchmark".into(),
            idempotency_key: IdempotencyKey::parse("bench-models-fund")?,
            meta: serde_json::Value::Null,
        })
        .await?;
    Ok(ModelAccounts::new(store, ledger, Metrics::new()))
}

/// Knows every token, holds nothing, bills nothing: the proxy without the
/// ledger.
struct NoopMeter;

#[async_trait]
impl Meter for NoopMeter {
    async fn caller(&self, _token: &str) -> Result<Option<Caller>, Unavailable> {
        Ok(Some(Caller {
            user_id: "bench".into(),
            instance_id: "bench".into(),
        }))
    }

    async fn reserve(
        &self,
        _caller: &Caller,
        _model: &str,
        _amount: MicroUsd,
        request_id: &str,
    ) -> Result<HoldId, Refusal> {
        Ok(HoldId(request_id.to_owned()))
    }

    async fn settle(&self, _hold: HoldId, _usage: Option<&Usage>, _cost: MicroUsd) {}

    async fn release(&self, _hold: HoldId) {}
}
