//! The accounts behind the metered model proxy (`clawplane_models`): a
//! model token's digest finds its live instance, and so the user who pays;
//! each request's largest possible cost is held in the ledger, then
//! settled at what the upstream counted, or released. Nothing here takes a
//! number from the cell: the token is looked up by digest, the cost is the
//! upstream's usage at the operator's prices, and the hold bounds it.
//!
//! A settle or release that cannot be written (the database is down)
//! leaves the hold open: [`sweep`] releases it once it is older than the
//! longest request (and the next start's recovery at once), so such a
//! request is never billed twice, at worst not at all.

use async_trait::async_trait;
use clawplane_billing::{Ledger, ModelReservation, ModelUsage};
use clawplane_domain::{InstanceId, MicroUsd, UserId};
use clawplane_models::cost::Usage;
use clawplane_models::proxy::{Caller, HoldId, Meter, Refusal, Unavailable, UpstreamFailure};
use clawplane_store::{HoldState, Store, StoreError};

use crate::metrics::Metrics;

pub mod metrics;
pub mod sweep;

/// The proxy's [`Meter`] over the store and the ledger.
pub struct ModelAccounts {
    store: Store,
    ledger: Ledger,
    metrics: Metrics,
}

impl ModelAccounts {
    /// Accounts over these parts.
    pub fn new(store: Store, ledger: Ledger, metrics: Metrics) -> Self {
        ModelAccounts {
            store,
            ledger,
            metrics,
        }
    }

    fn hold_id(hold: &HoldId) -> Option<clawplane_store::HoldId> {
        clawplane_store::HoldId::parse(&hold.0)
    }
}

#[async_trait]
impl Meter for ModelAccounts {
    async fn caller(&self, token: &str) -> Result<Option<Caller>, Unavailable> {
        let digest = clawplane_secrets::token_digest(token);
        match self
            .store
            .live_instance_by_model_token_digest(&digest)
            .await
        {
            Ok(found) => Ok(found.map(|instance| Caller {
                user_id: instance.user_id.to_string(),
                instance_id: instance.id.to_string(),
            })),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up a model token");
                Err(Unavailable)
            }
        }
    }

    async fn reserve(
        &self,
        caller: &Caller,
        model: &str,
        amount: MicroUsd,
        request_id: &str,
    ) -> Result<HoldId, Refusal> {
        let (Ok(user_id), Ok(instance_id)) = (
            UserId::parse(&caller.user_id),
            InstanceId::parse(&caller.instance_id),
        ) else {
            return Err(Refusal::Unavailable);
        };
        let request = ModelReservation {
            user_id,
            instance_id,
            model: model.to_owned(),
            amount,
            request_id: request_id.to_owned(),
        };
        match self.ledger.reserve_model(&request).await {
            Ok(hold) if hold.state == HoldState::Open => {
                self.metrics.models().hold("reserved", model);
                Ok(HoldId(hold.id.to_string()))
            }
            // The request id was used before: it was answered already.
            Ok(_) => Err(Refusal::Unavailable),
            Err(clawplane_billing::BillingError::InsufficientCredits { .. })
            | Err(clawplane_billing::BillingError::Store(StoreError::InsufficientCredits {
                ..
            })) => {
                self.metrics.models().hold("refused", model);
                Err(Refusal::NoCredits)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reserve a model hold");
                Err(Refusal::Unavailable)
            }
        }
    }

    async fn settle(&self, hold: HoldId, usage: Option<&Usage>, cost: MicroUsd) {
        let Some(id) = Self::hold_id(&hold) else {
            return tracing::error!(hold = %hold.0, "a hold id the ledger did not give");
        };
        let usage = ModelUsage {
            input_tokens: usage.map_or(0, |u| u.prompt_tokens),
            output_tokens: usage.map_or(0, |u| u.completion_tokens),
            cached_tokens: usage.map_or(0, |u| u.cached_tokens),
            cost,
        };
        match self.ledger.settle_model(&id, &usage).await {
            Ok(settlement) => {
                if let Some(entry) = settlement.entry() {
                    let model = settlement.hold().model.clone();
                    self.metrics.models().settled(
                        &model,
                        &usage,
                        entry.amount.micros().unsigned_abs(),
                    );
                }
            }
            Err(e) => {
                tracing::error!(hold = %hold.0, error = %e, "a model hold could not be settled; the hold sweep releases it")
            }
        }
    }

    async fn release(&self, hold: HoldId) {
        let Some(id) = Self::hold_id(&hold) else {
            return tracing::error!(hold = %hold.0, "a hold id the ledger did not give");
        };
        match self.ledger.release_model(&id).await {
            Ok(h) => self.metrics.models().hold("released", &h.model),
            Err(e) => {
                tracing::error!(hold = %hold.0, error = %e, "a model hold could not be released; the hold sweep releases it")
            }
        }
    }

    fn upstream_failed(&self, model: &str, failure: UpstreamFailure) {
        self.metrics.models().upstream_error(model, failure.label());
    }
}
