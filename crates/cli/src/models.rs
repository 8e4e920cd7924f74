//! `serve`'s included models: the operator's models file (`--models`), the
//! model proxy's own listener, and the offer every local runtime is given
//! (where the proxy is, the default model, each model's limits and prices;
//! never a provider key). The provider keys named in the file are read
//! here, from the environment or their files, and stay in `serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use clawplane_http::v1::{ModelOffer, OfferedModel};
use clawplane_models::Catalog;

/// The models settings of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ModelsArgs {
    /// The operator's models file (TOML: providers, their keys' sources,
    /// models and prices; see the README). Unset: no models are included
    /// and users bring their own provider keys.
    #[arg(long = "models", env = "CLAWPLANE_MODELS")]
    pub models: Option<PathBuf>,

    /// Where the model proxy listens (the gateways' cells reach it here).
    #[arg(
        long,
        env = "CLAWPLANE_MODELS_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub models_listen: SocketAddr,
}

/// The models `serve` includes, ready to serve.
pub struct Included {
    /// The checked catalog (with the provider keys).
    pub catalog: Catalog,
    /// The proxy's listener.
    pub listener: tokio::net::TcpListener,
    /// The address the gateways use, `host:port`.
    pub address: SocketAddr,
    /// `CLAWPLANE_MODELS_OFFER` of the runtimes.
    pub offer: String,
}

impl ModelsArgs {
    /// Reads and checks the models file (refusing to start with a sentence
    /// that says what is wrong) and binds the proxy's listener; `None`
    /// without a file.
    pub async fn load(&self) -> anyhow::Result<Option<Included>> {
        let Some(path) = &self.models else {
            return Ok(None);
        };
        let catalog = Catalog::load(path, &|name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let listener = tokio::net::TcpListener::bind(self.models_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} for the model proxy: choose another address with --models-listen or CLAWPLANE_MODELS_LISTEN",
                    self.models_listen
                )
            })?;
        let address = listener.local_addr()?;
        let offer = ModelOffer {
            base_url: format!("http://{address}/v1"),
            default: catalog.default_model().id.clone(),
            models: catalog
                .models()
                .iter()
                .map(|m| OfferedModel {
                    id: m.id.clone(),
                    context_window: u64::from(m.context_window),
                    max_output_tokens: u64::from(m.max_output_tokens),
                    input_per_million: micros(m.prices.input_per_million),
                    output_per_million: micros(m.prices.output_per_million),
                    cached_per_million: micros(m.prices.cached_per_million),
                })
                .collect(),
        };
        tracing::info!(
            models = catalog.models().len(),
            default = %offer.default,
            "models are included: every instance's gateway uses the model proxy"
        );
        Ok(Some(Included {
            catalog,
            listener,
            address,
            offer: serde_json::to_string(&offer)?,
        }))
    }
}

fn micros(price: clawplane_domain::MicroUsd) -> u64 {
    u64::try_from(price.micros()).unwrap_or(0)
}
