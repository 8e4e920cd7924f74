//! Billing: prepaid credits in an append-only ledger.
//!
//! - [`ledger`]: the operations (balance, grant, burn, reverse, entries,
//!   summary, verify) with idempotency and overdraft protection, and model
//!   spend as holds settled or released ([`ledger::models`]);
//! - [`monthly`]: the monthly grant to every user with an instance;
//! - [`metering`]: burns for runtime time and model spend, and stopping an
//!   instance whose balance reached the floor, through the [`Fleet`] interface
//!   that the runtime side implements;
//! - [`jobs`]: the background loop that runs the last two.
//!
//! All amounts are integer micro-USD ([`clawplane_domain::MicroUsd`]).

pub mod config;
pub mod error;
pub mod jobs;
pub mod ledger;
pub mod metering;
pub mod monthly;
pub mod usage;

pub use config::BillingConfig;
pub use error::BillingError;
pub use ledger::{
    Balance, BurnRequest, EntryRequest, GrantRequest, Ledger, ModelReservation, ModelUsage,
    RecoveryReport, Summary,
};
pub use metering::{DailyCost, Fleet, Meter, MeterReport};
pub use monthly::MonthlyGrantReport;
pub use usage::{ModelDay, ModelUsageReport};
