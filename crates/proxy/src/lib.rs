//! The reverse proxy of the ingress, shared by `clawplane serve` (the front
//! door, to an instance's runtime) and the runtime agent (to its gateway on
//! loopback).
//!
//! - HTTP is forwarded with its body streamed both ways over pooled
//!   connections.
//! - A WebSocket upgrade is forwarded, and once both sides answered `101`
//!   the two connections are relayed byte for byte: frames, pings, pongs and
//!   close codes pass unchanged, and a slow reader slows the writer down
//!   (bounded buffers, no queue). A connection ends when either side closes,
//!   after [`Limits::idle`] without traffic either way, or after
//!   [`Limits::total`]. A hop that must read a connection's messages
//!   relays it message by message instead ([`Proxy::forward_with`]).
//! - The client's forwarding headers (`Forwarded`, `X-Forwarded-*`,
//!   `X-Real-IP`, the identity header) and hop-by-hop headers are removed;
//!   the caller sets the ones it vouches for ([`Upstream::set_headers`]), so
//!   `X-Forwarded-For` is always overwritten, never appended.

mod messages;
mod relay;

use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use messages::{relay_messages, Message, MessageFilter};
pub use relay::{relay, RelayEnd};

/// Headers that only describe one hop.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Forwarding and identity headers a client may not set itself.
const FORWARDING: [&str; 8] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-user",
    "x-real-ip",
    "x-openclaw-scopes",
];

/// Where a request goes.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port` of a plain-HTTP upstream (every hop of the ingress is
    /// on loopback or the operator's own network).
    pub authority: String,
    /// Put before the request's path (`/gateway`), or empty.
    pub path_prefix: String,
    /// Set on the forwarded request, after the client's forwarding headers
    /// were removed.
    pub set_headers: HeaderMap,
    /// Further request headers removed (credentials of this hop).
    pub strip: Vec<HeaderName>,
}

/// Bounds of one forwarded request or relayed connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connecting to the upstream.
    pub connect: Duration,
    /// Waiting for the upstream's response headers.
    pub response: Duration,
    /// A WebSocket without traffic either way is closed after this.
    pub idle: Duration,
    /// A WebSocket is closed after this, traffic or not.
    pub total: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(120),
            idle: Duration::from_secs(10 * 60),
            total: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Why a request could not be forwarded.
#[derive(Debug)]
pub enum ProxyError {
    /// No connection, or no answer in time.
    Unreachable,
    /// The request could not be rebuilt for the upstream (a bad path).
    BadRequest,
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyError::Unreachable => "the upstream did not answer",
            ProxyError::BadRequest => "the request could not be forwarded",
        })
    }
}

impl std::error::Error for ProxyError {}

/// A reverse proxy with its connection pool.
#[derive(Clone)]
pub struct Proxy {
    client: Client<HttpConnector, Body>,
    limits: Limits,
}

impl Proxy {
    /// A proxy with these limits.
    pub fn new(limits: Limits) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(limits.connect));
        connector.set_nodelay(true);
        // Shorter than the runtime listener's keep-alive wait (10 s), so a
        // pooled connection is never reused just as the runtime closes it.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build(connector);
        Proxy { client, limits }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Forwards `request` to `upstream` and returns its response. A
    /// WebSocket upgrade the upstream accepts is relayed in the background.
    pub async fn forward(
        &self,
        request: Request<Body>,
        upstream: &Upstream,
    ) -> Result<Response<Body>, ProxyError> {
        self.forward_with(request, upstream, None).await
    }

    /// [`Proxy::forward`], with a WebSocket's messages passed through
    /// `filter` (read and possibly changed) instead of relayed byte for byte.
    /// Compression is then not offered to the upstream, so every message can
    /// be read.
    pub async fn forward_with(
        &self,
        mut request: Request<Body>,
        upstream: &Upstream,
        filter: Option<Box<dyn MessageFilter>>,
    ) -> Result<Response<Body>, ProxyError> {
        let upgrade = wants_upgrade(request.headers());
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let (parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!(
            "http://{}{}{}",
            upstream.authority, upstream.path_prefix, path
        )
        .parse()
        .map_err(|_| ProxyError::BadRequest)?;
        let mut headers = parts.headers;
        clean(&mut headers, &upstream.strip);
        // Forwarding headers go with an address the caller vouches for; a
        // hop that forwards as a direct client sends none.
        let forwarding = upstream.set_headers.contains_key("x-forwarded-for");
        let original = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .filter(|_| forwarding);
        if let Some(v) = original.and_then(|o| HeaderValue::from_str(&o).ok()) {
            headers.insert("x-forwarded-host", v);
        }
        headers.remove(header::HOST);
        for (name, value) in &upstream.set_headers {
            headers.insert(name, value.clone());
        }
        if filter.is_some() {
            headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
        }
        if let Some(protocol) = &upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol.clone());
        }
        let mut out = Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(body)
            .map_err(|_| ProxyError::BadRequest)?;
        *out.headers_mut() = headers;

        let mut response = tokio::time::timeout(self.limits.response, self.client.request(out))
            .await
            .map_err(|_| ProxyError::Unreachable)?
            .map_err(|e| {
                tracing::debug!(error = %e, "upstream request failed");
                ProxyError::Unreachable
            })?;

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(ProxyError::Unreachable);
            };
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let limits = self.limits;
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, upstream)) => {
                        let client = hyper_util::rt::TokioIo::new(client);
                        let upstream = hyper_util::rt::TokioIo::new(upstream);
                        let end = match filter {
                            Some(f) => relay_messages(client, upstream, limits, f).await,
                            None => relay(client, upstream, limits).await,
                        };
                        tracing::debug!(?end, "websocket relay ended");
                    }
                    Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
                }
            });
            let (parts, _) = response.into_parts();
            return Ok(Response::from_parts(parts, Body::empty()));
        }

        let (mut parts, body) = response.into_parts();
        clean_response(&mut parts.headers);
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

/// The protocol a request asks to upgrade to, if it does.
fn wants_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if asks {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Removes hop-by-hop headers (and those the `Connection` header names),
/// forwarding headers and `strip`.
fn clean(headers: &mut HeaderMap, strip: &[HeaderName]) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()).chain(strip) {
        headers.remove(name);
    }
    for name in FORWARDING {
        headers.remove(name);
    }
}

fn clean_response(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_forwarding_and_hop_headers_never_pass() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-user", "admin"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("x-openagents-service-token", "t"),
            ("authorization", "Bearer gateway"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        clean(
            &mut h,
            &[HeaderName::from_static("x-openagents-service-token")],
        );
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, ["authorization"], "only the end-to-end header stays");
    }

    #[test]
    fn upgrades_are_recognised_in_any_connection_list() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_upgrade(&h).is_none(), "no Connection: upgrade");
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(wants_upgrade(&h).unwrap(), "websocket");
    }
}
