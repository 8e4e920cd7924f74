//! What the console's forms do. Every form carries the CSRF token; every
//! action goes through the same services as the API and ends in a redirect
//! with a notice, or in a page that says what went wrong.
//!
//! A new session records what it was started from (the User-Agent and the
//! client address), so the Account page can list the account's sessions;
//! "Sign out everywhere else" ends all but the current one.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use clawplane_domain::{Account, Email, TokenName};
use clawplane_secrets::{api_token_digest, ExposeSecret, SecretString};
use uuid::Uuid;

use super::pages::{account_page, sign_form, single_user_mode, SIGNED_OUT_ELSEWHERE};
use super::session::{
    check_pre_session_csrf, end_session, start_session, Session, MIN_PASSWORD_LEN, SESSION_COOKIE,
};
use super::throttle::SignInGate;
use super::{done, render, ConsoleError};
use crate::instances::runtime_ops::DeviceDecision;
use crate::instances::InstanceError;
use crate::runtime_client::{GatewayAction, RuntimeError};
use crate::state::AppState;

/// A form body whose rejection is a page, not axum's plain text.
pub struct FormMap(pub HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormMap {
    type Rejection = ConsoleError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ConsoleError> {
        Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map(|Form(map)| FormMap(map))
            .map_err(|_| {
                ConsoleError::bad_request(
                    "The form could not be read. Go back, reload the page and try again.",
                )
            })
    }
}

/// The client address of a request as `serve` vouches for it
/// ([`crate::peer::client_address`]); `None` without a peer address (a
/// router called without `ConnectInfo`).
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddress(peer.map(|peer| {
            crate::peer::client_address(peer, &parts.headers, &state.config.ingress.trusted_proxies)
        })))
    }
}

/// Starts a session for `account` and records what it came from (the
/// User-Agent, the address), for the Account page's list of sessions.
/// Failing to record that is logged, not a failed sign-in.
async fn sign_in_as(
    state: &AppState,
    jar: CookieJar,
    headers: &HeaderMap,
    address: &ClientAddress,
    account: &Account,
) -> Result<CookieJar, ConsoleError> {
    let jar = start_session(state, jar, headers, account).await?;
    if let Some(session) = jar.get(SESSION_COOKIE) {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(describe_client);
        let address = address.0.map(|a| a.to_string());
        if let Err(e) = state
            .store
            .set_session_client(
                &api_token_digest(session.value()),
                agent.as_deref(),
                address.as_deref(),
            )
            .await
        {
            tracing::warn!(error = %e, "recording a new session's client failed");
        }
    }
    Ok(jar)
}

/// What a session records of its client: "Firefox on Linux" for a
/// User-Agent, or the User-Agent itself when neither the browser nor the
/// system is recognised (the store cuts it short). Described from the
/// whole header, whose browser often comes last.
fn describe_client(agent: &str) -> String {
    let has = |s: &str| agent.contains(s);
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .into_iter()
    .find(|(mark, _)| has(mark))
    .map(|(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(mark, _)| has(mark))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => format!("A browser on {s}"),
        (None, None) => agent.to_owned(),
    }
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or("")
}

/// What sign-up says when it cannot create the account. It never says that
/// the address has one; but since a new account is signed in at once, not
/// being signed in still tells it, until sign-up confirms by email.
const SIGN_UP_REFUSED: &str = "We could not create an account with this address and password. \
     If you already have an account, sign in; otherwise check the address and try again.";

/// `POST /console/sign-up` `email, password, csrf`.
pub async fn sign_up(
    State(state): State<AppState>,
    gate: SignInGate,
    address: ClientAddress,
    jar: CookieJar,
    headers: HeaderMap,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    if let Some(to_console) = single_user_mode(&state) {
        return Ok(to_console);
    }
    check_pre_session_csrf(&state.console.pre_session, &jar, &form)?;
    let typed = field(&form, "email").chars().take(254).collect::<String>();
    let again = |jar, problem: &str| {
        sign_form(
            &state,
            jar,
            &headers,
            true,
            typed.clone(),
            Some(problem.to_owned()),
        )
    };
    let Ok(email) = Email::parse(&typed) else {
        return again(jar, "Enter an email address such as ana@example.com.");
    };
    let password = field(&form, "password");
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > 1024 {
        return again(jar, "Choose a password of at least 10 characters.");
    }
    let hash = gate.hash_password(password.to_owned()).await?;
    let account = match state.store.create_account(&email, &hash).await {
        Ok(a) => a,
        // Not "this address has an account": the same sentence whatever
        // the reason, after the same hash (see `SIGN_UP_REFUSED`).
        Err(clawplane_store::StoreError::EmailTaken) => return again(jar, SIGN_UP_REFUSED),
        Err(e) => return Err(e.into()),
    };
    let jar = sign_in_as(&state, jar, &headers, &address, &account).await?;
    Ok((jar, Redirect::to("/console")).into_response())
}

/// `POST /console/sign-in` `email, password, csrf`; throttled per address.
pub async fn sign_in(
    State(state): State<AppState>,
    gate: SignInGate,
    address: ClientAddress,
    jar: CookieJar,
    headers: HeaderMap,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    if let Some(to_console) = single_user_mode(&state) {
        return Ok(to_console);
    }
    check_pre_session_csrf(&state.console.pre_session, &jar, &form)?;
    let typed = field(&form, "email").chars().take(254).collect::<String>();
    let wrong = "That email address and password do not match an account.";
    let Ok(email) = Email::parse(&typed) else {
        return sign_form(&state, jar, &headers, false, typed, Some(wrong.into()));
    };
    // This client's failures at this account may make it wait; the
    // account's own failures only slow it (never a lock-out).
    let gate = gate.admit(&email).await?;
    let found = state.store.account_by_email(&email).await?;
    let password = field(&form, "password").to_owned();
    let ok = match &found {
        Some((_, hash)) => gate.verify_password(password, hash.clone()).await,
        None => {
            // The same work as a real check, so timing does not tell whether the address exists.
            let _ = gate
                .verify_password(password, state.console.dummy_hash.clone())
                .await;
            false
        }
    };
    match found {
        Some((account, _)) if ok => {
            gate.succeeded(&email);
            let jar = sign_in_as(&state, jar, &headers, &address, &account).await?;
            Ok((jar, Redirect::to("/console")).into_response())
        }
        _ => {
            gate.failed(&email);
            sign_form(&state, jar, &headers, false, typed, Some(wrong.into()))
        }
    }
}

/// `POST /console/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    s: Session,
    jar: CookieJar,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    let jar = end_session(&state, jar).await?;
    Ok((jar, Redirect::to("/console/sign-in")).into_response())
}

/// `POST /console/sign-out-everywhere`: ends every other console session of
/// the account and every door pass and door cookie (this browser's too:
/// there is no telling which browser holds which), then back to the Account
/// page. Not in single-user mode, where nobody signs in.
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    s: Session,
    jar: CookieJar,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    if s.single_user {
        return Err(ConsoleError::bad_request(
            "Nobody signs in to this console (single-user mode), so there is nothing to sign out of.",
        ));
    }
    let current = jar.get(SESSION_COOKIE).map(|c| api_token_digest(c.value()));
    let ended = state
        .store
        .delete_other_sessions_and_passes(&s.user, current.as_deref())
        .await?;
    tracing::info!(
        user = %s.user,
        sessions = ended.sessions,
        passes = ended.passes,
        "signed out everywhere else"
    );
    Ok(done("/console/account", SIGNED_OUT_ELSEWHERE))
}

/// `POST /console/create`: creates (or retries) the instance.
pub async fn create(
    State(state): State<AppState>,
    s: Session,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    state.instances.create(&s.user).await?;
    Ok(done("/console/create", "created"))
}

/// `POST /console/security/{requestId}/{approve|reject}`.
pub async fn decide(
    State(state): State<AppState>,
    s: Session,
    Path((request_id, decision)): Path<(String, String)>,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    let id = Uuid::parse_str(&request_id).map_err(|_| {
        ConsoleError::bad_request("That pairing request does not exist. Reload the Security page.")
    })?;
    let decision = match decision.as_str() {
        "approve" => DeviceDecision::Approve,
        "reject" => DeviceDecision::Reject,
        _ => return Err(ConsoleError::bad_request("Choose Approve or Reject.")),
    };
    let notice = match decision {
        DeviceDecision::Approve => "approved",
        DeviceDecision::Reject => "rejected",
    };
    match state.instances.decide_device(&s.user, id, decision).await {
        Ok(_) => Ok(done("/console/security", notice)),
        Err(InstanceError::Runtime(RuntimeError::Status { status: 404, .. })) => Err(ConsoleError::bad_request(
            "That pairing request expired or was already decided. Ask the device to connect again, then reload the Security page.",
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/usage/{backup|restart|stop|start|restore}`.
pub async fn usage(
    State(state): State<AppState>,
    s: Session,
    Path(action): Path<String>,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    let notice = match action.as_str() {
        "backup" => state.instances.backup(&s.user).await.map(|_| "backup")?,
        "restart" => state
            .instances
            .gateway(&s.user, GatewayAction::Restart)
            .await
            .map(|_| "restart")?,
        "stop" => state
            .instances
            .gateway(&s.user, GatewayAction::Stop)
            .await
            .map(|_| "stop")?,
        "start" => state
            .instances
            .gateway(&s.user, GatewayAction::Start)
            .await
            .map(|_| "start")?,
        "restore" => {
            let id = field(&form, "backup_id");
            if !clawplane_domain::is_backup_id(id) {
                return Err(ConsoleError::bad_request("Choose a backup from the list."));
            }
            state
                .instances
                .restore_backup(&s.user, Some(id))
                .await
                .map(|_| "restore")?
        }
        _ => return Err(ConsoleError::bad_request("That action does not exist.")),
    };
    Ok(done("/console/usage", notice))
}

/// `POST /console/account/tokens` `name`: the token is shown on this page only.
pub async fn create_token(
    State(state): State<AppState>,
    s: Session,
    jar: CookieJar,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    let name = TokenName::parse(field(&form, "name"))
        .map_err(|_| ConsoleError::bad_request("Give the token a name of 1 to 64 characters."))?;
    let (token, _) = crate::api_tokens::issue(&state.store, &s.user, &name).await?;
    let page = account_page(
        &state,
        &s,
        &jar,
        &HashMap::new(),
        Some(token.expose_secret().to_owned()),
    )
    .await?;
    // Cache-Control: no-store comes with every console page (routes/mod.rs).
    render(&page)
}

/// `POST /console/account/tokens/{id}/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| ConsoleError::bad_request("That token does not exist."))?;
    state.store.revoke_api_token(&s.user, id).await?;
    Ok(done("/console/account", "revoked"))
}

/// `POST /console/account/keys` `name, value`: adds or replaces one key.
pub async fn set_key(
    State(state): State<AppState>,
    s: Session,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    let name = field(&form, "name").trim().to_owned();
    let value = SecretString::from(field(&form, "value").trim().to_owned());
    let keys: BTreeMap<String, SecretString> = [(name, value)].into();
    state.instances.merge_provider_keys(&s.user, keys).await?;
    Ok(done("/console/account", "key-saved"))
}

/// `POST /console/account/delete` `confirm=yes`: deletes the instance (a
/// last backup first, kept), as `DELETE /api/openclaw/instance` does.
pub async fn delete_instance(
    State(state): State<AppState>,
    s: Session,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    if field(&form, "confirm") != "yes" {
        return Err(ConsoleError::bad_request(
            "Nothing was deleted: tick the box to confirm, then press Delete instance again.",
        ));
    }
    state.instances.delete(&s.user).await?;
    Ok(done("/console", "deleted"))
}

/// `POST /console/account/keys/remove`.
pub async fn remove_keys(
    State(state): State<AppState>,
    s: Session,
    FormMap(form): FormMap,
) -> Result<Response, ConsoleError> {
    s.check_csrf(&form)?;
    state.instances.set_provider_keys(&s.user, None).await?;
    Ok(done("/console/account", "keys-removed"))
}

#[cfg(test)]
mod tests {
    use super::describe_client;

    #[test]
    fn a_user_agent_is_described_by_browser_and_system() {
        let chrome_linux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(describe_client(chrome_linux), "Chrome on Linux");
        let safari_iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(describe_client(safari_iphone), "Safari on iOS");
        let firefox_android =
            "Mozilla/5.0 (Android 14; Mobile; rv:120.0) Gecko/120.0 Firefox/120.0";
        assert_eq!(describe_client(firefox_android), "Firefox on Android");
        assert_eq!(describe_client("curl/8.5.0"), "curl/8.5.0");
    }
}
