//! The web console at `/console`: server-rendered pages (askama templates,
//! checked at compile time and built into the binary, like the stylesheet),
//! plain HTML forms that work without JavaScript (POST, then a redirect with
//! a notice), sign-up and sign-in with sessions.
//!
//! - [`session`]: passwords, sessions, CSRF, throttling;
//! - [`pre_session`]: the server-issued CSRF token of the sign-in forms;
//! - [`pages`]: the pages (overview, create, security, usage, billing, account);
//! - [`actions`]: what the forms do, through the same instance service as the API;
//! - [`chat`]: the chat page, talking to the user's agent through its gateway;
//! - [`view`]: turning runtime and ledger data into what the pages show;
//! - [`headers`]: the browser protections on every console response.
//!
//! Errors are pages that say what happened and what to do; never JSON,
//! never a stack trace.

pub mod actions;
pub mod chat;
pub mod chat_answer;
pub mod chat_problem;
pub mod chat_sse;
pub mod headers;
pub mod open;
pub mod pages;
pub mod pre_session;
pub mod session;
pub mod throttle;
pub mod view;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use clawplane_store::StoreError;

use crate::error::ApiError;
use crate::state::AppState;

/// The console's routes.
pub fn router() -> Router<AppState> {
    let routes = Router::new()
        .route("/console", get(pages::overview))
        .route("/console/assets/console.js", get(script))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/open", get(open::open))
        .route(
            "/console/sign-up",
            get(pages::sign_up_page).post(actions::sign_up),
        )
        .route(
            "/console/sign-in",
            get(pages::sign_in_page).post(actions::sign_in),
        )
        .route("/console/sign-out", post(actions::sign_out))
        .route("/console/create", get(pages::create).post(actions::create))
        .route("/console/chat", get(chat::page).post(chat::send))
        .route("/console/security", get(pages::security))
        .route(
            "/console/security/{request_id}/{decision}",
            post(actions::decide),
        )
        .route("/console/usage", get(pages::usage))
        .route("/console/usage/{action}", post(actions::usage))
        .route("/console/billing", get(pages::billing))
        .route("/console/account", get(pages::account))
        .route("/console/account/tokens", post(actions::create_token))
        .route(
            "/console/account/tokens/{id}/revoke",
            post(actions::revoke_token),
        )
        .route("/console/account/keys", post(actions::set_key))
        .route("/console/account/keys/remove", post(actions::remove_keys))
        .route("/console/account/delete", post(actions::delete_instance));
    headers::protect(routes)
}

/// The console's script (progressive enhancement: live updates, forms
/// without a full reload), built into the binary.
async fn script() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        include_str!("../../assets/console.js"),
    )
}

/// The console's stylesheet, built into the binary (a file, not inline
/// styles, so the pages' policy allows no inline style).
async fn stylesheet() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/console.css"),
    )
}

/// The console's own state.
pub struct ConsoleState {
    /// Failed sign-ins.
    pub throttle: session::Throttle,
    /// A hash checked when an address has no account, so that a wrong
    /// address takes as long as a wrong password.
    pub dummy_hash: String,
    /// The form token of single-user mode (`OA_INTERNAL_USER_ID`), where
    /// there is no session to keep one: fresh at every start.
    pub single_user_csrf: String,
    /// The sign-in and sign-up forms' tokens, before a session exists.
    pub pre_session: pre_session::PreSessionTokens,
}

impl ConsoleState {
    /// A fresh state.
    pub fn new() -> Self {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        use clawplane_secrets::ExposeSecret;
        let dummy_hash = argon2::Argon2::default()
            .hash_password(
                b"not a password of anyone",
                &SaltString::generate(&mut OsRng),
            )
            .map(|h| h.to_string())
            .unwrap_or_default();
        ConsoleState {
            throttle: session::Throttle::default(),
            dummy_hash,
            single_user_csrf: clawplane_secrets::generate_token()
                .expose_secret()
                .to_owned(),
            pre_session: pre_session::PreSessionTokens::new(),
        }
    }
}

impl Default for ConsoleState {
    fn default() -> Self {
        Self::new()
    }
}

/// What every signed-in page shows around its content.
pub struct Chrome {
    /// Who is signed in.
    pub label: String,
    /// Whether to offer sign-out (not in single-user mode).
    pub sign_out: bool,
    /// Milliseconds between live updates of the page (with JavaScript), if any.
    pub poll: Option<u32>,
    /// The form token.
    pub csrf: String,
    /// The sidebar: link, label, whether it is this page.
    pub links: Vec<(&'static str, &'static str, bool)>,
    /// A notice after an action.
    pub notice: Option<String>,
    /// A problem to show.
    pub problem: Option<String>,
}

impl Chrome {
    /// Lets the page update itself every `ms` milliseconds (with JavaScript).
    pub fn polling(mut self, ms: Option<u32>) -> Self {
        self.poll = ms;
        self
    }
}

/// How often the pages that follow something live re-read themselves.
pub const POLL_PROVISIONING_MS: u32 = 1500;
/// Pending devices should appear within seconds.
pub const POLL_DEVICES_MS: u32 = 3000;
/// The runtime cards.
pub const POLL_STATUS_MS: u32 = 5000;

/// The sidebar's links.
pub const LINKS: &[(&str, &str)] = &[
    ("/console", "Overview"),
    ("/console/create", "Create"),
    ("/console/chat", "Chat"),
    ("/console/security", "Security"),
    ("/console/usage", "Usage"),
    ("/console/billing", "Billing"),
    ("/console/account", "Account"),
];

/// A page that could not be shown or an action that failed, for people.
#[derive(Debug)]
pub struct ConsoleError {
    status: StatusCode,
    message: String,
}

impl ConsoleError {
    /// 403 with a message.
    pub fn forbidden(message: &str) -> Self {
        ConsoleError {
            status: StatusCode::FORBIDDEN,
            message: message.to_owned(),
        }
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ConsoleError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 429 with a message.
    pub fn too_many(message: &str) -> Self {
        ConsoleError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: message.to_owned(),
        }
    }

    /// 500; the cause is logged, not shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        ApiError::internal(cause).into()
    }
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError {
            status: e.status,
            message: for_people(e.code, e.message),
        }
    }
}

impl From<crate::runtime_client::RuntimeError> for ConsoleError {
    fn from(e: crate::runtime_client::RuntimeError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
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
        (self.status, Html(body)).into_response()
    }
}

/// What an API error means for the person in front of the console.
fn for_people(code: &str, message: String) -> String {
    let fixed = match code {
        "insufficient_credits" => {
            "Your credits have run out, so your gateway cannot run. Credits are granted \
             every month (the Billing page says when); ask the operator to add credits \
             to start it sooner."
        }
        "runtime_unreachable" | "invalid_response" => {
            "Your instance's runtime did not answer. It may be restarting: wait a minute \
             and try again. If it keeps happening, restart the gateway on the Usage page."
        }
        "not_found" if message == "instance not found" => {
            "You have no instance yet. Create one on the Create page."
        }
        "runtime_url_not_set" | "service_token_not_set" => {
            "Your instance is still being created. Wait until the Create page says Ready."
        }
        "invalid_transition" | "invalid_status" => {
            return format!(
                "That cannot be done now ({message}). Reload the page to see the current state."
            )
        }
        "runtime_error" => return format!("Your instance's runtime refused: {message}."),
        _ => return message,
    };
    fixed.to_owned()
}

/// Renders a template into a page.
pub fn render(t: &impl Template) -> Result<Response, ConsoleError> {
    Ok(Html(t.render()?).into_response())
}

/// Back to `to` with a fixed notice (notices are codes mapped to texts,
/// so nothing a request carries is ever reflected).
pub fn done(to: &str, notice: &str) -> Response {
    Redirect::to(&format!("{to}?notice={notice}")).into_response()
}

/// The text of a notice code.
pub fn notice_text(code: Option<&String>) -> Option<String> {
    let text = match code?.as_str() {
        "created" => "Your instance is being created.",
        "approved" => "The device was approved.",
        "rejected" => "The request was rejected.",
        "backup" => "Backup taken.",
        "restart" => "The gateway restarted.",
        "stop" => "The gateway is stopped.",
        "start" => "The gateway is running again.",
        "restore" => "The backup was restored.",
        "revoked" => "The token was revoked.",
        "key-saved" => "The key was saved; your gateway restarts to use it.",
        "keys-removed" => "The keys were removed.",
        "deleted" => "Your instance was deleted. Its backups are kept.",
        "not_ready" => "Your OpenClaw opens once your instance is ready.",
        _ => return None,
    };
    Some(text.to_owned())
}
