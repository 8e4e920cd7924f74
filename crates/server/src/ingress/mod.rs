//! The front door: `<runtime_name>.<domain>` (on the embedded defaults
//! `<runtime_name>.localhost:<port>`, which browsers resolve to loopback)
//! reaches that instance's gateway, HTTP and WebSocket, through its runtime
//! (`/gateway/...` on the runtime agent, which forwards to the gateway on
//! loopback).
//!
//! The client's address is decided here, once: the peer's, or, when the
//! peer is one of the operator's trusted proxies, the right-most address of
//! `X-Forwarded-For` that is not one of them. It is sent on as the only
//! `X-Forwarded-For` (overwritten, never appended). The service token that
//! opens the runtime's door travels in a header the gateway never sees.
//! So is the scheme the browser used (`https` only when a trusted proxy's
//! `X-Forwarded-Proto` says so): with the ingress domain and the `Host`'s
//! port it makes the origins the door judges `Origin` by ([`door::Site`]).

pub mod door;

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use clawplane_domain::{InstanceStatus, RuntimeName};
use clawplane_http::v1::headers;
use clawplane_proxy::{Limits, Upstream};
use clawplane_secrets::ExposeSecret;

pub use crate::peer::{client_address, port_suffix};

use crate::state::AppState;

/// How clients reach their gateway through `serve`.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// `<runtime_name>.<domain>` is an instance's gateway (default `localhost`).
    pub domain: String,
    /// Proxies in front of `serve` whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Request and WebSocket limits.
    pub limits: Limits,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            domain: "localhost".into(),
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// The runtime name a request's host addresses, if it is an ingress host.
pub fn addressed(headers: &HeaderMap, uri: &axum::http::Uri, domain: &str) -> Option<String> {
    let host = uri
        .host()
        .map(str::to_owned)
        .or_else(|| {
            let h = headers.get(header::HOST)?.to_str().ok()?;
            Some(match h.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
                _ => h.to_owned(),
            })
        })?
        .to_ascii_lowercase();
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then(|| label.to_owned())
}

/// Runs before everything else: a request for an ingress host goes to its
/// gateway; any other request goes on to the API and the console.
pub async fn route_by_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let domain = &state.config.ingress.domain;
    let Some(label) = addressed(request.headers(), request.uri(), domain) else {
        return next.run(request).await;
    };
    let port = port_suffix(request.headers());
    match forward(&state, &label, request).await {
        Ok(response) => {
            state
                .metrics
                .ingress(if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    "websocket"
                } else {
                    "forwarded"
                });
            response
        }
        Err((status, message)) => {
            state.metrics.ingress(match status {
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::BAD_GATEWAY => "unreachable",
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "refused",
                _ => "unavailable",
            });
            page(status, &message, &format!("http://{domain}{port}/console"))
        }
    }
}

async fn forward(
    state: &AppState,
    label: &str,
    request: Request,
) -> Result<Response, (StatusCode, String)> {
    let unknown = || {
        (
            StatusCode::NOT_FOUND,
            format!("There is no OpenClaw instance at {label}. Check the address, or create your instance in the console."),
        )
    };
    let name = RuntimeName::parse(label).map_err(|_| unknown())?;
    let instance = state
        .store
        .live_instance_by_runtime_name(&name)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "ingress lookup failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is busy. Try again in a moment.".to_owned(),
            )
        })?
        .ok_or_else(unknown)?;
    let unavailable = |why: &str| (StatusCode::SERVICE_UNAVAILABLE, why.to_owned());
    match instance.status {
        InstanceStatus::Ready => {}
        InstanceStatus::Provisioning => {
            return Err(unavailable(
                "This instance is still being created. Try again when the console says Ready.",
            ))
        }
        InstanceStatus::Stopped => {
            return Err(unavailable(
                "This instance's gateway is stopped. Its owner can start it on the console's Usage page.",
            ))
        }
        InstanceStatus::Error | InstanceStatus::Deleted => return Err(unknown()),
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .ok_or_else(|| unavailable("The client's address is unknown."))?;
    let trusted = &state.config.ingress.trusted_proxies;
    let proto = scheme(peer, request.headers(), trusted);
    let site = door::Site {
        scheme: proto,
        domain: &state.config.ingress.domain,
        port: port_suffix(request.headers()),
    };
    if request.uri().path() == door::DOOR_PATH {
        return enter_door(state, &instance, label, &site, request).await;
    }
    let visitor = door::visitor(state, &instance, label, &site, request.headers())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "ingress door lookup failed");
            unavailable("The service is busy. Try again in a moment.")
        })?;
    let owner = match visitor {
        door::Visitor::Owner => true,
        door::Visitor::Device => false,
        door::Visitor::Refused(status, why) => return Err((status, why.to_owned())),
    };
    let mut request = request;
    door::without_door_cookie(request.headers_mut());
    let target = state
        .instances
        .target_of(&instance)
        .await
        .map_err(|_| unavailable("This instance cannot be reached right now."))?;
    let (authority, prefix) = split_runtime_url(&target.base_url).ok_or_else(|| {
        tracing::warn!(instance = %instance.id, "the ingress needs an http:// runtime url");
        unavailable("This instance cannot be reached through this address.")
    })?;

    let client = client_address(peer, request.headers(), trusted);
    let mut token = HeaderValue::from_str(target.service_token.expose_secret())
        .map_err(|_| unavailable("This instance cannot be reached right now."))?;
    token.set_sensitive(true);
    let mut set_headers = HeaderMap::new();
    set_headers.insert(headers::SERVICE_TOKEN, token);
    set_headers.insert(
        headers::FORWARDED_FOR,
        HeaderValue::from_str(&client.to_string()).expect("an address is a header value"),
    );
    set_headers.insert(headers::FORWARDED_PROTO, HeaderValue::from_static(proto));
    if owner {
        set_headers.insert(
            OWNER_HEADER,
            HeaderValue::from_static(headers::GATEWAY_OWNER_YES),
        );
    }
    let upstream = Upstream {
        authority,
        path_prefix: format!("{prefix}/gateway"),
        set_headers,
        strip: vec![OWNER_HEADER],
    };
    state
        .ingress
        .forward(request, &upstream)
        .await
        .map_err(|e| {
            tracing::debug!(instance = %instance.id, error = %e, "ingress forward failed");
            (
                StatusCode::BAD_GATEWAY,
                "The gateway did not answer. It may be restarting: try again in a minute."
                    .to_owned(),
            )
        })
}

/// The scheme the browser used: `https` when a trusted proxy says so in
/// `X-Forwarded-Proto`, else `http` (`serve` itself speaks only HTTP).
fn scheme(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> &'static str {
    let tls = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    if tls && trusted.contains(&peer) {
        "https"
    } else {
        "http"
    }
}

/// The header with which `serve` tells the runtime the owner is signed in
/// (the runtime's `api::owner`).
const OWNER_HEADER: HeaderName = headers::GATEWAY_OWNER;

/// [`door::DOOR_PATH`]: only the console's form post, with a small body.
async fn enter_door(
    state: &AppState,
    instance: &clawplane_domain::Instance,
    label: &str,
    site: &door::Site<'_>,
    request: Request,
) -> Result<Response, (StatusCode, String)> {
    let refused = |(status, why): (StatusCode, &str)| (status, why.to_owned());
    if request.method() != axum::http::Method::POST {
        return Err(refused((
            StatusCode::METHOD_NOT_ALLOWED,
            "Open OpenClaw from the console.",
        )));
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 4096)
        .await
        .map_err(|_| refused((StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.")))?;
    door::enter(state, instance, label, site, &parts.headers, &body)
        .await
        .map_err(refused)
}

/// `http://host:port/path` as (`host:port`, `/path`).
fn split_runtime_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    (!authority.is_empty()).then(|| (authority.to_owned(), path.to_owned()))
}

#[derive(Template)]
#[template(path = "ingress_error.html")]
struct IngressError<'a> {
    message: &'a str,
    console: &'a str,
}

fn page(status: StatusCode, message: &str, console: &str) -> Response {
    let body = IngressError { message, console }
        .render()
        .unwrap_or_else(|_| message.to_owned());
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        addressed(&headers, &"/".parse().unwrap(), "localhost")
    }

    #[test]
    fn only_one_label_under_the_domain_is_an_instance() {
        assert_eq!(host("oc-ana.localhost:8080").as_deref(), Some("oc-ana"));
        assert_eq!(host("OC-Ana.LOCALHOST").as_deref(), Some("oc-ana"));
        assert_eq!(host("localhost:8080"), None);
        assert_eq!(host("127.0.0.1:8080"), None);
        assert_eq!(host("a.b.localhost"), None);
        assert_eq!(host("evil-localhost"), None);
        assert_eq!(host(".localhost"), None);
    }

    #[test]
    fn runtime_urls_split_into_authority_and_path() {
        assert_eq!(
            split_runtime_url("http://127.0.0.1:4000"),
            Some(("127.0.0.1:4000".into(), String::new()))
        );
        assert_eq!(
            split_runtime_url("http://rt.internal:80/x/"),
            Some(("rt.internal:80".into(), "/x".into()))
        );
        assert_eq!(split_runtime_url("https://rt.example.com"), None);
    }
}
