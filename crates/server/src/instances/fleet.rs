//! The billing job's view of the instances: the model spend each gateway
//! reports, and the stop at the floor (a protective backup and the gateway
//! stopped by the runtime, then the instance `stopped` with the reason).

use async_trait::async_trait;
use chrono::NaiveDate;
use clawplane_billing::{DailyCost, Fleet};
use clawplane_domain::{Instance, InstanceStatus, MicroUsd};
use serde_json::Value;

use super::Instances;
use crate::runtime_client::GatewayAction;

/// [`Fleet`] over real runtimes.
pub struct RuntimeFleet {
    instances: Instances,
}

impl RuntimeFleet {
    /// A fleet over the instance service.
    pub fn new(instances: Instances) -> Self {
        RuntimeFleet { instances }
    }
}

#[async_trait]
impl Fleet for RuntimeFleet {
    async fn model_spend(&self, instance: &Instance) -> Result<Vec<DailyCost>, String> {
        let target = self
            .instances
            .target_of(instance)
            .await
            .map_err(|e| e.reason())?;
        let usage = self
            .instances
            .client()
            .usage(&target)
            .await
            .map_err(|e| e.to_string())?;
        daily_costs(&usage.usage)
    }

    async fn stop_for_billing(&self, instance: &Instance, reason: &str) -> Result<(), String> {
        match self.instances.target_of(instance).await {
            Ok(target) => {
                if let Err(e) = self
                    .instances
                    .client()
                    .gateway(&target, GatewayAction::Stop)
                    .await
                {
                    // Recorded as stopped anyway: the next start of the
                    // control plane stops a gateway of a stopped instance.
                    tracing::warn!(instance = %instance.id, error = %e, "the runtime did not stop its gateway");
                }
            }
            Err(e) => {
                tracing::warn!(instance = %instance.id, error = %e, "no runtime to stop")
            }
        }
        self.instances
            .inner
            .store
            .set_instance_status(instance.id, InstanceStatus::Stopped, Some(reason))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The per-day totals of the gateway's `usage.cost` answer (OpenClaw's own
/// JSON, which the runtime passes as it is). An answer still
/// being computed (`cacheStatus.status: refreshing`) is not final and is
/// refused, so metering asks again next time. The gateway reports floats;
/// each is rounded to the micro-USD.
fn daily_costs(usage: &Value) -> Result<Vec<DailyCost>, String> {
    if usage["cacheStatus"]["status"].as_str() == Some("refreshing") {
        return Err("the gateway is still computing its usage".into());
    }
    let daily = usage["daily"]
        .as_array()
        .ok_or("the gateway's usage has no daily list")?;
    daily
        .iter()
        .map(|day| {
            let date = day["date"]
                .as_str()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or("a usage day without a date")?;
            let cost = day["totalCost"].as_f64().unwrap_or(0.0);
            if !cost.is_finite() || !(0.0..1e9).contains(&cost) {
                return Err(format!("an unusable cost for {date}"));
            }
            Ok(DailyCost {
                date,
                total: MicroUsd::from_micros((cost * 1e6).round() as i64),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn daily_costs_are_read_and_rounded_to_the_micro_usd() {
        let usage = json!({"cacheStatus": {"status": "fresh"}, "daily": [
            {"date": "2026-11-23", "totalCost": 0.000054},
            {"date": "2026-11-24", "totalCost": 1.2345678},
            {"date": "2026-11-25"}
        ]});
        let days = daily_costs(&usage).unwrap();
        assert_eq!(days[0].total.micros(), 54);
        assert_eq!(days[1].total.micros(), 1_234_568);
        assert_eq!(days[2].total.micros(), 0);
    }

    #[test]
    fn a_refreshing_or_broken_answer_is_refused() {
        assert!(
            daily_costs(&json!({"cacheStatus": {"status": "refreshing"}, "daily": []})).is_err()
        );
        assert!(daily_costs(&json!({"daily": [{"date": "x", "totalCost": 1}]})).is_err());
        assert!(daily_costs(&json!({"daily": [{"date": "2026-11-24", "totalCost": -1}]})).is_err());
        assert!(daily_costs(&json!({})).is_err());
    }
}
