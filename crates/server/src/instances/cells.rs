//! The cells of running instances as the operator's metrics show them: each
//! ready instance's runtime is asked for its cell's readings and limits
//! (bounded: at most [`MAX_READ`] instances, a few at a time, each with the
//! runtime client's quick timeout; a runtime that does not answer is left
//! out of that scrape).

use clawplane_domain::InstanceStatus;
use futures_util::StreamExt;
use serde_json::Value;

use super::Instances;

/// Most instances read for one scrape.
pub const MAX_READ: u32 = 1000;

/// One instance's cell, as its runtime reported it.
#[derive(Debug, Clone)]
pub struct CellReading {
    /// The instance's runtime name (or id).
    pub instance: String,
    /// The `cell` object of the runtime's `/v1/status`.
    pub cell: Value,
}

impl Instances {
    /// The cells of the `ready` instances.
    pub async fn cell_readings(&self) -> Vec<CellReading> {
        let Ok(ready) = self
            .inner
            .store
            .instances_in_status(InstanceStatus::Ready, None, MAX_READ)
            .await
        else {
            return Vec::new();
        };
        futures_util::stream::iter(ready)
            .map(|instance| async move {
                let target = self.target_of(&instance).await.ok()?;
                let status = self.client().status(&target).await.ok()?;
                Some(CellReading {
                    instance: instance
                        .runtime_name
                        .clone()
                        .unwrap_or_else(|| instance.id.to_string()),
                    cell: serde_json::to_value(status.cell).ok()?,
                })
            })
            .buffer_unordered(16)
            .filter_map(|r| async move { r })
            .collect()
            .await
    }
}
