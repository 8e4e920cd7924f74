//! `GET /console/open`: "Open OpenClaw". The console has checked the
//! session; it issues a one-minute, one-time pass for the instance's door
//! ([`crate::door_passes`], which also keeps each account's passes and door
//! cookies bounded) and hands it over in a form post to the instance's
//! host, so the pass is never in a URL and the gateway token is never in
//! the browser.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use clawplane_domain::InstanceStatus;
use clawplane_secrets::ExposeSecret;

use super::session::Session;
use super::{headers, render, view, ConsoleError};
use crate::door_passes::{self, DOOR_PATH};
use crate::state::AppState;

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
    let pass = door_passes::issue_handoff(&state.store, &s.user, &name).await?;
    let door_origin = url.trim_end_matches('/');
    let mut response = render(&Open {
        action: format!("{door_origin}{DOOR_PATH}"),
        pass: pass.expose_secret().to_owned(),
    })?;
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    headers::door_page(response.headers_mut(), door_origin);
    Ok(response)
}
