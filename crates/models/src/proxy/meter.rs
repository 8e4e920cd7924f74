//! The seam between the proxy and whoever keeps accounts: who a model token
//! belongs to, and the two-phase hold (reserve, then settle or release).
//! The proxy calls these; `serve` implements them over its store and ledger.

use async_trait::async_trait;
use clawplane_domain::MicroUsd;

use crate::cost::Usage;

/// Whom a request is for, found from its model token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The account that pays.
    pub user_id: String,
    /// The instance whose token it is (rate limits are kept per instance).
    pub instance_id: String,
}

/// A hold reserved by [`Meter::reserve`], named however the meter likes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HoldId(pub String);

/// Why a hold could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The balance does not cover the hold: 402 `insufficient_quota`.
    NoCredits,
    /// The accounts cannot be reached now: 503.
    Unavailable,
}

/// The accounts cannot be reached now (a token could not be checked): 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// What went wrong upstream, for metrics ([`Meter::upstream_failed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The provider answered 429.
    RateLimited,
    /// The provider answered another 4xx.
    Refused,
    /// The provider answered 5xx.
    ServerError,
    /// No answer (or no next chunk) in time.
    Timeout,
    /// The connection failed or broke, or the answer was not readable.
    Broken,
}

impl UpstreamFailure {
    /// A short label for metrics: `rate_limited`, `refused`, `server_error`,
    /// `timeout`, `broken`.
    pub fn label(self) -> &'static str {
        match self {
            UpstreamFailure::RateLimited => "rate_limited",
            UpstreamFailure::Refused => "refused",
            UpstreamFailure::ServerError => "server_error",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Broken => "broken",
        }
    }
}

/// Authentication and billing for the proxy. Every hold returned by
/// [`reserve`](Meter::reserve) gets exactly one [`settle`](Meter::settle)
/// or [`release`](Meter::release) from the proxy, also when the client goes
/// away (the exchange runs in a task of its own).
#[async_trait]
pub trait Meter: Send + Sync {
    /// The caller a model token belongs to; `Ok(None)` for a token that is
    /// nobody's (401).
    async fn caller(&self, token: &str) -> Result<Option<Caller>, Unavailable>;

    /// Reserves `amount` (the request's largest possible cost) against the
    /// caller's balance for one request to `model` (the catalog's id).
    async fn reserve(
        &self,
        caller: &Caller,
        model: &str,
        amount: MicroUsd,
        request_id: &str,
    ) -> Result<HoldId, Refusal>;

    /// Bills `cost` (never more than the hold) and frees the rest. `usage`
    /// is what the upstream reported, or `None` when it reported nothing
    /// and the whole hold is billed.
    async fn settle(&self, hold: HoldId, usage: Option<&Usage>, cost: MicroUsd);

    /// Frees the hold; nothing is billed.
    async fn release(&self, hold: HoldId);

    /// Told of every upstream failure (for metrics); nothing by default.
    fn upstream_failed(&self, _model: &str, _failure: UpstreamFailure) {}
}
