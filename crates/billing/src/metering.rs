//! Usage metering: burns for runtime time and for model spend, and stopping
//! instances whose balance reached the floor.
//!
//! - Runtime time is metered in fixed intervals of wall-clock time. The burn
//!   for interval `k` of an instance has the key `(instance, k)`, so it happens
//!   exactly once however often the job runs, restarts or is replicated. The
//!   price of interval `k` is `floor(p·(k+1)·len/3600) - floor(p·k·len/3600)`:
//!   integer, and over any run of intervals the sum is exact to the micro-USD.
//! - Model spend is what the gateway reports per UTC day (`usage.cost`). A
//!   cursor per instance and day records how much has been billed; each run
//!   burns the increase, moving the cursor in the same transaction as the burn.
//! - Usage that already happened is recorded whole, even below the floor.
//!   Then, when a balance is at or below the floor, the user's running
//!   instance is stopped through [`Fleet::stop_for_billing`] with the reason.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use clawplane_domain::{IdempotencyKey, Instance, InstanceStatus, MicroUsd};
use clawplane_store::CursorAdvance;
use serde::Serialize;

use crate::ledger::BurnRequest;
use crate::{BillingError, Ledger};

/// One day of model spend as the gateway reports it (cumulative for the day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCost {
    /// The UTC day.
    pub date: NaiveDate,
    /// Total cost of that day so far.
    pub total: MicroUsd,
}

/// What metering needs from the runtime side. The control plane implements it
/// over real runtimes; tests use an in-process implementation.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// The model spend the instance's gateway reports, per day.
    async fn model_spend(&self, instance: &Instance) -> Result<Vec<DailyCost>, String>;

    /// Stops the instance because its balance reached the floor: a protective
    /// backup, the gateway stopped, and the instance marked `stopped` with `reason`.
    async fn stop_for_billing(&self, instance: &Instance, reason: &str) -> Result<(), String>;
}

/// What one metering run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MeterReport {
    /// Ready instances looked at.
    pub instances: usize,
    /// Runtime-time burns written now.
    pub runtime_burns: usize,
    /// Model-spend burns written now.
    pub model_burns: usize,
    /// Instances stopped at the floor.
    pub stopped: usize,
    /// Failures (logged; retried next run).
    pub errors: usize,
}

/// The metering job.
#[derive(Clone)]
pub struct Meter {
    ledger: Ledger,
    fleet: Arc<dyn Fleet>,
}

impl Meter {
    /// A meter over `ledger` that reads and stops instances through `fleet`.
    pub fn new(ledger: Ledger, fleet: Arc<dyn Fleet>) -> Self {
        Meter { ledger, fleet }
    }

    /// Whether anything is billed at all; when nothing is, nothing is stopped.
    pub fn is_active(&self) -> bool {
        let c = self.ledger.config();
        c.instance_hour_price > MicroUsd::ZERO || c.meter_model_spend
    }

    /// One metering run at `now`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<MeterReport, BillingError> {
        let mut report = MeterReport::default();
        if !self.is_active() {
            return Ok(report);
        }
        let instances = self
            .ledger
            .store()
            .instances_in_status(InstanceStatus::Ready, None, 100_000)
            .await?;
        report.instances = instances.len();
        for instance in instances {
            if let Err(e) = self.meter_instance(&instance, now, &mut report).await {
                tracing::warn!(instance = %instance.id, error = %e, "metering failed; retried on the next run");
                report.errors += 1;
            }
        }
        Ok(report)
    }

    async fn meter_instance(
        &self,
        instance: &Instance,
        now: DateTime<Utc>,
        report: &mut MeterReport,
    ) -> Result<(), BillingError> {
        if self.burn_runtime_interval(instance, now).await? {
            report.runtime_burns += 1;
        }
        if self.ledger.config().meter_model_spend {
            report.model_burns += self.burn_model_spend(instance).await?;
        }
        let floor = self.ledger.config().floor;
        let balance = self.ledger.store().balance(&instance.user_id).await?;
        if balance <= floor {
            let reason = format!(
                "Stopped because the credit balance ({} USD) reached the floor ({} USD). Add credits, then start the instance again.",
                balance.format_cents(),
                floor.format_cents()
            );
            match self.fleet.stop_for_billing(instance, &reason).await {
                Ok(()) => report.stopped += 1,
                Err(e) => {
                    tracing::warn!(instance = %instance.id, error = %e, "could not stop an instance at the floor");
                    report.errors += 1;
                }
            }
        }
        Ok(())
    }

    /// Burns the last completed interval if the instance was ready during it.
    async fn burn_runtime_interval(
        &self,
        instance: &Instance,
        now: DateTime<Utc>,
    ) -> Result<bool, BillingError> {
        let config = self.ledger.config();
        let price = config.instance_hour_price;
        let len = config.metering_interval.as_secs().max(1) as i64;
        if price <= MicroUsd::ZERO {
            return Ok(false);
        }
        let k = now.timestamp().div_euclid(len) - 1;
        let interval_end = (k + 1) * len;
        // Only intervals that ended after the instance became ready.
        let ready_since = instance
            .last_ready_at
            .map(|t| t.timestamp())
            .unwrap_or(i64::MAX);
        if k < 0 || interval_end <= ready_since {
            return Ok(false);
        }
        let amount = interval_price(price, len, k);
        if amount <= MicroUsd::ZERO {
            return Ok(false);
        }
        let request = BurnRequest {
            user_id: instance.user_id.clone(),
            amount,
            source: "runtime_time".to_owned(),
            idempotency_key: IdempotencyKey::internal(&[
                "runtime",
                &instance.id.to_string(),
                &len.to_string(),
                &k.to_string(),
            ]),
            meta: serde_json::json!({
                "instance_id": instance.id.to_string(),
                "interval_start": k * len,
                "interval_seconds": len,
            }),
        };
        let balance = self.ledger.burn_with(request, None, None).await?;
        Ok(!balance.replayed)
    }

    /// Burns the increase of each day's reported model spend since the last run.
    async fn burn_model_spend(&self, instance: &Instance) -> Result<usize, BillingError> {
        let days = match self.fleet.model_spend(instance).await {
            Ok(days) => days,
            Err(e) => {
                tracing::info!(instance = %instance.id, error = %e, "model spend unavailable; retried on the next run");
                return Ok(0);
            }
        };
        let markup = self.ledger.config().model_markup_bps;
        let mut burns = 0;
        for day in days {
            let dimension = format!("model:{}", day.date);
            let billed = self
                .ledger
                .store()
                .metering_cursor(instance.id, &dimension)
                .await?;
            if day.total <= billed {
                continue;
            }
            let amount = with_markup(day.total, markup).checked_sub(with_markup(billed, markup))?;
            if amount <= MicroUsd::ZERO {
                continue;
            }
            let request = BurnRequest {
                user_id: instance.user_id.clone(),
                amount,
                source: "model_spend".to_owned(),
                idempotency_key: IdempotencyKey::internal(&[
                    "model",
                    &instance.id.to_string(),
                    &day.date.to_string(),
                    &billed.micros().to_string(),
                    &day.total.micros().to_string(),
                ]),
                meta: serde_json::json!({
                    "instance_id": instance.id.to_string(),
                    "date": day.date.to_string(),
                    "reported_micro_usd": day.total.micros(),
                    "markup_bps": markup,
                }),
            };
            let cursor = CursorAdvance {
                instance_id: instance.id,
                dimension,
                from: billed,
                to: day.total,
            };
            match self.ledger.burn_with(request, None, Some(cursor)).await {
                Ok(b) if !b.replayed => burns += 1,
                Ok(_) => {}
                // Another replica advanced the cursor first: it billed this.
                Err(BillingError::Store(clawplane_store::StoreError::Contended)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(burns)
    }
}

/// The price of interval `k` of `len` seconds at `price` per hour, such that
/// the prices of intervals `0..n` add up to `floor(price·n·len/3600)` exactly.
pub fn interval_price(price: MicroUsd, len: i64, k: i64) -> MicroUsd {
    let p = i128::from(price.micros());
    let len = i128::from(len);
    let k = i128::from(k);
    let upto = |n: i128| p * n * len / 3600;
    let amount = upto(k + 1) - upto(k);
    MicroUsd::from_micros(i64::try_from(amount).unwrap_or(i64::MAX))
}

/// `amount · (10000 + bps) / 10000`, rounded down, in integers.
pub fn with_markup(amount: MicroUsd, bps: u32) -> MicroUsd {
    let v = i128::from(amount.micros()) * (10_000 + i128::from(bps)) / 10_000;
    MicroUsd::from_micros(i64::try_from(v).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_prices_add_up_exactly() {
        // 0.01 USD per hour in 60 s intervals: 166.67 micro-USD each.
        let price = MicroUsd::from_micros(10_000);
        let total: i64 = (0..60).map(|k| interval_price(price, 60, k).micros()).sum();
        assert_eq!(total, 10_000, "one hour costs exactly the hourly price");
        let total: i64 = (0..7).map(|k| interval_price(price, 60, k).micros()).sum();
        assert_eq!(total, 10_000 * 7 * 60 / 3600);
        assert_eq!(
            interval_price(MicroUsd::from_usd(36), 100, 5).micros(),
            1_000_000
        );
    }

    #[test]
    fn markup_is_integer_and_cumulative() {
        assert_eq!(
            with_markup(MicroUsd::from_micros(1_000_000), 2_500).micros(),
            1_250_000
        );
        assert_eq!(with_markup(MicroUsd::from_micros(3), 5_000).micros(), 4);
        assert_eq!(with_markup(MicroUsd::from_micros(7), 0).micros(), 7);
    }
}
