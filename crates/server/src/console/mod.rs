//! The web console at `/console`: server-rendered pages (askama templates,
//! checked at compile time and built into the binary, like the stylesheet),
//! plain HTML forms that work without JavaScript (POST, then a redirect with
//! a notice), sign-up and sign-in with sessions.
//!
//! - [`session`]: sessions, cookies, CSRF;
//! - [`failures`]: failed sign-ins remembered (per account and address);
//! - [`throttle`]: hashing bounds and the sign-in throttle applied;
//! - [`pre_session`]: the server-issued CSRF token of the sign-in forms;
//! - [`pages`]: the pages (overview, create, security, usage, billing, account);
//! - [`actions`]: what the forms do, through the same instance service as the API;
//! - [`chat`]: the chat page, talking to the user's agent through its gateway;
//! - [`view`]: turning runtime and ledger data into what the pages show;
//! - [`headers`]: the browser protections on every console response;
//! - [`ConsoleError`]: what failed, as a sentence for people, mapped from
//!   each service's errors by an exhaustive match.
//!
//! Errors are pages that say what happened and what to do; never JSON,
//! never a stack trace.

pub mod actions;
pub mod chat;
mod error;
pub mod failures;
pub mod headers;
pub mod open;
pub mod pages;
pub mod pre_session;
pub mod session;
pub mod throttle;
pub mod view;

use crate::state::AppState;
use askama::Template;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::Router;

pub use error::ConsoleError;

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
        .route(
            "/console/sign-out-everywhere",
            post(actions::sign_out_everywhere),
        )
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
        .route("/console/account/delete", post(actions::delete_instance))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/{*rest}", any(not_found));
    headers::protect(routes)
}

/// Whether `path` is the console's (so its errors are pages, not JSON).
pub fn owns(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Any other address under `/console`: a page in the console's layout with
/// a link back, never the API's JSON.
pub async fn not_found() -> ConsoleError {
    ConsoleError::not_found(
        "There is no console page at this address. Check it for a typing mistake, \
         or start again from the console.",
    )
}

/// A console address asked with a method it does not take (a form posted
/// to a page, say).
pub async fn method_not_allowed() -> ConsoleError {
    ConsoleError::method_not_allowed(
        "This page cannot be sent that way. Go back to the console and use its buttons and forms.",
    )
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
    /// Failed sign-ins and the sign-in limits.
    pub throttle: failures::Throttle,
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
            throttle: failures::Throttle::default(),
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
