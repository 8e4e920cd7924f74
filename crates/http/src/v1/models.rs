//! The models `serve` offers an instance (the operator's models file, as
//! the runtime needs it): where its model proxy is, as reachable from the
//! gateway's cell, the default model, and each model's limits and prices.
//! `serve` hands it to the runtime it starts as JSON in
//! `CLAWPLANE_MODELS_OFFER` (beside the instance's model token, a secret
//! of its own); the runtime writes it into the gateway's config as the
//! `clawplane` provider.

use serde::{Deserialize, Serialize};

/// The provider id in the gateway's config.
pub const PROVIDER: &str = "clawplane";

/// What the instance is offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOffer {
    /// The proxy's OpenAI-compatible base URL (ends in `/v1`).
    pub base_url: String,
    /// The id of the default model (one of `models`).
    pub default: String,
    /// The models.
    pub models: Vec<OfferedModel>,
}

/// One offered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferedModel {
    /// What the gateway asks for.
    pub id: String,
    /// Its context window, tokens.
    pub context_window: u64,
    /// The most output tokens of one answer.
    pub max_output_tokens: u64,
    /// Micro-USD per million input tokens.
    pub input_per_million: u64,
    /// Micro-USD per million output tokens.
    pub output_per_million: u64,
    /// Micro-USD per million cached input tokens.
    pub cached_per_million: u64,
}

impl ModelOffer {
    /// Parses the offer (`CLAWPLANE_MODELS_OFFER`): well-formed, with a
    /// default among its models and an http(s) base URL.
    pub fn parse(json: &str) -> Result<Self, String> {
        let offer: ModelOffer = crate::json::from_str(json)
            .map_err(|e| format!("CLAWPLANE_MODELS_OFFER is not a model offer: {e}"))?;
        if !(offer.base_url.starts_with("http://") || offer.base_url.starts_with("https://")) {
            return Err("CLAWPLANE_MODELS_OFFER's base_url must be an http(s) URL".into());
        }
        if !offer.models.iter().any(|m| m.id == offer.default) {
            return Err("CLAWPLANE_MODELS_OFFER's default is not one of its models".into());
        }
        Ok(offer)
    }
}
