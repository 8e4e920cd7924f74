//! `GET /console/open`: "Open OpenClaw". The console has checked the
//! session; it issues a one-minute, one-time pass for the instance's door
//! and hands it over in a form post to the instance's host
//! (`crate::ingress::door`), so the pass is never in a URL and the gateway
//! token is never in the browser.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use clawplane_domain::{Account, Email, InstanceStatus};

use super::session::Session;
use super::{render, view, ConsoleError};
use crate::ingress::door;
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
    let email = Email::parse(&s.label).map_err(|e| ConsoleError::internal(&e))?;
    let account = Account {
        id: s.user.as_str().to_owned(),
        email,
    };
    let pass = door::handoff(&state, &account, &name).await?;
    let mut response = render(&Open {
        action: format!("{}{}", url.trim_end_matches('/'), door::DOOR_PATH),
        pass,
    })?;
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
