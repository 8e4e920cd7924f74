//! The models clawplane sells by credit: the operator's catalog of
//! providers and models ([`catalog`]), exact integer costs ([`cost`]), and
//! the metered OpenAI-compatible proxy ([`proxy`]). It knows nothing of the
//! store, the ledger or `serve`: accounts are behind [`proxy::Meter`].
//!
//! # The models file
//!
//! ```toml
//! # The model an agent uses when it has not chosen one: a model id below.
//! default = "gpt-mini"
//!
//! [[providers]]
//! id = "openai"                                  # unique
//! base_url = "https://api.openai.com/v1"         # OpenAI-compatible; requests go to <base_url>/chat/completions
//! api_key_env = "OPENAI_API_KEY"                 # or: api_key_file = "/etc/clawplane/openai.key"
//!                                                # (exactly one; relative to this file's directory)
//!                                                # `api_key = "..."` is refused: never the key itself
//!
//! [[providers.models]]
//! id = "gpt-mini"                # what clients send as `model`; unique across providers
//! upstream = "gpt-4o-mini"       # the provider's name for it (default: id)
//! input_per_million = 150000     # micro-USD per million prompt tokens ($0.15)
//! output_per_million = 600000    # micro-USD per million completion tokens
//! cached_per_million = 75000     # micro-USD per million prompt tokens served from the provider's cache
//! max_output_tokens = 16384      # most completion tokens per request (and the default)
//! context_window = 128000        # most prompt tokens
//! ```
//!
//! Every field shown is required but `upstream`; unknown fields are
//! refused; prices and limits must be greater than zero (and at most
//! [`catalog::MAX_PRICE_PER_MILLION`] and [`catalog::MAX_TOKEN_LIMIT`]).
//!
//! ```
//! # use clawplane_models::Catalog;
//! let text = r#"
//! default = "gpt-mini"
//! [[providers]]
//! id = "openai"
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"
//! [[providers.models]]
//! id = "gpt-mini"
//! upstream = "gpt-4o-mini"
//! input_per_million = 150000
//! output_per_million = 600000
//! cached_per_million = 75000
//! max_output_tokens = 16384
//! context_window = 128000
//! "#;
//! let env = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-test".to_string());
//! let catalog = Catalog::parse(text, "models.toml".as_ref(), &env).unwrap();
//! assert_eq!(catalog.default_model().upstream, "gpt-4o-mini");
//! ```

pub mod catalog;
pub mod cost;
pub mod proxy;

pub use catalog::{Catalog, CatalogError, Model, Prices, Provider};
pub use cost::Usage;
pub use proxy::{
    router, Caller, HoldId, Meter, Proxy, ProxyError, ProxySettings, Refusal, Unavailable,
    UpstreamFailure,
};
