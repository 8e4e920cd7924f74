//! Accounts nobody can lock out, and answers a newcomer or a client can
//! act on: the API's 401 whatever the server's keys, `/` leading to the
//! console and unknown console addresses answering a page, sign-in
//! throttling that slows a guesser without stopping the owner, and sign-up
//! not saying that an address has an account.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use clawplane_store::Backend;
use reqwest::{Client, Method, StatusCode};

use crate::console::Browser;
use crate::helpers::{envelope, spawn_app_with, TestApp, CONTROL_KEY, INTERNAL_KEY};

const OWNER: &str = "owner@example.com";
const PASSWORD: &str = "correct horse battery";

/// A client of the sign-in forms at any client address (the test server
/// trusts loopback as its proxy, so `X-Forwarded-For` names the client).
struct Forms {
    client: Client,
    base: String,
    csrf: String,
}

/// One answer of a form: status, `Retry-After`, whether a session cookie
/// was set, and the page.
struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    session: bool,
    page: String,
}

impl Forms {
    async fn new(app: &TestApp) -> Self {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let page = client
            .get(format!("{}/console/sign-in", app.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        Forms {
            client,
            base: app.address.clone(),
            csrf: Browser::csrf(&page),
        }
    }

    async fn post(&self, form: &str, from: IpAddr, email: &str, password: &str) -> Answer {
        let r = self
            .client
            .post(format!("{}/console/{form}", self.base))
            .header("cookie", format!("clawplane_csrf={}", self.csrf))
            .header("x-forwarded-for", from.to_string())
            .form(&[
                ("csrf", &*self.csrf),
                ("email", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let session = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("clawplane_session="));
        Answer {
            status: r.status(),
            retry_after,
            session,
            page: r.text().await.unwrap(),
        }
    }
}

fn address(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

async fn spawn_behind_proxy() -> TestApp {
    spawn_app_with(Backend::Sqlite, |c| {
        c.ingress.trusted_proxies = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    })
    .await
}

/// Signs the owner up from address 1.
async fn owner_signed_up(forms: &Forms) {
    let a = forms.post("sign-up", address(1), OWNER, PASSWORD).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.page);
}

#[tokio::test]
async fn a_request_without_valid_credentials_is_401_whatever_keys_the_server_has() {
    let configs = [(true, true), (false, true), (true, false), (false, false)];
    for (internal, control) in configs {
        let app = spawn_app_with(Backend::Sqlite, |c| {
            if !internal {
                c.internal_key = None;
            }
            if !control {
                c.control_key = None;
            }
        })
        .await;
        let url = |path: &str| format!("{}{path}", app.address);
        let api = ["/api/openclaw/instance", "/api/openclaw/billing/summary"];
        for path in api {
            let attempts = [
                app.client.get(url(path)),
                app.client.get(url(path)).header("x-oa-user-id", "ana"),
                app.client
                    .get(url(path))
                    .header("x-oa-internal-key", "not-the-key")
                    .header("x-oa-user-id", "ana"),
                app.client
                    .get(url(path))
                    .bearer_auth("cpk_not-a-token-of-anyone"),
            ];
            for (i, attempt) in attempts.into_iter().enumerate() {
                let (status, b) = envelope(attempt.send().await.unwrap()).await;
                let case = format!("internal {internal}, control {control}: {path} #{i}: {b}");
                assert_eq!(status, 401, "{case}");
                assert_eq!(b["error"]["code"], "unauthorized", "{case}");
                assert!(!b.to_string().contains("OA_INTERNAL_KEY"), "{case}");
            }
        }
        // The right internal key is valid only where the server has it.
        let (status, _) = envelope(
            app.api(Method::GET, "/api/openclaw/instance", "ana")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, if internal { 200 } else { 401 });
        let control_path = "/control/openclaw/billing/summary?user_id=ana";
        for key in [None, Some("not-the-key"), Some(CONTROL_KEY)] {
            let mut r = app.client.get(url(control_path));
            if let Some(key) = key {
                r = r.header("x-oa-control-key", key);
            }
            let (status, b) = envelope(r.send().await.unwrap()).await;
            let expected = if control && key == Some(CONTROL_KEY) {
                200
            } else {
                401
            };
            assert_eq!(status, expected, "control {control}, key {key:?}: {b}");
            assert!(!b.to_string().contains(CONTROL_KEY));
            assert!(!b.to_string().contains(INTERNAL_KEY));
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn the_address_serve_prints_leads_to_the_console_and_lost_console_paths_get_a_page() {
    let app = spawn_behind_proxy().await;
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", app.address);
    for method in [Method::GET, Method::HEAD] {
        let r = client
            .request(method.clone(), url("/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{method} /");
        assert_eq!(r.headers()["location"], "/console", "{method} /");
    }
    // The ingress still answers for an instance's host, before any route.
    let r = client
        .get(url("/"))
        .header("host", "oc-nobody.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "an unknown instance");
    assert!(r.headers().get("location").is_none());

    for path in ["/console/nope", "/console/account/nope/deeper", "/console/"] {
        let r = client.get(url(path)).send().await.unwrap();
        if path == "/console/" {
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            assert_eq!(r.headers()["location"], "/console");
            continue;
        }
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/html"), "{path}: {kind}");
        assert!(r.headers().contains_key("content-security-policy"));
        let page = r.text().await.unwrap();
        assert!(page.contains("href=\"/console\""), "{path}: {page}");
        assert!(page.contains("no console page at this address"), "{page}");
    }
    let r = client.post(url("/console/account")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/html"), "a console address: {kind}");

    // Everything else keeps the API's envelope.
    for path in ["/nope", "/api/openclaw/nope", "/consoles"] {
        let (status, b) = envelope(client.get(url(path)).send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(b["error"]["code"], "not_found");
    }
    let (status, b) = envelope(client.post(url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, 405);
    assert_eq!(b["error"]["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn a_flood_of_wrong_passwords_from_one_address_does_not_stop_the_owner_from_another() {
    let app = spawn_behind_proxy().await;
    let forms = Forms::new(&app).await;
    owner_signed_up(&forms).await;
    let attacker = address(2);
    let mut slowed = 0;
    for n in 0..15 {
        let a = forms
            .post("sign-in", attacker, OWNER, "a wrong guess")
            .await;
        match a.status {
            StatusCode::OK => assert!(a.page.contains("do not match an account")),
            StatusCode::TOO_MANY_REQUESTS => {
                slowed += 1;
                assert!(a.retry_after.is_some_and(|s| s >= 1), "attempt {n}");
                assert!(
                    a.page
                        .contains("Too many failed sign-ins to this account from your address"),
                    "the console's page: {}",
                    a.page
                );
                assert!(a.page.contains("href=\"/console\""));
            }
            other => panic!("attempt {n}: {other}: {}", a.page),
        }
    }
    assert!(
        slowed >= 10,
        "the attacker's address is slowed ({slowed} of 15)"
    );
    // The right password from the attacker's address waits too...
    let a = forms.post("sign-in", attacker, OWNER, PASSWORD).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!a.session);
    // ...but not from the owner's.
    let a = forms.post("sign-in", address(1), OWNER, PASSWORD).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.page);
    assert!(a.session);

    // Many addresses with a few guesses each slow the account, boundedly:
    // the owner is still let in, at once.
    for n in 0..15 {
        let a = forms
            .post("sign-in", address(100 + n), OWNER, "a wrong guess")
            .await;
        assert_eq!(a.status, StatusCode::OK, "one guess from a fresh address");
    }
    let started = Instant::now();
    let a = forms.post("sign-in", address(3), OWNER, PASSWORD).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.page);
    assert!(started.elapsed() < Duration::from_secs(5), "only slowed");
    app.stop().await;
}

#[tokio::test]
async fn after_its_delay_the_right_password_works_from_the_guessers_address_too() {
    let app = spawn_behind_proxy().await;
    let forms = Forms::new(&app).await;
    owner_signed_up(&forms).await;
    let guesser = address(2);
    // Three free failures, then one that makes the pair wait a second.
    for _ in 0..4 {
        let a = forms.post("sign-in", guesser, OWNER, "a wrong guess").await;
        assert_eq!(a.status, StatusCode::OK);
    }
    // Failures during the delay are refused unhashed and extend nothing.
    for _ in 0..5 {
        let a = forms.post("sign-in", guesser, OWNER, "a wrong guess").await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(a.retry_after, Some(1), "the delay is not extended");
    }
    let a = forms.post("sign-in", guesser, OWNER, PASSWORD).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    let wait = a.retry_after.expect("Retry-After");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let a = forms.post("sign-in", guesser, OWNER, PASSWORD).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.page);
    assert!(a.session);
    // The success cleared the pair: its next mistake is a free one again.
    let a = forms.post("sign-in", guesser, OWNER, "a wrong guess").await;
    assert_eq!(a.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn sign_up_does_not_say_that_an_address_has_an_account() {
    let app = spawn_behind_proxy().await;
    let forms = Forms::new(&app).await;
    owner_signed_up(&forms).await;
    let a = forms
        .post("sign-up", address(2), OWNER, "another long password")
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!a.session, "no session for someone else's address");
    let page = a.page.to_lowercase();
    for telling in ["exists", "is taken", "already registered", "in use"] {
        assert!(!page.contains(telling), "{telling}: {}", a.page);
    }
    assert!(
        page.contains("could not create an account with this address and password"),
        "{}",
        a.page
    );
    app.stop().await;
}
