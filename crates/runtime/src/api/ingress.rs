//! `/gateway/...`: the ingress's last hop. The control plane forwards a
//! client's HTTP request or WebSocket here with the service token in
//! `X-OpenAgents-Service-Token` (never in `Authorization`, which belongs to
//! the gateway's own clients) and the client's address in
//! `X-Forwarded-For`. The agent forwards it to its gateway on loopback,
//! vouching for that address: the gateway trusts only loopback as its proxy
//! (`gateway.trustedProxies`), so a device arriving this way is a remote
//! device with its real address, and needs approval.
//!
//! A request `serve` marks as the instance owner's (`X-OpenAgents-Gateway-Owner:
//! 1`, after checking their console session) is signed in with the gateway
//! token instead, without the token ever reaching the browser
//! ([`super::owner`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clawplane_http::v1::{headers, paths};
use clawplane_proxy::{MessageFilter, Upstream};
use clawplane_secrets::{constant_time_eq, ExposeSecret};

use super::error::ApiError;
use super::owner::OwnerSignIn;
use crate::shared::Shared;

/// The path prefix of the ingress on the agent.
pub const PREFIX: &str = paths::GATEWAY_PREFIX;

/// Any method on `/gateway` and below.
pub async fn forward(State(shared): State<Arc<Shared>>, mut request: Request) -> Response {
    let given = request.headers().get(headers::SERVICE_TOKEN);
    let expected = shared.config.service_token.expose_secret().as_bytes();
    if !given.is_some_and(|t| !t.is_empty() && constant_time_eq(t.as_bytes(), expected)) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid service token: send X-OpenAgents-Service-Token",
        )
        .into_response();
    }
    let Some(uri) = without_prefix(request.uri()) else {
        return ApiError::bad_request("bad path").into_response();
    };
    *request.uri_mut() = uri;
    if request
        .headers()
        .get(headers::GATEWAY_OWNER)
        .is_some_and(|v| v.as_bytes() == headers::GATEWAY_OWNER_YES.as_bytes())
    {
        return forward_owner(&shared, request).await;
    }
    // Without an address the gateway would take the request for a local
    // one and approve its device silently: the control plane must say who.
    let Some(client) = request
        .headers()
        .get(headers::FORWARDED_FOR)
        .filter(|v| {
            v.to_str()
                .is_ok_and(|s| s.trim().parse::<std::net::IpAddr>().is_ok())
        })
        .cloned()
    else {
        return ApiError::bad_request("X-Forwarded-For must name the client's address")
            .into_response();
    };
    let proto = request.headers().get(headers::FORWARDED_PROTO).cloned();

    let mut set_headers = HeaderMap::new();
    set_headers.insert(headers::FORWARDED_FOR, client);
    set_headers.insert(
        headers::FORWARDED_PROTO,
        proto.unwrap_or(HeaderValue::from_static("http")),
    );
    let upstream = Upstream {
        authority: gateway_authority(&shared),
        path_prefix: String::new(),
        set_headers,
        strip: vec![headers::SERVICE_TOKEN, headers::GATEWAY_OWNER],
    };
    relay(&shared, request, &upstream, None).await
}

/// The owner, vouched for by `serve`: a direct local client of the gateway,
/// authenticated with the gateway token ([`super::owner`]).
async fn forward_owner(shared: &Shared, request: Request) -> Response {
    let token = &shared.config.gateway_token;
    let mut set_headers = HeaderMap::new();
    let authority = gateway_authority(shared);
    // The gateway's own origin: the owner's Control UI is same-origin to it.
    if let Ok(origin) = HeaderValue::from_str(&format!("http://{authority}")) {
        set_headers.insert(header::ORIGIN, origin);
    }
    let upgrade = request.headers().contains_key(header::UPGRADE);
    if !upgrade {
        let Ok(mut bearer) = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        else {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "bad token")
                .into_response();
        };
        bearer.set_sensitive(true);
        set_headers.insert(header::AUTHORIZATION, bearer);
    }
    let upstream = Upstream {
        authority,
        path_prefix: String::new(),
        set_headers,
        strip: vec![
            headers::SERVICE_TOKEN,
            headers::GATEWAY_OWNER,
            header::AUTHORIZATION,
            header::COOKIE,
        ],
    };
    let filter: Option<Box<dyn MessageFilter>> =
        upgrade.then(|| Box::new(OwnerSignIn::new(token.clone())) as Box<dyn MessageFilter>);
    relay(shared, request, &upstream, filter).await
}

fn gateway_authority(shared: &Shared) -> String {
    format!("127.0.0.1:{}", shared.config.gateway_port)
}

async fn relay(
    shared: &Shared,
    request: Request,
    upstream: &Upstream,
    filter: Option<Box<dyn MessageFilter>>,
) -> Response {
    match shared
        .proxy
        .forward_with(request.map(Body::new), upstream, filter)
        .await
    {
        Ok(response) => response,
        Err(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "gateway_unreachable",
            format!("{e}: the gateway may be starting or stopped"),
        )
        .into_response(),
    }
}

/// `/gateway/x?y` as `/x?y`.
fn without_prefix(uri: &Uri) -> Option<Uri> {
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let rest = pq.strip_prefix(PREFIX)?;
    let rest = if rest.is_empty() || rest.starts_with('?') {
        format!("/{rest}")
    } else if rest.starts_with('/') {
        rest.to_owned()
    } else {
        return None;
    };
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_removed_and_nothing_else() {
        let p = |s: &str| without_prefix(&s.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(p("/gateway").as_deref(), Some("/"));
        assert_eq!(p("/gateway/").as_deref(), Some("/"));
        assert_eq!(p("/gateway?a=1").as_deref(), Some("/?a=1"));
        assert_eq!(
            p("/gateway/v1/responses?x").as_deref(),
            Some("/v1/responses?x")
        );
        assert_eq!(p("/gatewayx"), None);
    }
}
