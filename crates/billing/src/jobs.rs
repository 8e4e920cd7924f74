//! The billing background job: monthly grants, then metering, every
//! metering interval, until shutdown. It stops at a safe point: between two
//! runs, never inside a ledger transaction.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::{Ledger, Meter};

/// Runs monthly grants and metering every `interval` until `shutdown` fires.
pub async fn run(ledger: Ledger, meter: Meter, interval: Duration, shutdown: CancellationToken) {
    tracing::info!(interval_secs = interval.as_secs(), "billing job started");
    loop {
        let now = Utc::now();
        match ledger.grant_monthly(now).await {
            Ok(r) if r.granted > 0 => {
                tracing::info!(month = %r.month, granted = r.granted, "monthly credits granted")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "monthly grant run failed"),
        }
        if shutdown.is_cancelled() {
            break;
        }
        match meter.tick(now).await {
            Ok(r) if r.stopped > 0 || r.errors > 0 => tracing::info!(?r, "metering run"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "metering run failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    tracing::info!("billing job stopped");
}
