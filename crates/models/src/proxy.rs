//! The metered model proxy: an OpenAI-compatible API (`GET /v1/models`,
//! `POST /v1/chat/completions`, streamed and not) that authenticates a
//! model token, reserves the request's largest cost as a hold, forwards it
//! to the operator's provider with the operator's key, relays the answer as
//! it arrives, and settles the hold with the cost of the usage the provider
//! reported (never more than the hold).
//!
//! Authentication and accounts are the [`Meter`]'s; the proxy knows nothing
//! of the store. Each request has a uuid request id (`x-request-id` on the
//! answer, passed to [`Meter::reserve`]). Once a hold is reserved the
//! exchange with the provider runs in a task of its own, so a client that
//! goes away does not cut it short: a stream keeps being read (at most
//! [`ProxySettings::drain_timeout`]) to learn its usage, and the hold is
//! settled or released exactly once.
//!
//! Billing rules: the provider refused, failed or did not answer → released;
//! usage reported → its cost, capped at the hold; an answer (or part of a
//! stream) went out but no usage came → the whole hold; a stream that broke
//! before any of the answer went out → released.

mod chat;
mod error;
mod hold;
mod limits;
mod meter;
mod request;
mod sse;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

use crate::catalog::Catalog;
pub use error::{Limit, ProxyError, NO_CREDITS_MESSAGE};
pub use meter::{Caller, HoldId, Meter, Refusal, Unavailable, UpstreamFailure};

/// Limits and timeouts of the proxy. `Default` gives the documented values.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Largest request body, in bytes (4 MiB); longer gets 413.
    pub max_body_bytes: usize,
    /// Largest non-streamed answer read from the provider (16 MiB).
    pub max_response_bytes: usize,
    /// Connecting to the provider (10 s).
    pub connect_timeout: Duration,
    /// From sending the request to the provider's response head (120 s: a
    /// non-streamed answer comes only when it is complete). Past it: 504.
    pub first_byte_timeout: Duration,
    /// Longest wait for the next chunk of an answer, or for a client to take
    /// the next chunk (60 s).
    pub idle_timeout: Duration,
    /// Longest exchange with the provider, stream included (10 min).
    pub total_timeout: Duration,
    /// How long a stream whose client went away keeps being read for its
    /// usage (60 s).
    pub drain_timeout: Duration,
    /// Requests admitted per instance per minute (60; 0 turns it off).
    pub requests_per_minute: u64,
    /// Tokens (prompt + completion, as reported) per instance per minute
    /// before further requests wait for the next minute (1,000,000; 0 turns
    /// it off).
    pub tokens_per_minute: u64,
    /// Chunks buffered between the provider and a slow client (16): beyond
    /// them the provider is no longer read, so back-pressure reaches it.
    pub stream_buffer_chunks: usize,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            max_body_bytes: 4 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            drain_timeout: Duration::from_secs(60),
            requests_per_minute: 60,
            tokens_per_minute: 1_000_000,
            stream_buffer_chunks: 16,
        }
    }
}

impl ProxySettings {
    /// The longest a request can keep credits held: every exchange with the
    /// provider ends by `total_timeout` from its start (a client that goes
    /// away only brings the end nearer), and its hold is settled or
    /// released then. An open hold older than this (plus the time a write
    /// takes) was left by a failure.
    pub fn longest_request(&self) -> Duration {
        self.total_timeout
    }
}

/// The HTTP client for the providers could not be built (its TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot start the model proxy's HTTP client: {0}")]
pub struct ClientError(#[source] reqwest::Error);

/// The proxy's state: the catalog, the meter, the settings, one HTTP client
/// for every provider, and the rate limits.
pub struct Proxy {
    catalog: Catalog,
    meter: Arc<dyn Meter>,
    settings: ProxySettings,
    client: reqwest::Client,
    limits: limits::RateLimits,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("catalog", &self.catalog)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy over `catalog`, billing through `meter`.
    pub fn new(
        catalog: Catalog,
        meter: Arc<dyn Meter>,
        settings: ProxySettings,
    ) -> Result<Proxy, ClientError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            // A redirect could carry the operator's key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientError)?;
        let limits =
            limits::RateLimits::new(settings.requests_per_minute, settings.tokens_per_minute);
        Ok(Proxy {
            catalog,
            meter,
            settings,
            client,
            limits,
        })
    }

    /// The catalog it serves.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Its settings.
    pub fn settings(&self) -> &ProxySettings {
        &self.settings
    }
}

/// The proxy's routes: `GET /v1/models`, `POST /v1/chat/completions`, and
/// OpenAI-shaped 404s for every other path. Serve it on its own listener.
pub fn router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route("/v1/models", get(chat::list_models))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .fallback(chat::no_route)
        .with_state(proxy)
}
