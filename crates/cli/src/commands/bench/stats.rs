//! Percentiles of sorted latency samples.

use std::time::Duration;

/// The median of sorted samples.
pub fn median(v: &[Duration]) -> Duration {
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The 95th percentile of sorted samples.
pub fn p95(v: &[Duration]) -> Duration {
    v.get((v.len() * 95 / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// The 99th percentile of sorted samples.
pub fn p99(v: &[Duration]) -> Duration {
    v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
