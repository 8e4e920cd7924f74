//! The one error type of the HTTP surfaces, mapped once to the envelope.
//!
//! Policy:
//! - every reply, errors included, is `{"ok": false, "error": {"code",
//!   "message", "details"}}`; the message says what happened and what to do;
//! - client errors (4xx) carry their specific message;
//! - server errors (5xx) carry a generic message; the cause is logged once,
//!   here, with the request's span, and never sent (it may name internals);
//! - nothing here ever formats a secret: errors are built from messages that
//!   never include header values or request bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clawplane_billing::BillingError;
use clawplane_domain::{IdempotencyKeyError, MoneyError};
use clawplane_store::{StoreError, VaultError};

use crate::instances::InstanceError;
use crate::runtime_client::RuntimeError;
use serde_json::{json, Value};

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// Structured extra information (never secrets).
    pub details: Value,
}

impl ApiError {
    /// Any status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 500 with a generic message; `cause` is logged, not sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side; try again, and tell the operator if it persists",
        )
    }

    /// 503 with a generic message; `cause` is logged, not sent.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; try again shortly",
        )
    }
}

pub use clawplane_http::ok;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        clawplane_http::error(self.status, self.code, &self.message, &self.details)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound => ApiError::not_found("instance not found"),
            StoreError::EntryNotFound => ApiError::not_found("ledger entry not found"),
            StoreError::TokenNotFound => ApiError::not_found("API token not found"),
            StoreError::EmailTaken => ApiError::conflict("email_taken", e.to_string()),
            StoreError::TooManyTokens => ApiError::conflict("too_many_tokens", e.to_string()),
            StoreError::RuntimeNameTaken => ApiError::conflict("runtime_name_taken", e.to_string()),
            StoreError::LiveInstanceExists(_) => {
                ApiError::conflict("instance_exists", "this user already has an instance")
            }
            StoreError::Transition(t) => ApiError::conflict("invalid_transition", t.to_string()),
            StoreError::WrongStatus(s) => {
                ApiError::conflict("invalid_status", format!("the instance is {s}"))
            }
            StoreError::IdempotencyConflict => {
                ApiError::conflict("idempotency_conflict", e.to_string())
            }
            StoreError::NotReversible(_) => ApiError::conflict("not_reversible", e.to_string()),
            StoreError::InsufficientCredits { balance } => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                "insufficient credits",
            )
            .with_details(json!({ "balance_usd": balance.to_exact_usd_json() })),
            StoreError::Database(_) | StoreError::Contended | StoreError::Closed => {
                ApiError::unavailable(&e)
            }
            StoreError::Corrupt(_) | StoreError::Migration(_) | StoreError::UnsupportedUrl => {
                ApiError::internal(&e)
            }
        }
    }
}

impl From<InstanceError> for ApiError {
    fn from(e: InstanceError) -> Self {
        match e {
            InstanceError::NotFound => ApiError::not_found("instance not found"),
            InstanceError::RuntimeUrlNotSet => {
                ApiError::conflict("runtime_url_not_set", "runtime url not set")
            }
            InstanceError::ServiceTokenNotSet => {
                ApiError::conflict("service_token_not_set", "service token not set")
            }
            InstanceError::HostFull { slots, running } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "capacity", e.to_string())
                    .with_details(json!({ "slots": slots, "running": running }))
            }
            InstanceError::Transition(t) => StoreError::Transition(t).into(),
            InstanceError::WrongStatus(s) => StoreError::WrongStatus(s).into(),
            InstanceError::BackupFailed(cause) => {
                let (status, why) = match cause {
                    None => (
                        StatusCode::CONFLICT,
                        "its runtime is not running".to_owned(),
                    ),
                    Some(runtime) => {
                        let e = ApiError::from(runtime);
                        (e.status, e.message)
                    }
                };
                ApiError::new(
                    status,
                    "backup_failed",
                    format!("the protective backup failed, so nothing was deleted: {why}"),
                )
            }
            InstanceError::InvalidProviderKeys(why) => ApiError::bad_request(why),
            InstanceError::InvalidSecret(why) => ApiError::bad_request(why),
            InstanceError::SecretNotSet(_) => ApiError::not_found(e.to_string()),
            InstanceError::Billing(b) => b.into(),
            InstanceError::Runtime(r) => r.into(),
            InstanceError::Provision(p) => ApiError::internal(&p),
            InstanceError::Vault(VaultError::Store(s)) => s.into(),
            InstanceError::Vault(v @ VaultError::Decrypt(_)) => ApiError::internal(&v),
            InstanceError::Store(s) => s.into(),
        }
    }
}

impl From<MoneyError> for ApiError {
    fn from(e: MoneyError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_amount", e.to_string())
    }
}

impl From<IdempotencyKeyError> for ApiError {
    fn from(e: IdempotencyKeyError) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            e.to_string(),
        )
    }
}

impl From<BillingError> for ApiError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::Amount(m) => m.into(),
            BillingError::IdempotencyKey(k) => k.into(),
            BillingError::IdempotencyConflict => {
                ApiError::conflict("idempotency_conflict", e.to_string())
            }
            BillingError::InsufficientCredits {
                balance,
                amount,
                floor,
            } => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                e.to_string(),
            )
            .with_details(json!({
                "balance_usd": balance.to_exact_usd_json(),
                "amount_usd": amount.to_exact_usd_json(),
                "floor_usd": floor.to_exact_usd_json(),
            })),
            BillingError::EntryNotFound => ApiError::not_found(e.to_string()),
            BillingError::NotReversible(_) => ApiError::conflict("not_reversible", e.to_string()),
            BillingError::InvalidMeta | BillingError::InvalidSource => {
                ApiError::bad_request(e.to_string())
            }
            BillingError::Store(s) => s.into(),
        }
    }
}

/// The seed's mapping: a runtime's error keeps its status (400-599) and
/// message; a reply that is not the envelope is 502 `invalid_response`; a
/// runtime that does not answer is 502 `runtime_unreachable`.
impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Status {
                status,
                code,
                message,
            } => match StatusCode::from_u16(status) {
                Ok(s) if (400..=599).contains(&status) => {
                    ApiError::new(s, "runtime_error", message)
                        .with_details(json!({ "runtime_code": code }))
                }
                _ => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "invalid_response",
                    "the runtime's answer could not be read",
                ),
            },
            RuntimeError::InvalidResponse => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "invalid_response",
                "the runtime's answer could not be read",
            ),
            RuntimeError::Unreachable => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "runtime_unreachable",
                "the instance's runtime did not answer; try again, or check the instance's status",
            ),
        }
    }
}
