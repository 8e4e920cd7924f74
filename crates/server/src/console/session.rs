//! Sign-in state of the console: password hashes (argon2id), session
//! cookies (`HttpOnly`, `SameSite=Lax`, `Secure` behind TLS; only a digest
//! is stored; a new session at every sign-in, so a planted cookie is never
//! promoted), CSRF tokens on every form (before a session, server-issued
//! ones of [`super::pre_session`]). Failed sign-ins are remembered in
//! [`super::failures`] and throttled by [`super::throttle`].
//!
//! Signing out also closes the account's gateway doors (its passes and door
//! cookies, [`crate::door_passes`]), and a sweeper deletes expired sessions,
//! passes and door cookies on a schedule ([`spawn_sweeper`]).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use clawplane_domain::{Account, UserId};
use clawplane_secrets::{api_token_digest, constant_time_eq, generate_token, ExposeSecret};
use clawplane_store::{Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pre_session::{self, PreSessionTokens};
use super::ConsoleError;
use crate::state::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "clawplane_session";
/// The CSRF cookie of the sign-in and sign-up forms (before a session exists).
pub const PRE_CSRF_COOKIE: &str = "clawplane_csrf";
/// How long a session lasts.
pub const SESSION_DAYS: i64 = 7;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// The interval to give [`spawn_sweeper`]: expired rows are already refused
/// at every lookup, so it only bounds how long they stay in the table.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// A signed-in person (or, in single-user mode, whoever reaches the console).
pub struct Session {
    /// Who is signed in, as the sidebar shows it.
    pub label: String,
    /// The user id of their instance and ledger.
    pub user: UserId,
    /// The token their forms carry.
    pub csrf: String,
    /// Single-user mode (`OA_INTERNAL_USER_ID`): no sign-in, no sign-out.
    pub single_user: bool,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(user) = &state.config.console_user {
            return Ok(Session {
                label: format!("{user} (single-user mode)"),
                user: user.clone(),
                csrf: state.console.single_user_csrf.clone(),
                single_user: true,
            });
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(cookie) = jar.get(SESSION_COOKIE) else {
            return Err(Redirect::to("/console/sign-in").into_response());
        };
        let record = state
            .store
            .session(&api_token_digest(cookie.value()))
            .await
            .map_err(|e| ConsoleError::from(e).into_response())?;
        // A pass to an instance's door is not a console session: passes
        // live in their own table, so no lookup here finds one.
        let Some(record) = record else {
            return Err(Redirect::to("/console/sign-in").into_response());
        };
        let user = UserId::parse(&record.account.id)
            .map_err(|e| ConsoleError::internal(&e).into_response())?;
        Ok(Session {
            label: record.account.email.as_str().to_owned(),
            user,
            csrf: record.csrf_token,
            single_user: false,
        })
    }
}

impl Session {
    /// Refuses a form without this session's CSRF token.
    pub fn check_csrf(&self, form: &HashMap<String, String>) -> Result<(), ConsoleError> {
        check_token(form.get("csrf").map(String::as_str), &self.csrf)
    }
}

fn check_token(given: Option<&str>, expected: &str) -> Result<(), ConsoleError> {
    match given {
        Some(g) if !g.is_empty() && constant_time_eq(g.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ConsoleError::forbidden(
            "This form expired or did not come from this site. Go back, reload the page and try again.",
        )),
    }
}

/// The pre-session CSRF token of the sign-in forms: the cookie's while it
/// is one this server issued with time left, else a new one (cookie set).
pub fn pre_session_csrf(
    tokens: &PreSessionTokens,
    jar: CookieJar,
    headers: &HeaderMap,
) -> (CookieJar, String) {
    let now = chrono::Utc::now();
    if let Some(c) = jar
        .get(PRE_CSRF_COOKIE)
        .filter(|c| tokens.fresh_enough(c.value(), now))
    {
        let value = c.value().to_owned();
        return (jar, value);
    }
    let token = tokens.issue(now);
    let mut c = cookie(PRE_CSRF_COOKIE, token.clone(), headers);
    c.set_max_age(time::Duration::seconds(pre_session::LIFETIME.num_seconds()));
    (jar.add(c), token)
}

/// Checks a sign-in form's token: the same as its cookie's (double submit),
/// and one this server issued that has not expired.
pub fn check_pre_session_csrf(
    tokens: &PreSessionTokens,
    jar: &CookieJar,
    form: &HashMap<String, String>,
) -> Result<(), ConsoleError> {
    let expected = jar
        .get(PRE_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| tokens.expiry(v, chrono::Utc::now()).is_some())
        .unwrap_or_default();
    if expected.is_empty() {
        return check_token(None, "");
    }
    check_token(form.get("csrf").map(String::as_str), &expected)
}

/// Whether the console is served over TLS (`X-Forwarded-Proto: https`).
pub fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A cookie of clawplane's: whole site, `HttpOnly`, `SameSite=Lax`, and
/// `Secure` when served over TLS.
pub fn cookie(name: &'static str, value: String, headers: &HeaderMap) -> Cookie<'static> {
    let behind_tls = behind_tls(headers);
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(behind_tls)
        .build()
}

/// Starts a new session for `account` (whatever cookie came in is replaced).
pub async fn start_session(
    state: &AppState,
    jar: CookieJar,
    headers: &HeaderMap,
    account: &Account,
) -> Result<CookieJar, ConsoleError> {
    let token = generate_token();
    let csrf = generate_token();
    let expires = chrono::Utc::now() + chrono::Duration::days(SESSION_DAYS);
    state
        .store
        .create_session(
            &api_token_digest(token.expose_secret()),
            account,
            csrf.expose_secret(),
            expires,
        )
        .await?;
    let mut session = cookie(SESSION_COOKIE, token.expose_secret().to_owned(), headers);
    session.set_max_age(time::Duration::days(SESSION_DAYS));
    // The removal names the cookie's path, or a browser keeps the cookie.
    let pre_session = Cookie::build(PRE_CSRF_COOKIE).path("/").build();
    Ok(jar.remove(pre_session).add(session))
}

/// Ends the session of this cookie jar and every pass and door cookie of its
/// account, so a browser at one of the account's gateways is refused at its
/// next request.
pub async fn end_session(state: &AppState, jar: CookieJar) -> Result<CookieJar, ConsoleError> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        state
            .store
            .delete_session_and_passes(&api_token_digest(c.value()))
            .await?;
    }
    Ok(jar.remove(Cookie::build(SESSION_COOKIE).path("/").build()))
}

/// Deletes every expired console session, pass and door cookie; returns how
/// many went.
pub async fn sweep_expired(store: &Store) -> Result<u64, StoreError> {
    let sessions = store.delete_expired_sessions().await?;
    let passes = store.delete_expired_door_passes().await?;
    Ok(sessions + passes)
}

/// Runs [`sweep_expired`] at once and then every `interval` until `shutdown`
/// is cancelled. A failed sweep is logged and tried again at the next tick.
pub fn spawn_sweeper(
    store: Store,
    interval: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            match sweep_expired(&store).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "swept expired console sessions"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired console sessions failed"),
            }
        }
    })
}
