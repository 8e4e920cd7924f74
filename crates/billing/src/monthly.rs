//! The monthly grant: every user with a live instance receives the configured
//! amount once per calendar month (UTC).
//!
//! The idempotency key is derived from the month and the user, so a second
//! run, a restart, or a second replica running the same job grants nothing
//! twice: the ledger's unique key decides.

use chrono::{DateTime, Datelike, Utc};
use clawplane_domain::{IdempotencyKey, MicroUsd, UserId};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ledger::GrantRequest;
use crate::{BillingError, Ledger};

/// What one run of the monthly grant did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MonthlyGrantReport {
    /// `YYYY-MM`.
    pub month: String,
    /// Users with a live instance.
    pub users: usize,
    /// Grants written by this run.
    pub granted: usize,
    /// Users who already had this month's grant.
    pub already_granted: usize,
    /// Users whose grant failed (logged; retried next run).
    pub failed: usize,
}

/// The idempotency key of `user`'s grant for `month` (`YYYY-MM`). The user id
/// is hashed so that any id, of any length or alphabet, gives a distinct key.
pub fn monthly_key(user: &UserId, month: &str) -> IdempotencyKey {
    IdempotencyKey::internal(&["monthly", month, &user_digest(user)])
}

pub(crate) fn user_digest(user: &UserId) -> String {
    hex::encode(&Sha256::digest(user.as_str().as_bytes())[..16])
}

impl Ledger {
    /// Grants this month's credits to every user with a live instance who has
    /// not had them yet. Zero configured means monthly grants are off.
    pub async fn grant_monthly(
        &self,
        now: DateTime<Utc>,
    ) -> Result<MonthlyGrantReport, BillingError> {
        let month = format!("{:04}-{:02}", now.year(), now.month());
        let mut report = MonthlyGrantReport {
            month: month.clone(),
            ..Default::default()
        };
        let amount = self.config().monthly_grant;
        if amount.micros() <= 0 {
            return Ok(report);
        }
        let users = self.store().users_with_live_instances().await?;
        report.users = users.len();
        for user in users {
            match self.grant_month_to(&user, amount, &month).await {
                Ok(true) => report.granted += 1,
                Ok(false) => report.already_granted += 1,
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "monthly grant failed; retried on the next run");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Grants this month's credits to one user now (a user who is about to
    /// get an instance), unless they already had them. Returns whether a
    /// grant was written.
    pub async fn grant_monthly_to(
        &self,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, BillingError> {
        let amount = self.config().monthly_grant;
        if amount.micros() <= 0 {
            return Ok(false);
        }
        let month = format!("{:04}-{:02}", now.year(), now.month());
        self.grant_month_to(user, amount, &month).await
    }

    async fn grant_month_to(
        &self,
        user: &UserId,
        amount: MicroUsd,
        month: &str,
    ) -> Result<bool, BillingError> {
        let request = GrantRequest {
            user_id: user.clone(),
            amount,
            source: "monthly".to_owned(),
            idempotency_key: monthly_key(user, month),
            meta: serde_json::json!({ "month": month }),
        };
        match self.grant(request).await {
            Ok(b) => Ok(!b.replayed),
            // The amount changed since this month's grant: it was granted.
            Err(BillingError::IdempotencyConflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
