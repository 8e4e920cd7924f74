//! Who is at an instance's door, decided before anything reaches its
//! gateway.
//!
//! - **The owner in a browser**: a `clawplane_door` cookie of this host,
//!   issued after the console checked their session (the console's "Open
//!   OpenClaw" hands a one-time, one-minute pass to [`DOOR_PATH`] in a form
//!   post, never in a URL). The runtime then signs them in to the gateway
//!   with its token, which the browser never sees.
//! - **Any other browser** (a request with `Origin` or `Sec-Fetch-*`, or a
//!   page load): refused with a page, including another account's pass.
//! - **Another site's page** in the owner's browser: a request whose
//!   `Origin` is not the instance's own is refused whatever its cookie (the
//!   runtime replaces `Origin` with the gateway's, so the gateway's own
//!   check never sees it), and a pass is taken only from a form of the
//!   console (its `Origin`, or `Referer` without one), so no other page can
//!   sign a browser in to someone else's instance.
//! - **Devices** (no browser markers: phone apps, CLI nodes): passed to the
//!   gateway's own token-and-pairing flow.
//!
//! Passes and door cookies are the owner's account's, each bound to one
//! host, in their own table ([`crate::door_passes`], through which the
//! console issues passes too). Signing out of the console deletes every
//! pass and door cookie of the account, so its browsers are refused at
//! their next request here; expired ones are swept on a schedule with the
//! console's sessions.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use clawplane_domain::Instance;
use clawplane_secrets::ExposeSecret;
use clawplane_store::StoreError;

pub use crate::door_passes::DOOR_PATH;
use crate::door_passes::{self, DOOR_LIFETIME};
use crate::state::AppState;

/// The cookie of the owner's browser on an instance's host.
pub const DOOR_COOKIE: &str = "clawplane_door";

/// Who is at the door.
#[derive(Debug, PartialEq, Eq)]
pub enum Visitor {
    /// The instance's owner, in a browser.
    Owner,
    /// A device client, for the gateway's token-and-pairing flow.
    Device,
    /// A browser that may not pass, and why (a page says it).
    Refused(StatusCode, &'static str),
}

const SIGN_IN_FIRST: &str =
    "Sign in to the console and use \u{201c}Open OpenClaw\u{201d} to reach this gateway.";
const NOT_YOURS: &str = "This OpenClaw belongs to another account. Sign in to the console with the account that owns it.";
const FOREIGN: &str =
    "This request came from another site, so it was refused. Open OpenClaw from the console.";

/// Origins as the browser at an instance's host names them: its scheme
/// (`https` only when a trusted proxy says so), the ingress domain, and the
/// port of the request's `Host` (which the console's links share).
#[derive(Debug)]
pub struct Site<'a> {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The ingress domain.
    pub domain: &'a str,
    /// `:8080`, or empty.
    pub port: String,
}

impl Site<'_> {
    /// Whether `origin` is `runtime_name`'s own host.
    fn is_instance(&self, origin: &str, runtime_name: &str) -> bool {
        self.host_of(origin).is_some_and(|host| {
            host.strip_suffix(self.domain)
                .and_then(|rest| rest.strip_suffix('.'))
                == Some(runtime_name)
        })
    }

    /// Whether `origin` is the console's: the ingress domain itself, or, on
    /// the `localhost` domain (whose instance hosts are loopback), serve's
    /// loopback address on the same port.
    fn is_console(&self, origin: &str) -> bool {
        self.host_of(origin).is_some_and(|host| {
            host == self.domain
                || (self.domain == "localhost" && (host == "127.0.0.1" || host == "[::1]"))
        })
    }

    /// The host of `origin` (lowercased) when its scheme and port are this
    /// site's; `null` and anything else unparsable is no one's.
    fn host_of(&self, origin: &str) -> Option<String> {
        let origin = origin.to_ascii_lowercase();
        let host = origin
            .strip_prefix(self.scheme)?
            .strip_prefix("://")?
            .strip_suffix(self.port.as_str())?;
        // A port left over is another port's; `[::1]` is an address.
        let bare = !host.contains('/') && (host.ends_with(']') || !host.contains(':'));
        (!host.is_empty() && bare).then(|| host.to_owned())
    }
}

/// Whether every `Origin` of `headers` (none counts) is `runtime_name`'s own.
fn same_origin(headers: &HeaderMap, site: &Site, runtime_name: &str) -> bool {
    headers
        .get_all(header::ORIGIN)
        .iter()
        .all(|v| v.to_str().is_ok_and(|o| site.is_instance(o, runtime_name)))
}

/// Whether a pass post may be taken: a browser's (one with `Origin`,
/// `Referer` or `Sec-Fetch-*`) must name the console as its origin, by
/// `Origin` or, without one, `Referer`; a client with none of them is a
/// holder of the pass itself, judged by the pass alone.
fn from_console(headers: &HeaderMap, site: &Site) -> bool {
    let named = match headers.get(header::ORIGIN) {
        Some(origin) => Some(origin),
        None => headers.get(header::REFERER),
    };
    let Some(named) = named else {
        return !from_browser(headers);
    };
    named
        .to_str()
        .ok()
        .map(origin_of)
        .is_some_and(|o| site.is_console(o))
}

/// `scheme://host[:port]` of a URL (an origin is its own).
fn origin_of(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    &url[..end]
}

/// Whether a request comes from a web browser: browsers send `Origin` on
/// WebSockets and cross-origin requests, and `Sec-Fetch-*` on every request
/// to a secure context (`https`, and `*.localhost`).
pub fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers.contains_key("sec-fetch-mode")
        || headers.contains_key("sec-fetch-site")
}

/// Who sent `headers` to `instance`'s host, as seen at `site`.
pub async fn visitor(
    state: &AppState,
    instance: &Instance,
    runtime_name: &str,
    site: &Site<'_>,
    headers: &HeaderMap,
) -> Result<Visitor, StoreError> {
    if !same_origin(headers, site, runtime_name) {
        return Ok(Visitor::Refused(StatusCode::FORBIDDEN, FOREIGN));
    }
    let browser = from_browser(headers);
    if let Some(user) = &state.config.console_user {
        // Single-user mode: whoever reaches the console is its user.
        return Ok(match (browser, *user == instance.user_id) {
            (false, _) => Visitor::Device,
            (true, true) => Visitor::Owner,
            (true, false) => Visitor::Refused(StatusCode::FORBIDDEN, NOT_YOURS),
        });
    }
    let jar = CookieJar::from_headers(headers);
    let Some(cookie) = jar.get(DOOR_COOKIE) else {
        return Ok(if browser {
            Visitor::Refused(StatusCode::UNAUTHORIZED, SIGN_IN_FIRST)
        } else {
            Visitor::Device
        });
    };
    let owner = door_passes::door_owner(&state.store, cookie.value(), runtime_name).await?;
    Ok(match owner {
        Some(owner) if owner == instance.user_id => Visitor::Owner,
        Some(_) => Visitor::Refused(StatusCode::FORBIDDEN, NOT_YOURS),
        None => Visitor::Refused(StatusCode::UNAUTHORIZED, SIGN_IN_FIRST),
    })
}

/// `POST /__clawplane/door` on an instance's host: the console's pass
/// (used once) becomes the door cookie, then the gateway's start page. A
/// post from another site is refused before its pass is looked at.
pub async fn enter(
    state: &AppState,
    instance: &Instance,
    runtime_name: &str,
    site: &Site<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, (StatusCode, &'static str)> {
    if !from_console(headers, site) {
        return Err((StatusCode::FORBIDDEN, FOREIGN));
    }
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(body).unwrap_or_default();
    let pass = form
        .get("pass")
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .ok_or((StatusCode::BAD_REQUEST, SIGN_IN_FIRST))?;
    let busy = |e: StoreError| {
        tracing::warn!(error = %e, "door pass lookup failed");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is busy. Try again in a moment.",
        )
    };
    // A pass is used once, whatever happens next.
    let owner = door_passes::take_handoff(&state.store, pass, runtime_name)
        .await
        .map_err(busy)?
        .ok_or((StatusCode::UNAUTHORIZED, SIGN_IN_FIRST))?;
    if owner != instance.user_id {
        return Err((StatusCode::FORBIDDEN, NOT_YOURS));
    }
    let token = door_passes::issue_door(&state.store, &owner, runtime_name)
        .await
        .map_err(busy)?;
    let jar = CookieJar::new().add(door_cookie(token.expose_secret().to_owned(), headers));
    Ok((
        jar,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Redirect::to("/"),
    )
        .into_response())
}

/// The door cookie, with the attributes of every clawplane cookie (whole
/// site, `HttpOnly`, `SameSite=Lax`, `Secure` when `X-Forwarded-Proto` says
/// `https`, as the console's session cookie), for as long as it lives.
fn door_cookie(value: String, headers: &HeaderMap) -> Cookie<'static> {
    let behind_tls = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut cookie = Cookie::build((DOOR_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(behind_tls)
        .build();
    cookie.set_max_age(time::Duration::seconds(DOOR_LIFETIME.num_seconds()));
    cookie
}

/// The request's `Cookie` header without the door cookie (the gateway never
/// sees clawplane's credentials).
pub fn without_door_cookie(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with(&format!("{DOOR_COOKIE}=")))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
        if !kept.is_empty() {
            headers.insert(header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_told_from_devices() {
        let mut h = HeaderMap::new();
        assert!(!from_browser(&h), "a CLI node sends none of these");
        h.insert("sec-fetch-mode", HeaderValue::from_static("navigate"));
        assert!(from_browser(&h));
        let mut h = HeaderMap::new();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://x.localhost"),
        );
        assert!(from_browser(&h));
    }

    fn site(scheme: &'static str, port: &str) -> Site<'static> {
        Site {
            scheme,
            domain: "localhost",
            port: port.to_owned(),
        }
    }

    fn with(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn only_the_instances_own_origin_is_same_origin() {
        let s = site("http", ":8080");
        let same = |o| same_origin(&with(header::ORIGIN, o), &s, "oc-ana");
        assert!(same_origin(&HeaderMap::new(), &s, "oc-ana"), "no Origin");
        assert!(same("http://oc-ana.localhost:8080"));
        assert!(same("HTTP://OC-Ana.localhost:8080"));
        for foreign in [
            "null",
            "http://evil.example",
            "http://oc-bob.localhost:8080",
            "http://oc-ana.localhost:9090",
            "http://oc-ana.localhost",
            "https://oc-ana.localhost:8080",
            "http://x.oc-ana.localhost:8080",
            "http://localhost:8080",
            "http://oc-ana.localhost:8080.evil.example",
        ] {
            assert!(!same(foreign), "{foreign}");
        }
        let tls = site("https", "");
        let h = with(header::ORIGIN, "https://oc-ana.localhost");
        assert!(same_origin(&h, &tls, "oc-ana"));
    }

    #[test]
    fn a_pass_is_taken_only_from_the_console() {
        let s = site("http", ":8080");
        let from = |name, value| from_console(&with(name, value), &s);
        assert!(from(header::ORIGIN, "http://localhost:8080"));
        assert!(from(header::ORIGIN, "http://127.0.0.1:8080"));
        assert!(from(header::ORIGIN, "http://[::1]:8080"));
        assert!(from(header::REFERER, "http://localhost:8080/console/open"));
        assert!(from_console(&HeaderMap::new(), &s), "no browser markers");
        assert!(!from(header::ORIGIN, "null"));
        assert!(!from(header::ORIGIN, "http://evil.example"));
        assert!(!from(header::ORIGIN, "http://oc-ana.localhost:8080"));
        assert!(!from(header::ORIGIN, "http://localhost:9090"));
        assert!(!from(header::REFERER, "http://evil.example/localhost:8080"));
        assert!(!from("sec-fetch-site".parse().unwrap(), "cross-site"));
        let mut h = with(header::ORIGIN, "http://evil.example");
        h.insert(
            header::REFERER,
            HeaderValue::from_static("http://localhost:8080/"),
        );
        assert!(!from_console(&h, &s), "Origin decides when there is one");
    }

    #[test]
    fn the_door_cookie_never_reaches_the_gateway() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; clawplane_door=secret; b=2"),
        );
        without_door_cookie(&mut h);
        assert_eq!(h.get(header::COOKIE).unwrap(), "a=1; b=2");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("clawplane_door=secret"),
        );
        without_door_cookie(&mut h);
        assert!(h.get(header::COOKIE).is_none());
    }

    #[test]
    fn the_door_cookie_is_http_only_and_secure_behind_tls() {
        let plain = door_cookie("v".into(), &HeaderMap::new());
        assert_eq!(plain.http_only(), Some(true));
        assert_eq!(plain.same_site(), Some(SameSite::Lax));
        assert_eq!(plain.path(), Some("/"));
        assert_eq!(plain.secure(), Some(false));
        assert_eq!(plain.max_age(), Some(time::Duration::hours(12)));
        let h = with("x-forwarded-proto".parse().unwrap(), "HTTPS");
        assert_eq!(door_cookie("v".into(), &h).secure(), Some(true));
    }
}
