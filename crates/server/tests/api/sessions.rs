//! The Account page's signed-in sessions: two browsers at one account are
//! both listed (this one marked, neither by its token), with the door
//! cookies at the account's gateway; "Sign out everywhere else" signs the
//! other browser out and closes the gateway's door, keeps this browser and
//! every other account as they were, and does nothing without the form's
//! token. In single-user mode there is nothing to sign out of.

use clawplane_domain::UserId;
use clawplane_secrets::api_token_digest;
use clawplane_store::Backend;
use reqwest::{Method, StatusCode};

use crate::console::{Browser, PASSWORD};
use crate::door_app::{cookie, field, DoorApp};
use crate::helpers::spawn_app_with;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

/// A second browser (`agent`) signing in to `email`'s account; its session cookie.
async fn sign_in(app: &DoorApp, email: &str, agent: &str) -> String {
    let page = app
        .at(Method::GET, None, "/console/sign-in")
        .send()
        .await
        .unwrap();
    let pre = cookie(&page, "clawplane_csrf").expect("a sign-in form cookie");
    let csrf = field(&page.text().await.unwrap(), "csrf");
    let done = app
        .at(Method::POST, None, "/console/sign-in")
        .header("cookie", format!("clawplane_csrf={pre}"))
        .header("user-agent", agent)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "signed in");
    cookie(&done, "clawplane_session").expect("a session")
}

/// A console page as the browser with `session` sees it: status, body and
/// where a redirect leads.
async fn visit(app: &DoorApp, session: &str, path: &str) -> (StatusCode, String, String) {
    let r = app
        .at(Method::GET, None, path)
        .header("cookie", format!("clawplane_session={session}"))
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status(), r.text().await.unwrap(), to)
}

/// Presses "Sign out everywhere else" with `csrf` (none when `None`).
async fn sign_out_elsewhere(
    app: &DoorApp,
    session: &str,
    csrf: Option<&str>,
) -> (StatusCode, String) {
    let form: Vec<(&str, &str)> = csrf.map(|c| ("csrf", c)).into_iter().collect();
    let r = app
        .at(Method::POST, None, "/console/sign-out-everywhere")
        .header("cookie", format!("clawplane_session={session}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status(), to)
}

/// A door cookie for `host`, through the console's one-time pass.
async fn door_cookie(app: &DoorApp, session: &str, host: &str) -> String {
    let pass = app.pass(session).await;
    let entered = app
        .at(Method::POST, Some(host), "/__clawplane/door")
        .form(&[("pass", pass.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(entered.status(), StatusCode::SEE_OTHER, "the pass is taken");
    cookie(&entered, "clawplane_door").expect("a door cookie")
}

/// Whether `host`'s door lets a page load with `door` through (to a
/// runtime that cannot be reached here) or sends it to sign in.
async fn door_admits(app: &DoorApp, host: &str, door: &str) -> bool {
    let r = app
        .at(Method::GET, Some(host), "/")
        .header("cookie", format!("clawplane_door={door}"))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    match status {
        StatusCode::SERVICE_UNAVAILABLE if body.contains("cannot be reached") => true,
        StatusCode::UNAUTHORIZED if body.contains("Sign in to the console") => false,
        _ => panic!("neither through nor refused ({status}): {body}"),
    }
}

/// The listed sessions of an Account page, one string per item.
fn listed_sessions(page: &str) -> Vec<&str> {
    page.split("<li class=\"session")
        .skip(1)
        .map(|item| item.split("</li>").next().unwrap())
        .collect()
}

async fn signing_out_everywhere_else_ends_the_other_browser_and_the_doors(backend: Backend) {
    let app = DoorApp::spawn(backend).await;
    let here = app.sign_up("ana@example.com").await;
    let phone = sign_in(&app, "ana@example.com", SAFARI).await;
    let bob = app.sign_up("bob@example.com").await;
    let bobs_laptop = sign_in(&app, "bob@example.com", FIREFOX).await;
    app.ready_instance("ana@example.com", "oc-ana").await;
    app.ready_instance("bob@example.com", "oc-bob").await;
    let anas_door = door_cookie(&app, &phone, "oc-ana").await;
    let bobs_door = door_cookie(&app, &bob, "oc-bob").await;

    let (status, page, _) = visit(&app, &here, "/console/account").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Signed-in sessions"), "{page}");
    let listed = listed_sessions(&page);
    assert_eq!(listed.len(), 2, "ana's two browsers, not bob's: {listed:?}");
    let marked: Vec<_> = listed
        .iter()
        .filter(|item| item.contains("this browser"))
        .collect();
    assert_eq!(marked.len(), 1, "one marked: {listed:?}");
    assert!(
        marked[0].contains("Unknown browser"),
        "this one: {marked:?}"
    );
    assert!(
        listed.iter().any(|i| i.contains("Safari on iOS")
            && i.contains("127.0.0.1")
            && !i.contains("this browser")),
        "the phone, by client and address: {listed:?}"
    );
    assert!(
        page.contains("at your OpenClaw gateway: 1 browser."),
        "{page}"
    );
    for secret in [&here, &phone] {
        assert!(!page.contains(secret.as_str()), "no session token shown");
        assert!(!page.contains(&api_token_digest(secret)), "no digest shown");
    }
    let (_, phone_page, _) = visit(&app, &phone, "/console/account").await;
    let from_phone = listed_sessions(&phone_page);
    assert!(
        from_phone
            .iter()
            .any(|i| i.contains("Safari on iOS") && i.contains("this browser")),
        "the phone sees itself marked: {from_phone:?}"
    );

    // Hostile presses change nothing: no token, a made-up one, another
    // browser's (of the same account).
    let phones_csrf = field(&phone_page, "csrf");
    for csrf in [None, Some("not-the-token"), Some(phones_csrf.as_str())] {
        let (status, _) = sign_out_elsewhere(&app, &here, csrf).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{csrf:?}");
    }
    assert_eq!(visit(&app, &phone, "/console").await.0, StatusCode::OK);
    assert!(door_admits(&app, "oc-ana", &anas_door).await);

    let csrf = field(&page, "csrf");
    let (status, back) = sign_out_elsewhere(&app, &here, Some(&csrf)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(back, "/console/account?notice=signed-out-elsewhere");

    let (status, _, to) = visit(&app, &phone, "/console").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the phone is signed out");
    assert_eq!(to, "/console/sign-in");
    assert!(
        !door_admits(&app, "oc-ana", &anas_door).await,
        "the gateway's door is closed"
    );
    let (status, page, _) = visit(&app, &here, &back).await;
    assert_eq!(status, StatusCode::OK, "this browser stays signed in");
    assert!(page.contains("Every other session of your account has ended"));
    assert_eq!(listed_sessions(&page).len(), 1, "only this one left");
    assert!(
        page.contains("at your OpenClaw gateway: 0 browsers."),
        "{page}"
    );

    for browser in [&bob, &bobs_laptop] {
        let (status, _, _) = visit(&app, browser, "/console").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "another account's sessions are kept"
        );
    }
    assert!(
        door_admits(&app, "oc-bob", &bobs_door).await,
        "another account's door is untouched"
    );
    app.stop().await;
}

#[tokio::test]
async fn signing_out_everywhere_else_ends_the_other_browser_and_the_doors_on_sqlite() {
    signing_out_everywhere_else_ends_the_other_browser_and_the_doors(Backend::Sqlite).await;
}

#[tokio::test]
async fn signing_out_everywhere_else_ends_the_other_browser_and_the_doors_on_postgres() {
    signing_out_everywhere_else_ends_the_other_browser_and_the_doors(Backend::Postgres).await;
}

#[tokio::test]
async fn single_user_mode_offers_no_sign_out_everywhere() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.console_user = Some(UserId::parse("operator@example.com").unwrap());
    })
    .await;
    let mut visitor = Browser::new(&app);
    let (status, page) = visitor.get("/console/account").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(!page.contains("Signed-in sessions"), "{page}");
    assert!(!page.contains("sign-out-everywhere"), "{page}");
    let csrf = Browser::csrf(&page);
    let (status, body, _) = visitor
        .post("/console/sign-out-everywhere", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("single-user mode"), "{body}");
    app.stop().await;
}
