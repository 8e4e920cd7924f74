//! Model spend as people read it: what the model proxy billed a user, by
//! day (UTC) and model, from the ledger's `model` entries (the proxy writes
//! one per request, with the model and its token counts in the entry's
//! meta). The API's `GET /api/openclaw/billing/usage` and the console's
//! Billing page show the same numbers.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clawplane_domain::{MicroUsd, UserId};
use clawplane_store::MODEL_SOURCE;
use serde::Serialize;

use crate::{BillingError, Ledger};

/// The longest range one report covers.
pub const MAX_DAYS: i64 = 92;
/// The most entries one report reads; past it the report says `truncated`.
pub const MAX_ENTRIES: u32 = 20_000;

/// One model's spend on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// The catalog's model id.
    pub model: String,
    /// Requests billed.
    pub requests: u64,
    /// Input tokens (cached ones included).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cached input tokens.
    pub cached_tokens: u64,
    /// What was billed, exact.
    pub cost_micro_usd: i64,
    /// What was billed, rounded to cents.
    pub cost_usd: serde_json::Value,
}

/// A user's model spend over a range of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelUsageReport {
    /// The first day, inclusive.
    pub from: String,
    /// The last day, inclusive.
    pub to: String,
    /// By day, then model, oldest first.
    pub days: Vec<ModelDay>,
    /// Everything billed in the range, exact.
    pub total_micro_usd: i64,
    /// Everything billed in the range, rounded to cents.
    pub total_usd: serde_json::Value,
    /// More entries than one report reads: the numbers are a lower bound.
    pub truncated: bool,
}

impl Ledger {
    /// The user's model spend from `from` to `to`, both days inclusive
    /// (UTC); at most [`MAX_DAYS`] days.
    pub async fn model_usage(
        &self,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ModelUsageReport, BillingError> {
        if to < from || (to - from).num_days() >= MAX_DAYS {
            return Err(BillingError::InvalidMeta);
        }
        let start = midnight(from);
        let end = midnight(to) + Duration::days(1);
        let entries = self
            .store()
            .entries_from_source(user, MODEL_SOURCE, start, end, MAX_ENTRIES + 1)
            .await?;
        let truncated = entries.len() > MAX_ENTRIES as usize;
        let mut by: BTreeMap<(String, String), ModelDay> = BTreeMap::new();
        let mut total: i64 = 0;
        for entry in entries.iter().take(MAX_ENTRIES as usize) {
            let day = entry.created_at.format("%Y-%m-%d").to_string();
            let model = entry.meta["model"].as_str().unwrap_or("unknown").to_owned();
            let cost = entry.amount.micros().saturating_neg();
            total = total.saturating_add(cost);
            let count = |key: &str| entry.meta[key].as_u64().unwrap_or(0);
            let row = by
                .entry((day.clone(), model.clone()))
                .or_insert_with(|| ModelDay {
                    day,
                    model,
                    requests: 0,
                    input_tokens: 0,
                    output_tokens: 0,
                    cached_tokens: 0,
                    cost_micro_usd: 0,
                    cost_usd: serde_json::Value::Null,
                });
            row.requests += 1;
            row.input_tokens = row.input_tokens.saturating_add(count("input_tokens"));
            row.output_tokens = row.output_tokens.saturating_add(count("output_tokens"));
            row.cached_tokens = row.cached_tokens.saturating_add(count("cached_tokens"));
            row.cost_micro_usd = row.cost_micro_usd.saturating_add(cost);
        }
        let days = by
            .into_values()
            .map(|mut d| {
                d.cost_usd = MicroUsd::from_micros(d.cost_micro_usd).to_rounded_usd_json();
                d
            })
            .collect();
        Ok(ModelUsageReport {
            from: from.to_string(),
            to: to.to_string(),
            days,
            total_micro_usd: total,
            total_usd: MicroUsd::from_micros(total).to_rounded_usd_json(),
            truncated,
        })
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(Utc::now)
}
