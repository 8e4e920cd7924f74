//! What billing may do to instances from the control plane.
//!
//! Until the runtime client exists (the control-plane issue), there is no
//! runtime to stop or to ask for model spend, so [`StoreOnlyFleet`] records
//! a billing stop in the store (status `stopped` with its reason) and reports
//! no model spend. The runtime-backed fleet replaces it behind the same trait.

use async_trait::async_trait;
use clawplane_billing::{DailyCost, Fleet};
use clawplane_domain::{Instance, InstanceStatus};
use clawplane_store::Store;

/// A fleet that can only record status changes in the store.
pub struct StoreOnlyFleet {
    store: Store,
}

impl StoreOnlyFleet {
    /// A fleet over `store`.
    pub fn new(store: Store) -> Self {
        StoreOnlyFleet { store }
    }
}

#[async_trait]
impl Fleet for StoreOnlyFleet {
    async fn model_spend(&self, _instance: &Instance) -> Result<Vec<DailyCost>, String> {
        Ok(Vec::new())
    }

    async fn stop_for_billing(&self, instance: &Instance, reason: &str) -> Result<(), String> {
        self.store
            .set_instance_status(instance.id, InstanceStatus::Stopped, Some(reason))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
