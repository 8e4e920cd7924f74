//! A reserved hold that is finished exactly once: [`Hold::settle`] and
//! [`Hold::release`] consume it, and one dropped unfinished (a panic, a
//! cancelled task) is released in the background, so no path leaves it open.

use std::sync::Arc;

use clawplane_domain::MicroUsd;

use super::meter::{HoldId, Meter};
use crate::cost::Usage;

/// A hold of `amount`, not yet settled or released.
pub(crate) struct Hold {
    meter: Arc<dyn Meter>,
    id: Option<HoldId>,
    amount: MicroUsd,
}

impl Hold {
    pub(crate) fn new(meter: Arc<dyn Meter>, id: HoldId, amount: MicroUsd) -> Self {
        Hold {
            meter,
            id: Some(id),
            amount,
        }
    }

    /// The amount reserved.
    pub(crate) fn amount(&self) -> MicroUsd {
        self.amount
    }

    /// Bills `cost`, capped at the hold.
    pub(crate) async fn settle(mut self, usage: Option<&Usage>, cost: MicroUsd) {
        if let Some(id) = self.id.take() {
            self.meter.settle(id, usage, cost.min(self.amount)).await;
        }
    }

    /// Bills nothing.
    pub(crate) async fn release(mut self) {
        if let Some(id) = self.id.take() {
            self.meter.release(id).await;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            tracing::error!(hold = %id.0, "a model hold was dropped unfinished: releasing it");
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let meter = Arc::clone(&self.meter);
                runtime.spawn(async move { meter.release(id).await });
            }
        }
    }
}
