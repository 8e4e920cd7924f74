//! The ingress: which host is an instance's (`ingress::addressed`), the
//! port browsers name (`ingress::port_suffix`), who the client is
//! (`ingress::client_address`), and the whole router with any `Host`, any
//! request target and any method, over raw HTTP.
//!
//! - `addressed` names a label only for exactly one DNS label under the
//!   domain (any case, any port), and then the lower-cased label itself.
//! - `client_address` is the peer, or behind trusted proxies the right-most
//!   hop that is not one, and never an address nobody sent.
//! - Through `serve`: every request gets a reply (a panicking handler would
//!   drop the connection), never a 500; a 5xx is only the ingress's 502 or
//!   503 for the instance that has no runtime, or `/readyz`'s own; a request is
//!   answered by the ingress exactly when its host is an instance's.

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;

use axum::http::{HeaderMap, HeaderValue, Uri};
use bolero::check;
use clawplane_fuzz::app::{App, INGRESS_PAGE_MARKER, RUNTIME_NAME};
use clawplane_fuzz::text::{text, Cursor};
use clawplane_fuzz::wire::RawRequest;
use clawplane_server::ingress::{addressed, client_address, port_suffix};

/// Pieces of hosts.
const HOST_TOKENS: &[&str] = &[
    "oc-fuzz",
    "OC-FUZZ",
    "oc-none",
    ".",
    "localhost",
    "LocalHost",
    ":",
    "8080",
    "127.0.0.1",
    "[::1]",
    "example.com",
    "a",
    "-",
    "@",
    "%2e",
    " ",
    "\t",
    "\u{e9}",
    "xn--",
    "..",
    "_",
];

/// Domains an operator might configure (lower case, as the CLI gives them).
const DOMAINS: &[&str] = &["localhost", "example.com", "apps.example.com"];

/// A `Host` value: built from a label, the domain (or a near miss) and a
/// port, or raw tokens, or raw bytes.
fn host(cursor: &mut Cursor, domain: &str, port: &str) -> Vec<u8> {
    match cursor.byte() % 4 {
        0 => {
            let len = usize::from(cursor.byte() % 24);
            (0..len).map(|_| cursor.byte()).collect()
        }
        1 => {
            let len = usize::from(cursor.byte() % 8);
            let picks: Vec<u8> = (0..len).map(|_| cursor.byte()).collect();
            text(&[&[1u8][..], &picks].concat(), HOST_TOKENS).into_bytes()
        }
        _ => {
            let label = cursor.pick(&[
                RUNTIME_NAME,
                "OC-Fuzz",
                "oc-none",
                "a.oc-fuzz",
                "",
                "-x",
                "oc_fuzz",
                "x@oc-fuzz",
            ]);
            let dot = cursor.pick(&[".", ".", ".", "", ".."]);
            let upper = domain.to_ascii_uppercase();
            let evil = format!("evil-{domain}");
            let trailing = format!("{domain}.");
            let suffixed = format!("{domain}.evil.example");
            let domain_text = match cursor.byte() % 8 {
                0 => upper,
                1 => evil,
                2 => trailing,
                3 => suffixed,
                _ => domain.to_owned(),
            };
            let port_text = cursor.pick(&["", port, ":", ":x", ":80:81", ":08080"]);
            format!("{label}{dot}{domain_text}{port_text}").into_bytes()
        }
    }
}

/// The lower-cased host part of a `Host` value (no port), as a browser's
/// URL parser would read it, or `None` when it is no URL host at all.
fn url_host(host: &str) -> Option<String> {
    let parsed = url::Url::parse(&format!("http://{host}/")).ok()?;
    // The parser accepts things a Host header never holds.
    (!host.contains(['@', '/', '\\', '?', '#', '%', ' ', '\t'])).then_some(())?;
    parsed.host_str().map(str::to_ascii_lowercase)
}

#[test]
fn only_one_label_under_the_domain_is_an_instance() {
    check!()
        .with_iterations(20_000)
        .with_max_len(64)
        .for_each(|bytes| {
            let mut cursor = Cursor::new(bytes);
            let domain = cursor.pick(DOMAINS);
            let absolute = cursor.byte() % 5 == 0;
            let host_bytes = host(&mut cursor, domain, ":8080");
            let Ok(value) = HeaderValue::from_bytes(&host_bytes) else {
                return;
            };
            let mut headers = HeaderMap::new();
            headers.insert("host", value);
            let uri: Uri = if absolute {
                match format!("http://{}/x", String::from_utf8_lossy(&host_bytes)).parse() {
                    Ok(uri) => uri,
                    Err(_) => return,
                }
            } else {
                Uri::from_static("/")
            };
            let Some(label) = addressed(&headers, &uri, domain) else {
                // A valid instance host, written plainly, must be found.
                let text = String::from_utf8_lossy(&host_bytes).to_ascii_lowercase();
                let bare = text.strip_suffix(":8080").unwrap_or(&text);
                if let Some(label) = bare.strip_suffix(&format!(".{domain}")) {
                    let dns = !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                    assert!(!dns || absolute, "{text:?} under {domain} is not found");
                }
                return;
            };
            assert!(!label.is_empty() && !label.contains('.'), "{label:?}");
            assert_eq!(label, label.to_ascii_lowercase());
            // What was named is the label of a host under the domain.
            let named = match uri.host() {
                Some(h) => h.to_ascii_lowercase(),
                None => {
                    let text = std::str::from_utf8(&host_bytes).expect("named hosts are text");
                    let lower = text.to_ascii_lowercase();
                    match lower.rsplit_once(':') {
                        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
                            name.to_owned()
                        }
                        _ => lower,
                    }
                }
            };
            assert_eq!(named, format!("{label}.{domain}"), "{host_bytes:?}");
            // A browser would read the same host, when it reads one.
            if let Some(browser) = url_host(&String::from_utf8_lossy(&host_bytes)) {
                if !absolute {
                    assert_eq!(browser, named, "{host_bytes:?}");
                }
            }
        });
}

#[test]
fn the_port_suffix_is_the_hosts_own_digits() {
    check!()
        .with_iterations(20_000)
        .with_max_len(48)
        .for_each(|bytes| {
            let mut cursor = Cursor::new(bytes);
            let host_bytes = host(&mut cursor, "localhost", ":8080");
            let Ok(value) = HeaderValue::from_bytes(&host_bytes) else {
                return;
            };
            let mut headers = HeaderMap::new();
            headers.insert("host", value);
            let suffix = port_suffix(&headers);
            if suffix.is_empty() {
                return;
            }
            let digits = suffix.strip_prefix(':').expect("a suffix starts with ':'");
            assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
            assert!(host_bytes.ends_with(suffix.as_bytes()), "{host_bytes:?}");
        });
}

/// Addresses a peer or a hop may have.
const ADDRESSES: &[&str] = &[
    "127.0.0.1",
    "10.0.0.2",
    "203.0.113.7",
    "198.51.100.1",
    "::1",
    "2001:db8::1",
    "[::1]",
    "garbage",
    "",
    " 203.0.113.8 ",
    "unknown",
    "1.2.3.4:80",
];

#[test]
fn the_client_is_the_right_most_hop_no_trusted_proxy_vouches_for() {
    check!()
        .with_iterations(20_000)
        .with_max_len(40)
        .for_each(|bytes| {
            let mut cursor = Cursor::new(bytes);
            let parse = |s: &str| s.parse::<IpAddr>().ok();
            let ips: Vec<IpAddr> = ADDRESSES.iter().filter_map(|a| parse(a)).collect();
            let peer = cursor.pick(&ips);
            let trusted: Vec<IpAddr> = ips
                .iter()
                .copied()
                .filter(|_| cursor.byte() % 2 == 0)
                .collect();
            let mut headers = HeaderMap::new();
            let mut hops: Vec<String> = Vec::new();
            for _ in 0..cursor.byte() % 3 {
                let line: Vec<&str> = (0..1 + cursor.byte() % 3)
                    .map(|_| cursor.pick(ADDRESSES))
                    .collect();
                hops.extend(line.iter().flat_map(|l| l.split(',')).map(str::to_owned));
                let value = HeaderValue::from_str(&line.join(",")).expect("ASCII");
                headers.append("x-forwarded-for", value);
            }
            let client = client_address(peer, &headers, &trusted);
            // The rule, stated from the outside in: untrusted peers are
            // themselves; else walk the hops from the right, skipping
            // trusted ones, stopping at the first that is no address.
            let expected = if !trusted.contains(&peer) {
                peer
            } else {
                let mut found = peer;
                for hop in hops.iter().rev() {
                    match parse(hop.trim()) {
                        Some(ip) if trusted.contains(&ip) => continue,
                        Some(ip) => {
                            found = ip;
                            break;
                        }
                        None => break,
                    }
                }
                found
            };
            assert_eq!(
                client, expected,
                "peer {peer}, trusted {trusted:?}, hops {hops:?}"
            );
            assert!(
                client == peer || hops.iter().any(|h| parse(h.trim()) == Some(client)),
                "{client} was sent by nobody"
            );
        });
}

/// Pieces of request paths.
const PATH_TOKENS: &[&str] = &[
    "/",
    "api",
    "openclaw",
    "console",
    "control",
    "__clawplane",
    "door",
    "healthz",
    "readyz",
    "metrics",
    "openapi.json",
    "instance",
    "billing",
    "ledger",
    "tokens",
    "..",
    ".",
    "%2e",
    "%2F",
    "//",
    "?",
    "#",
    "=",
    "&",
    "user_id",
    "x",
    "é",
    "%00",
    "%",
    "*",
    "sign-in",
    "open",
    "assets",
    "\u{0}",
    "\\",
    "%ff",
    "~",
];

const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE", "FOO",
];

#[test]
fn any_host_and_path_is_answered_and_never_500() {
    let app = AssertUnwindSafe(App::start());
    let port = app.port_suffix();
    check!()
        .with_iterations(2_500)
        .with_max_len(96)
        .for_each(|bytes| {
            let mut cursor = Cursor::new(bytes);
            let method = cursor.pick(METHODS);
            let host_bytes = host(&mut cursor, "localhost", &port);
            let len = usize::from(cursor.byte() % 10);
            let picks: Vec<u8> = (0..len).map(|_| cursor.byte()).collect();
            let path = text(&[&[1u8][..], &picks].concat(), PATH_TOKENS);
            let path = if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            };
            let target = match cursor.byte() % 8 {
                0 => format!("http://{}{path}", String::from_utf8_lossy(&host_bytes)),
                1 => "*".to_owned(),
                _ => path,
            };
            let request = RawRequest {
                method: method.into(),
                target: target.clone().into_bytes(),
                headers: vec![("Host".to_owned(), host_bytes.clone())],
                body: Vec::new(),
            };
            let what = format!(
                "{method} {target} Host: {}",
                String::from_utf8_lossy(&host_bytes)
            );
            let reply = app.send(&request).unwrap_or_else(|e| panic!("{what}: {e}"));
            let body = reply.text();
            if method == "HEAD" {
                // No body to tell who answered: only the status is judged.
                assert!(
                    reply.status < 500 || reply.status == 503,
                    "{what}: {}",
                    reply.status
                );
                return;
            }
            let from_ingress = body.contains(INGRESS_PAGE_MARKER);
            if reply.status >= 500 {
                // The ready instance has no runtime to reach.
                let ours = from_ingress && matches!(reply.status, 502 | 503);
                let readyz = reply.status == 503 && target.contains("readyz");
                assert!(ours || readyz, "{what}: {} {body}", reply.status);
            }
            // Which side answered follows `addressed`, when the request
            // was parsed at all (hyper answers a bare 400 otherwise).
            let parsed = !(reply.status == 400 && body.is_empty());
            let (Ok(uri), Ok(value)) =
                (target.parse::<Uri>(), HeaderValue::from_bytes(&host_bytes))
            else {
                return;
            };
            let mut headers = HeaderMap::new();
            // The server's HTTP parser drops a header value's surrounding
            // spaces and tabs (RFC 9110's OWS); the oracle must see what
            // the server sees.
            let seen = value.as_bytes().trim_ascii();
            headers.insert(
                "host",
                HeaderValue::from_bytes(seen).unwrap_or_else(|_| value.clone()),
            );
            if parsed {
                let ingress = addressed(&headers, &uri, "localhost").is_some();
                assert_eq!(from_ingress, ingress, "{what}: {} {body}", reply.status);
            }
        });
}
