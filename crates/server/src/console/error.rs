//! What failed, for the person in front of the console: an error page with
//! a sentence that says what happened and what to do. Each service's error
//! is mapped here by an exhaustive match of its own (never through the
//! API's error codes), so a new variant must be given its sentence.

use askama::Template;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use clawplane_billing::BillingError;
use clawplane_store::{StoreError, VaultError};

use crate::instances::InstanceError;
use crate::runtime_client::RuntimeError;

/// A page that could not be shown or an action that failed, for people.
#[derive(Debug)]
pub struct ConsoleError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    /// When to try again, sent as `Retry-After` (whole seconds, at least one).
    retry_after: Option<Duration>,
}

const INTERNAL: &str =
    "Something went wrong on our side. Try again, and tell the operator if it persists.";
const BUSY: &str = "The service is busy. Try again in a moment.";
const RUNTIME_SILENT: &str = "Your instance's runtime did not answer. It may be restarting: wait \
     a minute and try again. If it keeps happening, restart the gateway on the Usage page.";
const NO_CREDITS: &str = "Your credits have run out, so your gateway cannot run. Credits are \
     granted every month (the Billing page says when); ask the operator to add credits to \
     start it sooner.";

impl ConsoleError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ConsoleError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Says when to try again (`Retry-After`).
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// 403 with a message.
    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with a message.
    pub fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 405 with a message.
    pub fn method_not_allowed(message: &str) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, message)
    }

    /// 429 with a message.
    pub fn too_many(message: &str) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, message)
    }

    /// 500; the cause is logged, not shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "console error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL)
    }

    /// 503; the cause is logged, not shown.
    fn busy(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, BUSY)
    }

    fn cannot_now(what: &dyn std::fmt::Display) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            format!("That cannot be done now ({what}). Reload the page to see the current state."),
        )
    }
}

impl From<InstanceError> for ConsoleError {
    fn from(e: InstanceError) -> Self {
        match e {
            InstanceError::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                "You have no instance yet. Create one on the Create page.",
            ),
            InstanceError::RuntimeUrlNotSet | InstanceError::ServiceTokenNotSet => Self::new(
                StatusCode::CONFLICT,
                "Your instance is still being created. Wait until the Create page says Ready.",
            ),
            InstanceError::HostFull { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            InstanceError::Transition(t) => Self::cannot_now(&t),
            InstanceError::WrongStatus(s) => Self::cannot_now(&format!("the instance is {s}")),
            InstanceError::BackupFailed(None) => Self::new(
                StatusCode::CONFLICT,
                "The protective backup failed, so nothing was deleted: its runtime is not running. \
                 Try again in a minute, when it has been started again.",
            ),
            InstanceError::BackupFailed(Some(runtime)) => {
                let inner = ConsoleError::from(runtime);
                Self::new(
                    inner.status,
                    format!(
                        "The protective backup failed, so nothing was deleted. {}",
                        inner.message
                    ),
                )
            }
            InstanceError::InvalidProviderKeys(why) => Self::bad_request(why),
            InstanceError::InvalidSecret(why) => Self::bad_request(why),
            InstanceError::SecretNotSet(_) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            InstanceError::Billing(b) => b.into(),
            InstanceError::Runtime(r) => r.into(),
            InstanceError::Provision(p) => Self::internal(&p),
            InstanceError::Vault(VaultError::Store(s)) => s.into(),
            InstanceError::Vault(v @ VaultError::Decrypt(_)) => Self::internal(&v),
            InstanceError::Store(s) => s.into(),
        }
    }
}

impl From<RuntimeError> for ConsoleError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Status {
                status, message, ..
            } if (400..=599).contains(&status) => Self::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                format!("Your instance's runtime refused: {message}."),
            ),
            RuntimeError::Status { .. }
            | RuntimeError::Unreachable
            | RuntimeError::InvalidResponse => Self::new(StatusCode::BAD_GATEWAY, RUNTIME_SILENT),
        }
    }
}

impl From<BillingError> for ConsoleError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::InsufficientCredits { .. } => {
                Self::new(StatusCode::PAYMENT_REQUIRED, NO_CREDITS)
            }
            BillingError::Store(s) => s.into(),
            BillingError::Amount(_)
            | BillingError::IdempotencyKey(_)
            | BillingError::InvalidMeta
            | BillingError::InvalidSource => Self::bad_request(e.to_string()),
            BillingError::IdempotencyConflict | BillingError::NotReversible(_) => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            BillingError::EntryNotFound => Self::new(StatusCode::NOT_FOUND, e.to_string()),
        }
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => InstanceError::NotFound.into(),
            StoreError::Transition(t) => Self::cannot_now(&t),
            StoreError::WrongStatus(s) => Self::cannot_now(&format!("the instance is {s}")),
            StoreError::InsufficientCredits { .. } => {
                Self::new(StatusCode::PAYMENT_REQUIRED, NO_CREDITS)
            }
            StoreError::EmailTaken
            | StoreError::TooManyTokens
            | StoreError::RuntimeNameTaken
            | StoreError::IdempotencyConflict => Self::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::LiveInstanceExists(_) => {
                Self::new(StatusCode::CONFLICT, "You already have an instance.")
            }
            StoreError::TokenNotFound => {
                Self::new(StatusCode::NOT_FOUND, "That token does not exist.")
            }
            StoreError::EntryNotFound => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::NotReversible(_) => Self::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::Database(_) | StoreError::Contended | StoreError::Closed => Self::busy(&e),
            StoreError::Corrupt(_) | StoreError::Migration(_) | StoreError::UnsupportedUrl => {
                Self::internal(&e)
            }
        }
    }
}

impl From<askama::Error> for ConsoleError {
    fn from(e: askama::Error) -> Self {
        ConsoleError::internal(&e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let body = ErrorPage {
            message: &self.message,
        }
        .render()
        .unwrap_or_else(|_| "Something went wrong. Go back and try again.".to_owned());
        let mut response = (self.status, Html(body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}
