//! The browser protections every console response carries: no framing by
//! any site (`X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`), a
//! Content Security Policy that lets the pages load only the console's own
//! script and stylesheet and send forms only to the console, no MIME
//! sniffing, and no address in the `Referer` of requests to other sites.
//!
//! They are layers of the console's router only: the ingress, in front of
//! it, relays gateway responses untouched (OpenClaw's Control UI sets its
//! own). A handler may set its own policy and referrer policy first (the
//! "Open OpenClaw" page, whose form goes to the instance's host:
//! [`door_page`]); the layers keep those.

use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

/// The console's Content Security Policy: everything from the console's own
/// origin (its script, its stylesheet, `fetch` by the script), no inline
/// script or style, no plugins, no `<base>`, forms only to the console, and
/// no framing.
pub const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's referrer policy: the full address to the console itself,
/// nothing to other sites.
pub const REFERRER: &str = "same-origin";

/// `router` with the console's protections on every response.
pub fn protect<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            REFERRER_POLICY,
            HeaderValue::from_static(REFERRER),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

/// The policies of the page that posts the door's pass to `door_origin`
/// (`http://oc-ana.localhost:8080`): the console's, with that origin as the
/// one place its form may go, and a referrer policy under which the browser
/// names the console in `Origin` (under `same-origin` a cross-origin post
/// says `Origin: null`, which the door refuses).
pub fn door_page(headers: &mut HeaderMap, door_origin: &str) {
    // The origin is built from the runtime name, the configured domain and
    // a numeric port; anything else in it would end up in the policy.
    let plain = door_origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:/[]".contains(&b));
    let form_to = if plain { door_origin } else { "'none'" };
    let policy = POLICY.replace("form-action 'self'", &format!("form-action {form_to}"));
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_door_page_may_post_only_to_its_door() {
        let mut h = HeaderMap::new();
        door_page(&mut h, "http://oc-ana.localhost:8080");
        let policy = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("form-action http://oc-ana.localhost:8080;"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("form-action 'self'"));
        assert_eq!(h[REFERRER_POLICY], "strict-origin-when-cross-origin");

        let mut h = HeaderMap::new();
        door_page(&mut h, "http://x; script-src *");
        let policy = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("form-action 'none'"), "{policy}");
        assert!(!policy.contains("script-src *"));
    }
}
