//! Billing settings, with the defaults a fresh install runs on.

use std::time::Duration;

use clawplane_domain::MicroUsd;

/// How credits are granted and burned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingConfig {
    /// A burn may not take a balance below this (default 0).
    pub floor: MicroUsd,
    /// Granted to every user with an instance once per calendar month (UTC);
    /// zero turns monthly grants off. Default 10.00 USD.
    pub monthly_grant: MicroUsd,
    /// Price of one instance-hour of runtime time; zero turns it off.
    pub instance_hour_price: MicroUsd,
    /// Length of one metering interval (default 60 s).
    pub metering_interval: Duration,
    /// Whether the gateway's reported model spend is billed (the operator
    /// supplies the provider keys).
    pub meter_model_spend: bool,
    /// Markup on model spend, in basis points (1% = 100).
    pub model_markup_bps: u32,
    /// How long a user's summary may be answered from memory (default 1 s;
    /// zero turns the cache off). Writes of this process clear it at once.
    pub summary_cache_ttl: Duration,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            floor: MicroUsd::ZERO,
            monthly_grant: MicroUsd::from_usd(10),
            instance_hour_price: MicroUsd::ZERO,
            metering_interval: Duration::from_secs(60),
            meter_model_spend: false,
            model_markup_bps: 0,
            summary_cache_ttl: Duration::from_secs(1),
        }
    }
}
