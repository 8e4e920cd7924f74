//! The door of an instance's host (`crates/server/src/ingress/door.rs`):
//! the pass POST to `/__clawplane/door` (its form body, its `Origin`,
//! `Referer` and `Sec-Fetch-*`), and the owner's requests with the door
//! cookie and any `Origin`. The form parse and the origin checks are
//! private to `door::enter` and `door::visitor`, so they are fuzzed
//! through `serve` over raw HTTP; `door::without_door_cookie` is public and
//! fuzzed directly.
//!
//! - A pass post never answers 5xx. It lets a browser in (303 and the door
//!   cookie) only with a live pass in the form and, when the request names
//!   an origin, the console's origin as a URL parser reads it; a pass works
//!   once. A live pass from the console's own form always works.
//! - With the owner's door cookie, a browser request passes only when its
//!   `Origin` is the instance's own origin; without a live cookie a
//!   browser is refused; a device (no browser markers) goes on.

use std::panic::AssertUnwindSafe;

use axum::http::{header, HeaderMap, HeaderValue};
use bolero::check;
use clawplane_fuzz::app::{App, INGRESS_PAGE_MARKER, RUNTIME_NAME};
use clawplane_fuzz::text::Cursor;
use clawplane_fuzz::wire::{RawRequest, Reply};
use clawplane_server::ingress::door::{without_door_cookie, DOOR_COOKIE, DOOR_PATH};

/// Whether the door let the request through: the instance has no runtime,
/// so what follows the door is 503 "cannot be reached" (or 502 "did not
/// answer", had a runtime address been recorded since).
fn let_through(reply: &Reply) -> bool {
    let text = reply.text();
    (reply.status == 503 && text.contains("cannot be reached"))
        || (reply.status == 502 && text.contains("did not answer"))
}

/// An origin or a referrer, built from parts so that near misses of the
/// right one are common. `None` sends no header.
#[derive(Debug, Clone)]
struct Named {
    text: String,
    /// Scheme `http` and host one of those asked for (in any case), and
    /// the right port.
    right_origin: bool,
    /// What follows the port.
    tail: &'static str,
}

impl Named {
    /// The origin a browser sends: the right one and nothing after it.
    fn is_plain_origin(&self) -> bool {
        self.right_origin && self.tail.is_empty()
    }

    /// A referrer a browser sends from the right origin.
    fn is_plain_referrer(&self) -> bool {
        self.right_origin && !self.tail.starts_with('\\')
    }
}

fn named(cursor: &mut Cursor, port: &str, hosts: &[&str]) -> Option<Named> {
    let tails = [
        "",
        "",
        "",
        "/",
        "/console/open",
        "?x",
        "#f",
        "/x?y#z",
        "\\evil",
    ];
    match cursor.byte() % 8 {
        0 => return None,
        1 => {
            let text = cursor.pick(&["null", "", "file://", "http://", "localhost", "*"]);
            return Some(Named {
                text: text.to_owned(),
                right_origin: false,
                tail: "",
            });
        }
        2 | 3 => {
            // The right origin, in some spelling.
            let scheme = cursor.pick(&["http", "http", "HTTP", "Http"]);
            let host = cursor.pick(hosts);
            let host = if cursor.byte() % 4 == 0 {
                host.to_ascii_uppercase()
            } else {
                host.to_owned()
            };
            let tail = cursor.pick(&tails);
            return Some(Named {
                text: format!("{scheme}://{host}{port}{tail}"),
                right_origin: true,
                tail,
            });
        }
        _ => {}
    }
    let scheme = cursor.pick(&["http", "http", "HTTP", "https", "ws", "http:"]);
    let host = cursor.pick(&[
        hosts[0],
        hosts[hosts.len() - 1],
        "OC-FUZZ.LOCALHOST",
        "LocalHost",
        "evil.example",
        "oc-fuzz.localhost.evil.example",
        "x.oc-fuzz.localhost",
        "oc-none.localhost",
        "localhost@evil.example",
        "evil.example@localhost",
        "localhost.",
        "127.0.0.1",
        "[::1]",
    ]);
    let wrong_port = format!("{port}0");
    let port_text = cursor.pick(&[port, port, "", ":1", ":80", wrong_port.as_str()]);
    let tail = cursor.pick(&tails);
    let right_origin = scheme.eq_ignore_ascii_case("http")
        && port_text == port
        && hosts.iter().any(|h| h.eq_ignore_ascii_case(host));
    Some(Named {
        text: format!("{scheme}://{host}{port_text}{tail}"),
        right_origin,
        tail,
    })
}

/// Whether a URL parser reads `text`'s origin as `http://<one of hosts><port>`.
fn url_origin_is(text: &str, hosts: &[&str], port: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    let port: u16 = port.trim_start_matches(':').parse().expect("a port");
    url.scheme() == "http"
        && url.port() == Some(port)
        && url
            .host_str()
            .is_some_and(|h| hosts.iter().any(|want| h.eq_ignore_ascii_case(want)))
}

/// Pieces of a form body; `{pass}` is the live pass, `{encoded}` the same
/// percent-encoded character by character.
const FORM_TOKENS: &[&str] = &[
    "pass=", "pass=", "{pass}", "{pass}", "&", "=", "pass", "%70ass=", "p%61ss=", "+", "%", "%3D",
    "%26", "x=1", "pass=&", "{encoded}", "{pass}x", "\u{0}", ";", "pass[]=", "PASS=", "%zz",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

fn form(cursor: &mut Cursor, pass: &str) -> String {
    let encoded: String = pass.bytes().map(|b| format!("%{b:02X}")).collect();
    if cursor.byte() % 4 == 0 {
        return format!("pass={pass}");
    }
    let len = 1 + cursor.byte() % 6;
    (0..len)
        .map(|_| {
            cursor
                .pick(FORM_TOKENS)
                .replace("{pass}", pass)
                .replace("{encoded}", &encoded)
        })
        .collect()
}

/// The pass a form names, as `serde_urlencoded` reads it into a map: the
/// last `pass`, `+` a space, escapes decoded.
fn form_pass(body: &str) -> Option<String> {
    form_urlencoded::parse(body.as_bytes())
        .filter(|(k, _)| k == "pass")
        .last()
        .map(|(_, v)| v.into_owned())
}

/// Whether the reply sets the door cookie (always `HttpOnly`).
fn door_cookie(reply: &Reply) -> bool {
    reply
        .headers_named("set-cookie")
        .filter(|c| c.starts_with(&format!("{DOOR_COOKIE}=")))
        .inspect(|c| assert!(c.contains("HttpOnly"), "{c}"))
        .count()
        > 0
}

fn post_pass(app: &App, headers: Vec<(String, Vec<u8>)>, body: &str) -> Reply {
    let mut all = vec![("Host".to_owned(), app.instance_host().into_bytes())];
    all.extend(headers);
    let request = RawRequest {
        method: "POST".into(),
        target: DOOR_PATH.as_bytes().to_vec(),
        headers: all,
        body: body.as_bytes().to_vec(),
    };
    app.send(&request)
        .unwrap_or_else(|e| panic!("{body:?}: {e}"))
}

#[test]
fn a_pass_lets_in_once_only_when_live_and_from_the_console() {
    let app = AssertUnwindSafe(App::start());
    let port = app.port_suffix();
    let console = ["localhost", "127.0.0.1", "[::1]"];
    let mut pass = app.new_pass();
    check!()
        .with_iterations(2_000)
        .with_max_len(64)
        .for_each(|bytes| {
            let mut cursor = Cursor::new(bytes);
            let origin = named(&mut cursor, &port, &console);
            let referer = named(&mut cursor, &port, &console);
            let fetch = cursor.pick(&[None, None, Some("same-site"), Some("cross-site")]);
            let body = form(&mut cursor, &pass);
            let mut headers = vec![(
                "Content-Type".to_owned(),
                b"application/x-www-form-urlencoded".to_vec(),
            )];
            if let Some(o) = &origin {
                headers.push(("Origin".to_owned(), o.text.clone().into_bytes()));
            }
            if let Some(r) = &referer {
                headers.push(("Referer".to_owned(), r.text.clone().into_bytes()));
            }
            if let Some(site) = fetch {
                headers.push(("Sec-Fetch-Site".to_owned(), site.as_bytes().to_vec()));
            }
            let what = format!("{body:?} origin {origin:?} referer {referer:?} fetch {fetch:?}");
            let reply = post_pass(&app, headers.clone(), &body);
            assert!(
                matches!(reply.status, 303 | 400 | 401 | 403 | 413),
                "{what}: {} {}",
                reply.status,
                reply.text()
            );
            let live = form_pass(&body).as_deref() == Some(pass.as_str());
            // The origin the request names: `Origin`, else `Referer`.
            let named = origin.as_ref().or(referer.as_ref());
            let browser = origin.is_some() || fetch.is_some();
            let from_console = match named {
                None => !browser,
                Some(n) => url_origin_is(&n.text, &console, &port),
            };
            if reply.status == 303 {
                assert!(live, "{what}: let in without the live pass");
                assert!(from_console, "{what}: let in from another origin");
                assert!(door_cookie(&reply), "{what}: no door cookie");
                // Used once, whatever happens next.
                let again = post_pass(&app, headers, &body);
                assert_eq!(again.status, 401, "{what}: a pass worked twice");
                pass = app.new_pass();
                return;
            }
            assert!(!door_cookie(&reply), "{what}: a cookie without a 303");
            assert!(
                reply.text().contains(INGRESS_PAGE_MARKER),
                "{what}: {}",
                reply.text()
            );
            // The console's own form, with the live pass, always gets in.
            let plain = match (&origin, &referer) {
                (Some(o), _) => o.is_plain_origin(),
                (None, Some(r)) => r.is_plain_referrer(),
                (None, None) => !browser,
            };
            assert!(
                !(live && plain),
                "{what}: the console's own post was refused: {}",
                reply.status
            );
        });
}

/// What a `Cookie` header holds of the door cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// No door cookie.
    None,
    /// Exactly one, the live one.
    Live,
    /// Exactly one, not the live one.
    Wrong,
    /// Several, or a bare name: what the cookie parser makes of it is its
    /// own business, so only the safety properties are checked.
    Unclear,
}

/// A `Cookie` header with the door cookie somewhere among others (or a
/// wrong one, or none), and what it holds of it.
fn cookie_header(cursor: &mut Cursor, live: &str) -> (String, Door) {
    let pieces = [
        "a=1".to_owned(),
        format!("{DOOR_COOKIE}={live}"),
        format!("{DOOR_COOKIE}={live}"),
        format!("{DOOR_COOKIE}=bogus"),
        format!("{DOOR_COOKIE}={live}x"),
        "b=2".to_owned(),
        "=".to_owned(),
        DOOR_COOKIE.to_owned(),
        String::new(),
    ];
    let len = cursor.byte() % 4;
    let chosen: Vec<String> = (0..len)
        .map(|_| cursor.pick(&pieces.each_ref()).clone())
        .collect();
    let door: Vec<&String> = chosen
        .iter()
        .filter(|c| c.starts_with(DOOR_COOKIE))
        .collect();
    let state = match door.as_slice() {
        [] => Door::None,
        [one] if **one == format!("{DOOR_COOKIE}={live}") => Door::Live,
        [one] if one.starts_with(&format!("{DOOR_COOKIE}=")) => Door::Wrong,
        _ => Door::Unclear,
    };
    (chosen.join("; "), state)
}

#[test]
fn only_the_instances_own_origin_passes_the_owners_door() {
    let app = AssertUnwindSafe(App::start());
    let port = app.port_suffix();
    let own_host = format!("{RUNTIME_NAME}.localhost");
    let own = [own_host.as_str()];
    let live = app.new_door_cookie();
    check!()
        .with_iterations(2_500)
        .with_max_len(48)
        .for_each(|bytes| {
            let mut cursor = Cursor::new(bytes);
            let origin = named(&mut cursor, &port, &own);
            let mode = cursor.pick(&[None, None, Some("navigate"), Some("websocket")]);
            let (cookie, door) = cookie_header(&mut cursor, &live);
            let live_sent = cookie.contains(&format!("{DOOR_COOKIE}={live}"));
            let path = cursor.pick(&["/", "/chat", "/?token=x", "/__clawplane"]);
            let mut headers = vec![("Host".to_owned(), app.instance_host().into_bytes())];
            if let Some(o) = &origin {
                headers.push(("Origin".to_owned(), o.text.clone().into_bytes()));
            }
            if let Some(m) = mode {
                headers.push(("Sec-Fetch-Mode".to_owned(), m.as_bytes().to_vec()));
            }
            if !cookie.is_empty() {
                headers.push(("Cookie".to_owned(), cookie.clone().into_bytes()));
            }
            let request = RawRequest {
                method: "GET".into(),
                target: path.as_bytes().to_vec(),
                headers,
                body: Vec::new(),
            };
            let what = format!("{path} origin {origin:?} mode {mode:?} cookie {cookie:?}");
            let reply = app.send(&request).unwrap_or_else(|e| panic!("{what}: {e}"));
            let text = reply.text();
            let passed = let_through(&reply);
            assert!(
                passed || matches!(reply.status, 401 | 403),
                "{what}: {} {text}",
                reply.status
            );
            let browser = origin.is_some() || mode.is_some();
            let same_origin = origin
                .as_ref()
                .is_none_or(|o| url_origin_is(&o.text, &own, &port));
            if passed {
                assert!(same_origin, "{what}: a foreign origin passed");
                assert!(
                    live_sent || !browser,
                    "{what}: a browser passed without the owner's cookie"
                );
            }
            let plain = origin.as_ref().is_none_or(Named::is_plain_origin);
            let expected = match door {
                Door::Live => Some(plain),
                Door::None => Some(plain && !browser),
                Door::Wrong => Some(false),
                Door::Unclear => None,
            };
            if let Some(expected) = expected {
                assert_eq!(passed, expected, "{what}: {} {text}", reply.status);
            }
        });
}

#[test]
fn the_door_cookie_never_reaches_the_gateway() {
    check!()
        .with_iterations(20_000)
        .with_max_len(64)
        .for_each(|bytes| {
            let mut cursor = Cursor::new(bytes);
            let mut headers = HeaderMap::new();
            let mut sent: Vec<String> = Vec::new();
            for _ in 0..1 + cursor.byte() % 3 {
                let (line, _) = cookie_header(&mut cursor, "secret");
                let spaced = if cursor.byte() % 2 == 0 {
                    line.replace("; ", ";")
                } else {
                    line
                };
                if let Ok(v) = HeaderValue::from_str(&spaced) {
                    sent.extend(spaced.split(';').map(|c| c.trim().to_owned()));
                    headers.append(header::COOKIE, v);
                }
            }
            without_door_cookie(&mut headers);
            let left: Vec<String> = headers
                .get_all(header::COOKIE)
                .iter()
                .flat_map(|v| {
                    v.to_str()
                        .unwrap()
                        .split("; ")
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            assert!(headers.get_all(header::COOKIE).iter().count() <= 1);
            assert!(
                !left
                    .iter()
                    .any(|c| c.starts_with(&format!("{DOOR_COOKIE}="))),
                "{left:?}"
            );
            let kept: Vec<String> = sent
                .into_iter()
                .filter(|c| !c.is_empty() && !c.starts_with(&format!("{DOOR_COOKIE}=")))
                .collect();
            assert_eq!(left, kept, "every other cookie is kept, in order");
        });
}
