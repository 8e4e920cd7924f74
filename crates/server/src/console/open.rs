//! `GET /console/open`: "Open OpenClaw". The console has checked the
//! session; it issues a one-minute, one-time pass for the instance's door
//! and hands it over in a form post to the instance's host
//! (`crate::ingress::door`), so the pass is never in a URL and the gateway
//! token is never in the browser. Each account holds a bounded number of
//! passes and door cookies: a new one replaces the oldest beyond the bound.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use clawplane_domain::{Account, Email, InstanceStatus};
use clawplane_store::console::PassKind;

use super::session::Session;
use super::{headers, render, view, ConsoleError};
use crate::ingress::door;
use crate::state::AppState;

/// Unused passes an account may hold at once (each is good for a minute).
pub const MAX_HANDOFFS: u32 = 20;
/// Door cookies an account may hold at once (each is good for 12 hours;
/// a browser that opens OpenClaw again replaces its own, so most of the
/// older ones belong to no browser any more).
pub const MAX_DOORS: u32 = 50;

#[derive(Template)]
#[template(path = "open.html")]
struct Open {
    action: String,
    pass: String,
}

/// `GET /console/open`.
pub async fn open(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let instance = state.instances.current(&s.user).await?;
    let Some(name) = instance
        .as_ref()
        .filter(|i| i.status == InstanceStatus::Ready)
        .and_then(|i| i.runtime_name.clone())
    else {
        return Ok(Redirect::to("/console?notice=not_ready").into_response());
    };
    let url = view::gateway_url(&name, &state.config.ingress.domain, &headers);
    if s.single_user {
        // No accounts: every browser of the console is its user's.
        return Ok(Redirect::to(&url).into_response());
    }
    let email = Email::parse(&s.label).map_err(|e| ConsoleError::internal(&e))?;
    let account = Account {
        id: s.user.as_str().to_owned(),
        email,
    };
    let pass = door::handoff(&state, &account, &name).await?;
    bound_passes(&state, &account).await?;
    let door_origin = url.trim_end_matches('/');
    let mut response = render(&Open {
        action: format!("{door_origin}{}", door::DOOR_PATH),
        pass,
    })?;
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    headers::door_page(response.headers_mut(), door_origin);
    Ok(response)
}

/// Keeps the account's newest passes, so no account grows the table
/// without bound between sweeps: at most [`MAX_HANDOFFS`] unused passes
/// and [`MAX_DOORS`] door cookies (each needs a pass, so between two opens
/// at most [`MAX_HANDOFFS`] more). The oldest go first.
async fn bound_passes(state: &AppState, account: &Account) -> Result<(), ConsoleError> {
    let store = &state.store;
    store
        .keep_newest_passes(&account.id, PassKind::Handoff, MAX_HANDOFFS)
        .await?;
    store
        .keep_newest_passes(&account.id, PassKind::Door, MAX_DOORS)
        .await?;
    Ok(())
}
