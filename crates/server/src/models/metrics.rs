//! The model proxy's numbers in `/metrics`, by model (the operator's
//! catalog ids, a short closed list, so labels stay few):
//! - `clawplane_model_tokens_total{model,kind}` (`input`, `output`, `cached`);
//! - `clawplane_model_cost_micro_usd_total{model}`: what was billed;
//! - `clawplane_model_holds_total{model,outcome}` (`reserved`, `refused`,
//!   `settled`, `released`);
//! - `clawplane_model_upstream_errors_total{model,kind}` (`rate_limited`,
//!   `refused`, `server_error`, `timeout`, `broken`).

use clawplane_billing::ModelUsage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HoldLabels {
    model: String,
    outcome: &'static str,
}

/// The model proxy's counters.
#[derive(Default)]
pub struct ModelMetrics {
    tokens: Family<KindLabels, Counter>,
    cost: Family<ModelLabels, Counter>,
    holds: Family<HoldLabels, Counter>,
    upstream: Family<KindLabels, Counter>,
}

impl ModelMetrics {
    /// Registers every counter.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "clawplane_model_tokens",
            "Model tokens billed, by model and kind",
            self.tokens.clone(),
        );
        registry.register(
            "clawplane_model_cost_micro_usd",
            "Model spend billed, micro-USD, by model",
            self.cost.clone(),
        );
        registry.register(
            "clawplane_model_holds",
            "Model credit holds by model and outcome",
            self.holds.clone(),
        );
        registry.register(
            "clawplane_model_upstream_errors",
            "Upstream model provider failures by model and kind",
            self.upstream.clone(),
        );
    }

    /// A hold reserved, refused or released.
    pub fn hold(&self, outcome: &'static str, model: &str) {
        self.holds
            .get_or_create(&HoldLabels {
                model: model.to_owned(),
                outcome,
            })
            .inc();
    }

    /// A hold settled: its tokens and what was billed.
    pub fn settled(&self, model: &str, usage: &ModelUsage, billed_micro_usd: u64) {
        self.hold("settled", model);
        for (kind, n) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cached", usage.cached_tokens),
        ] {
            self.tokens
                .get_or_create(&KindLabels {
                    model: model.to_owned(),
                    kind,
                })
                .inc_by(n);
        }
        self.cost
            .get_or_create(&ModelLabels {
                model: model.to_owned(),
            })
            .inc_by(billed_micro_usd);
    }

    /// An upstream failure.
    pub fn upstream_error(&self, model: &str, kind: &'static str) {
        self.upstream
            .get_or_create(&KindLabels {
                model: model.to_owned(),
                kind,
            })
            .inc();
    }
}
