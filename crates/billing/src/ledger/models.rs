//! Model spend in two phases: reserve a hold before a model request is
//! forwarded, settle it with the upstream's usage or release it.
//!
//! Thin over the store's holds ([`clawplane_store::ledger::holds`], where the
//! rules and their concurrency are explained): this module checks the input
//! and turns store refusals into [`BillingError`]s.
//!
//! - [`Ledger::reserve_model`] reserves the request's largest possible cost;
//!   refused with [`BillingError::InsufficientCredits`] (the proxy's 402)
//!   when `balance - held - amount` would go below the floor. Idempotent by
//!   request id.
//! - [`Ledger::settle_model`] writes the one burn entry of `min(cost, hold)`
//!   with the model, token counts and request id; a retry answers with the
//!   same entry. Settling a released hold bills nothing
//!   ([`Settlement::Released`]): the credits were given back and billing
//!   them now could overdraw.
//! - [`Ledger::release_model`] gives a hold back (the upstream refused the
//!   request, or nothing was used); idempotent.
//! - [`Ledger::recover_holds`] releases open holds older than a bound. The
//!   proxy settles or releases every hold within its own request, so a hold
//!   older than the longest request can only be left by a crash, and then
//!   what the upstream counted is unknown: it is released, never guessed.
//!   Call it at start and now and then with `now - (longest request +
//!   margin)`; with one process only, its own start time is also safe.

use chrono::{DateTime, Utc};
use clawplane_domain::{IdempotencyKeyError, InstanceId, MicroUsd, MoneyError, UserId};
use clawplane_store::{Hold, HoldId, NewHold, Settlement, StoreError, MAX_REQUEST_ID_LEN};

use super::{check_amount, Ledger};
use crate::BillingError;

/// Longest model name accepted (it is stored in the hold and the entry's meta).
pub const MAX_MODEL_LEN: usize = 200;
/// Holds released per page by [`Ledger::recover_holds`].
const RECOVERY_PAGE: u32 = 500;

/// A model request to reserve credits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelReservation {
    /// Whose credits.
    pub user_id: UserId,
    /// The instance making the request.
    pub instance_id: InstanceId,
    /// The model asked for.
    pub model: String,
    /// The request's largest possible cost (positive).
    pub amount: MicroUsd,
    /// The request's id: 1-184 printable ASCII characters without spaces,
    /// unique per request; a retry with it gets the same hold.
    pub request_id: String,
}

/// What the upstream reported for a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelUsage {
    /// Prompt tokens (cached ones included, as OpenAI counts them).
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: u64,
    /// Their cost at the configured prices (zero or more); billed up to the hold.
    pub cost: MicroUsd,
}

/// What [`Ledger::recover_holds`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Open holds released.
    pub released: usize,
}

impl Ledger {
    /// Reserves credits for one model request; see the module docs.
    pub async fn reserve_model(&self, req: &ModelReservation) -> Result<Hold, BillingError> {
        let amount = check_amount(req.amount)?;
        check_request_id(&req.request_id)?;
        check_model(&req.model)?;
        let new = NewHold {
            user_id: req.user_id.clone(),
            instance_id: req.instance_id,
            model: req.model.clone(),
            amount,
            request_id: req.request_id.clone(),
        };
        match self.store.reserve_hold(&new, self.config.floor).await {
            Ok(hold) => Ok(hold),
            Err(StoreError::InsufficientCredits { balance }) => {
                Err(BillingError::InsufficientCredits {
                    balance,
                    amount,
                    floor: self.config.floor,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Settles a hold with the upstream's usage: one burn of
    /// `min(usage.cost, hold)`; see the module docs. An unknown hold is
    /// [`BillingError::EntryNotFound`].
    pub async fn settle_model(
        &self,
        hold: &HoldId,
        usage: &ModelUsage,
    ) -> Result<Settlement, BillingError> {
        if usage.cost < MicroUsd::ZERO {
            return Err(MoneyError::NotPositive("cost").into());
        }
        let mut meta = serde_json::Map::new();
        meta.insert("input_tokens".into(), usage.input_tokens.into());
        meta.insert("output_tokens".into(), usage.output_tokens.into());
        meta.insert("cached_tokens".into(), usage.cached_tokens.into());
        let settled = self.store.settle_hold(hold, usage.cost, meta).await?;
        if let (Settlement::Settled { hold, .. }, Some(cache)) = (&settled, &self.summaries) {
            cache.invalidate(&hold.user_id).await;
        }
        Ok(settled)
    }

    /// Releases a hold, billing nothing; idempotent. An unknown hold is
    /// [`BillingError::EntryNotFound`].
    pub async fn release_model(&self, hold: &HoldId) -> Result<Hold, BillingError> {
        Ok(self.store.release_hold(hold).await?)
    }

    /// Releases every open hold reserved before `older_than`; see the module
    /// docs for the bound to pass.
    pub async fn recover_holds(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<RecoveryReport, BillingError> {
        let mut report = RecoveryReport::default();
        loop {
            let page = self
                .store
                .open_holds(Some(older_than), RECOVERY_PAGE)
                .await?;
            for hold in &page {
                self.store.release_hold(&hold.id).await?;
                report.released += 1;
                tracing::warn!(hold = %hold.id, request_id = %hold.request_id, user = %hold.user_id,
                    model = %hold.model, "released a model hold left open (a crash mid-request): nothing billed");
            }
            if page.len() < RECOVERY_PAGE as usize {
                return Ok(report);
            }
        }
    }

    /// The balance less what open holds reserve (O(1)).
    pub async fn available_balance(&self, user: &UserId) -> Result<MicroUsd, BillingError> {
        Ok(self.store.available_balance(user).await?)
    }
}

fn check_request_id(id: &str) -> Result<(), BillingError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(IdempotencyKeyError::Invalid.into())
    }
}

fn check_model(model: &str) -> Result<(), BillingError> {
    let ok = !model.is_empty()
        && model.len() <= MAX_MODEL_LEN
        && model.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        // The model name is part of the settling entry's meta.
        Err(BillingError::InvalidMeta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_and_models_are_checked() {
        assert!(check_request_id("chatcmpl-1:abc").is_ok());
        assert!(check_request_id("").is_err());
        assert!(check_request_id("a b").is_err());
        assert!(check_request_id(&"x".repeat(MAX_REQUEST_ID_LEN + 1)).is_err());
        assert!(check_model("gpt-4o-mini").is_ok());
        assert!(check_model("").is_err());
        assert!(check_model("a\nb").is_err());
    }
}
