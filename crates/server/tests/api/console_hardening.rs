//! The console's small hardenings: the browser protections on every
//! console response (and none added to a gateway's), sign-in forms whose
//! CSRF token only the server makes, and "Open OpenClaw" passes bounded per
//! account and swept.

use std::time::Duration;

use clawplane_domain::{Email, InstanceFields, InstanceStatus, UserId};
use clawplane_secrets::{EncryptionKey, KeyRing, SecretString};
use clawplane_server::console::session::sweep_expired;
use clawplane_server::door_passes::{MAX_DOORS, MAX_HANDOFFS};
use clawplane_server::{Application, ServerConfig};
use clawplane_store::{Backend, NewInstance, PassKind};
use clawplane_testkit::TestDb;
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};

use crate::console::PASSWORD;
use crate::door_app::{cookie, field, DoorApp};
use crate::helpers::unreachable_runtime;

const REFUSED: &str = "did not come from this site";

/// What every console response must carry, whatever its status.
fn assert_protected(what: &str, headers: &HeaderMap) {
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    let policy = header("content-security-policy");
    for directive in [
        "frame-ancestors 'none'",
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(directive), "{what}: {policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{what}: {policy}");
    let referrer = header("referrer-policy");
    assert!(
        [
            "same-origin",
            "no-referrer",
            "strict-origin-when-cross-origin"
        ]
        .contains(&referrer.as_str()),
        "{what}: {referrer}"
    );
}

/// A page that works under the console's policy: no inline script or
/// style, only the console's own files.
fn assert_no_inline_code(what: &str, page: &str) {
    assert!(!page.contains("<script>"), "{what} has an inline script");
    assert!(!page.contains("<style"), "{what} has an inline stylesheet");
    assert!(!page.contains(" style="), "{what} has an inline style");
    let handler = page.split(" on").skip(1).any(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert!(!handler, "{what} has an inline event handler");
}

impl DoorApp {
    async fn console_get(&self, path: &str, session: Option<&str>) -> Response {
        let mut r = self.at(Method::GET, None, path);
        if let Some(s) = session {
            r = r.header("cookie", format!("clawplane_session={s}"));
        }
        r.send().await.unwrap()
    }

    /// A sign-in or sign-up post with this pre-session `pair` (cookie and
    /// field alike).
    async fn post_sign(&self, form: &str, pair: &str, email: &str) -> Response {
        self.at(Method::POST, None, &format!("/console/{form}"))
            .header("cookie", format!("clawplane_csrf={pair}"))
            .form(&[("csrf", pair), ("email", email), ("password", PASSWORD)])
            .send()
            .await
            .unwrap()
    }

    /// The pre-session pair the server hands out with its sign-up form.
    async fn issued_pair(&self) -> String {
        let page = self.console_get("/console/sign-up", None).await;
        let pre = cookie(&page, "clawplane_csrf").expect("a form cookie");
        let csrf = field(&page.text().await.unwrap(), "csrf");
        assert_eq!(pre, csrf, "the cookie and the field carry one token");
        csrf
    }

    async fn account_id(&self, email: &str) -> Option<String> {
        self.store
            .account_by_email(&Email::parse(email).unwrap())
            .await
            .unwrap()
            .map(|(a, _)| a.id)
    }

    /// Posts `pass` to `runtime_name`'s door (as a client without browser
    /// markers, judged by the pass alone).
    async fn enter_status(&self, runtime_name: &str, pass: &str) -> StatusCode {
        self.at(Method::POST, Some(runtime_name), "/__clawplane/door")
            .form(&[("pass", pass)])
            .send()
            .await
            .unwrap()
            .status()
    }
}

#[tokio::test]
async fn every_console_response_carries_the_browser_protections() {
    let app = DoorApp::spawn(Backend::Sqlite).await;
    for path in [
        "/console/sign-in",
        "/console/sign-up",
        "/console",
        "/console/account",
        "/console/assets/console.js",
        "/console/assets/console.css",
    ] {
        let r = app.console_get(path, None).await;
        assert_protected(&format!("signed out, {path}"), r.headers());
        let html = r
            .headers()
            .get("content-type")
            .is_some_and(|t| t.to_str().unwrap().starts_with("text/html"));
        let page = r.text().await.unwrap();
        if html {
            assert_no_inline_code(path, &page);
        }
    }
    let css = app.console_get("/console/assets/console.css", None).await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let refused = app.post_sign("sign-in", "a", "ana@example.com").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_protected("the CSRF error page", refused.headers());

    let ana = app.sign_up("ana@example.com").await;
    let mut pages: Vec<&str> = clawplane_server::console::LINKS
        .iter()
        .map(|(href, _)| *href)
        .collect();
    pages.extend(["/console/open", "/console/billing?before=x"]);
    for path in pages {
        let r = app.console_get(path, Some(&ana)).await;
        assert!(r.status().as_u16() < 500, "{path}: {}", r.status());
        assert_protected(&format!("signed in, {path}"), r.headers());
        let page = r.text().await.unwrap();
        assert_no_inline_code(path, &page);
    }

    // "Open OpenClaw" posts to the instance's host: its policy allows that
    // one form target, and its referrer policy lets the browser name the
    // console in `Origin` (the door refuses `Origin: null`).
    app.ready_instance("ana@example.com", "oc-ana").await;
    let open = app.console_get("/console/open", Some(&ana)).await;
    assert_eq!(open.status(), StatusCode::OK);
    assert_protected("the open page", open.headers());
    let policy = open.headers()["content-security-policy"].to_str().unwrap();
    let door = format!("http://oc-ana.localhost:{}", app.port);
    assert!(policy.contains(&format!("form-action {door};")), "{policy}");
    assert_eq!(
        open.headers()["referrer-policy"],
        "strict-origin-when-cross-origin"
    );
    let page = open.text().await.unwrap();
    assert_no_inline_code("the open page", &page);
    assert!(page.contains(&format!("action=\"{door}/__clawplane/door\"")));
    assert!(page.contains("data-autosubmit"), "console.js sends it");
    app.stop().await;
}

/// A stand-in for an instance's runtime: its `/gateway/...` answers with
/// OpenClaw's own framing policy.
async fn fake_runtime() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new().fallback(|| async {
        (
            [("content-security-policy", "frame-ancestors 'self'")],
            "the gateway's own page",
        )
    });
    let handle = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (address, handle)
}

#[tokio::test]
async fn a_gateways_responses_get_none_of_the_consoles_headers() {
    let (runtime_url, runtime) = fake_runtime().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = ServerConfig {
        run_jobs: false,
        ..Default::default()
    };
    config.instances.fixed_service_token =
        Some(SecretString::from("service-token-for-tests".to_owned()));
    // The instance is ready before `serve` starts: its start-up recovery
    // would otherwise drive a `provisioning` row it saw in between.
    let account = db
        .store
        .create_account(&Email::parse("gw@example.com").unwrap(), "not-a-hash")
        .await
        .unwrap();
    let instance = db
        .store
        .create_instance(NewInstance {
            user_id: UserId::parse(&account.id).unwrap(),
            fields: InstanceFields {
                runtime_name: Some("oc-gw".to_owned()),
                runtime_url: Some(runtime_url),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    db.store
        .set_instance_status(instance.id, InstanceStatus::Ready, None)
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(
        config,
        db.store.clone(),
        KeyRing::new(EncryptionKey::generate()),
        unreachable_runtime(),
        listener,
    );
    let port = app.local_addr().unwrap().port();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));

    // A device (no browser markers) goes through to the gateway.
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/"))
        .header("host", format!("oc-gw.localhost:{port}"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers().clone();
    assert_eq!(r.text().await.unwrap(), "the gateway's own page");
    assert_eq!(
        headers["content-security-policy"], "frame-ancestors 'self'",
        "the gateway's policy, untouched"
    );
    for name in [
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
    ] {
        assert!(headers.get(name).is_none(), "{name} on a gateway response");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    runtime.abort();
}

#[tokio::test]
async fn a_pre_session_pair_the_client_chose_is_refused_and_changes_nothing() {
    let app = DoorApp::spawn(Backend::Sqlite).await;
    app.sign_up("ana@example.com").await;
    let issued = app.issued_pair().await;
    // Server-issued in form, but with its expiry moved: the tag no longer fits.
    let (expiry, rest) = issued.split_once('.').unwrap();
    let moved = format!("{}.{rest}", expiry.parse::<i64>().unwrap() + 86_400);
    let chosen = [
        "a".to_owned(),
        "0123456789abcdef".repeat(4),
        "x".repeat(43),
        moved,
    ];
    for pair in &chosen {
        let up = app.post_sign("sign-up", pair, "mallory@example.com").await;
        assert_eq!(up.status(), StatusCode::FORBIDDEN, "sign-up with {pair}");
        assert!(cookie(&up, "clawplane_session").is_none());
        assert!(up.text().await.unwrap().contains(REFUSED));

        let sign_in = app.post_sign("sign-in", pair, "ana@example.com").await;
        assert_eq!(
            sign_in.status(),
            StatusCode::FORBIDDEN,
            "sign-in with {pair}"
        );
        assert!(
            cookie(&sign_in, "clawplane_session").is_none(),
            "not signed in"
        );
        assert!(sign_in.text().await.unwrap().contains(REFUSED));
    }
    assert_eq!(
        app.account_id("mallory@example.com").await,
        None,
        "no account was made"
    );

    // The pair the server issued works, for sign-up and for sign-in.
    let pair = app.issued_pair().await;
    let up = app.post_sign("sign-up", &pair, "bob@example.com").await;
    assert_eq!(up.status(), StatusCode::SEE_OTHER);
    assert!(cookie(&up, "clawplane_session").is_some());
    let pair = app.issued_pair().await;
    let sign_in = app.post_sign("sign-in", &pair, "ana@example.com").await;
    assert_eq!(sign_in.status(), StatusCode::SEE_OTHER);
    assert!(cookie(&sign_in, "clawplane_session").is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_pre_session_pair_from_another_server_is_refused() {
    let one = DoorApp::spawn(Backend::Sqlite).await;
    let other = DoorApp::spawn(Backend::Sqlite).await;
    let pair = one.issued_pair().await;
    let r = other.post_sign("sign-up", &pair, "ana@example.com").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains(REFUSED));
    assert_eq!(other.account_id("ana@example.com").await, None);
    // The form shown again carries a token of this server, not the foreign one.
    let page = other
        .at(Method::GET, None, "/console/sign-in")
        .header("cookie", format!("clawplane_csrf={pair}"))
        .send()
        .await
        .unwrap();
    let renewed = cookie(&page, "clawplane_csrf").expect("a new form cookie");
    assert_ne!(renewed, pair);
    assert_eq!(field(&page.text().await.unwrap(), "csrf"), renewed);
    one.stop().await;
    other.stop().await;
}

async fn open_passes_are_bounded_per_account(backend: Backend) {
    let app = DoorApp::spawn(backend).await;
    let ana = app.sign_up("ana@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    app.ready_instance("ana@example.com", "oc-ana").await;
    app.ready_instance("bob@example.com", "oc-bob").await;
    let anas = app.account_id("ana@example.com").await.unwrap();
    let bobs = app.account_id("bob@example.com").await.unwrap();
    let bobs_pass = app.pass(&bob).await;

    let mut passes = Vec::new();
    for _ in 0..30 {
        passes.push(app.pass(&ana).await);
    }
    let live = |id: String, kind| {
        let store = app.store.clone();
        async move {
            let user = UserId::parse(&id).unwrap();
            store.live_door_passes(&user, kind).await.unwrap()
        }
    };
    assert_eq!(
        live(anas.clone(), PassKind::Handoff).await,
        u64::from(MAX_HANDOFFS)
    );
    assert_eq!(live(bobs.clone(), PassKind::Handoff).await, 1, "bob's kept");
    assert_eq!(
        app.enter_status("oc-ana", &passes[0]).await,
        StatusCode::UNAUTHORIZED,
        "the oldest pass went"
    );
    assert_eq!(
        app.enter_status("oc-ana", passes.last().unwrap()).await,
        StatusCode::SEE_OTHER,
        "the newest works"
    );
    assert_eq!(
        app.enter_status("oc-bob", &bobs_pass).await,
        StatusCode::SEE_OTHER
    );

    // Door cookies too: each needs a pass, and an open keeps the newest.
    for _ in 0..MAX_DOORS + 5 {
        let pass = app.pass(&ana).await;
        assert_eq!(
            app.enter_status("oc-ana", &pass).await,
            StatusCode::SEE_OTHER
        );
    }
    app.pass(&ana).await;
    assert_eq!(
        live(anas.clone(), PassKind::Door).await,
        u64::from(MAX_DOORS)
    );
    assert_eq!(live(bobs, PassKind::Door).await, 1, "bob's door is his");
    app.stop().await;
}

#[tokio::test]
async fn open_passes_are_bounded_per_account_on_sqlite() {
    open_passes_are_bounded_per_account(Backend::Sqlite).await;
}

#[tokio::test]
async fn open_passes_are_bounded_per_account_on_postgres() {
    open_passes_are_bounded_per_account(Backend::Postgres).await;
}

#[tokio::test]
async fn an_expired_pass_is_swept_and_a_live_one_kept() {
    let app = DoorApp::spawn(Backend::Sqlite).await;
    let ana = app.sign_up("ana@example.com").await;
    app.ready_instance("ana@example.com", "oc-ana").await;
    let (account, _) = app
        .store
        .account_by_email(&Email::parse("ana@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let user = UserId::parse(&account.id).unwrap();
    let live = app.pass(&ana).await;
    let expired_at = chrono::Utc::now() - chrono::Duration::seconds(1);
    let expired = |store: clawplane_store::Store| {
        let user = user.clone();
        async move {
            store
                .create_door_pass(
                    "an-expired-pass",
                    &user,
                    PassKind::Handoff,
                    "oc-ana",
                    expired_at,
                )
                .await
        }
    };
    expired(app.store.clone()).await.unwrap();
    assert_eq!(
        sweep_expired(&app.store).await.unwrap(),
        1,
        "the expired one"
    );
    // Swept, its digest is free again.
    expired(app.store.clone())
        .await
        .expect("the expired row is gone");
    assert_eq!(
        app.enter_status("oc-ana", &live).await,
        StatusCode::SEE_OTHER
    );
    app.stop().await;
}
