//! The console beyond sign-in: the single-user beta mode
//! (`OA_INTERNAL_USER_ID`), the live-update script and the pages that ask
//! for it, deleting the instance, and errors said for people (credits run
//! out, no instance yet).

use clawplane_domain::{MicroUsd, UserId};
use clawplane_store::Backend;
use reqwest::StatusCode;

use crate::console::{Browser, PASSWORD};
use crate::helpers::{spawn_app, spawn_app_with};

const OPERATOR_USER: &str = "operator@example.com";

#[tokio::test]
async fn single_user_mode_needs_no_sign_in_and_still_checks_form_tokens() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.console_user = Some(UserId::parse(OPERATOR_USER).unwrap());
    })
    .await;
    let mut visitor = Browser::new(&app);
    let (status, page) = visitor.get("/console/account").await;
    assert_eq!(status, StatusCode::OK, "no sign-in: {page}");
    assert!(
        page.contains(OPERATOR_USER),
        "the configured user's console"
    );
    assert!(page.contains("single-user mode"));
    assert!(
        !page.contains("/console/sign-out"),
        "nothing to sign out of"
    );
    // Sign-in and sign-up lead to the console; no account is made.
    for path in ["/console/sign-in", "/console/sign-up"] {
        let (status, _) = visitor.get(path).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
    }
    let (status, _, to) = visitor
        .post(
            "/console/sign-up",
            &[("email", "x@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to.as_deref(), Some("/console"));

    // Forms still need the page's token.
    let (status, _, _) = visitor
        .post("/console/account/tokens", &[("name", "laptop")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = Browser::csrf(&page);
    let (status, page, _) = visitor
        .post(
            "/console/account/tokens",
            &[("csrf", &csrf), ("name", "laptop")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"new-token\""));
    // The token is the configured user's: the API lists it for that user.
    let (status, body) =
        crate::helpers::send(app.api(reqwest::Method::GET, "/api/openclaw/tokens", OPERATOR_USER))
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["tokens"][0]["name"], "laptop", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn without_single_user_mode_the_console_asks_for_a_sign_in() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut visitor = Browser::new(&app);
    let (status, _) = visitor.get("/console/account").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.stop().await;
}

#[tokio::test]
async fn pages_that_follow_progress_ask_the_script_to_poll() {
    let app = spawn_app(Backend::Sqlite).await;
    let script = app.get("/console/assets/console.js").send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("data-poll"));

    let mut ana = Browser::new(&app);
    ana.sign_up("ana@example.com", PASSWORD).await;
    let (_, overview) = ana.get("/console").await;
    assert!(overview.contains("/console/assets/console.js"));
    assert!(overview.contains("data-poll=\"5000\""), "status cards poll");
    let (_, security) = ana.get("/console/security").await;
    assert!(security.contains("data-poll=\"3000\""), "devices poll");
    let (_, billing) = ana.get("/console/billing").await;
    assert!(!billing.contains("data-poll"), "the ledger does not");
    let (_, account) = ana.get("/console/account").await;
    assert!(
        !account.contains("data-poll"),
        "never over a token shown once or a half-typed key"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_create_page_polls_only_while_provisioning() {
    // A provisioning instance: the runtime never answers within the test.
    let app = spawn_app(Backend::Sqlite).await;
    let mut ana = Browser::new(&app);
    ana.sign_up("ana@example.com", PASSWORD).await;
    let (_, page) = ana.get("/console/create").await;
    assert!(!page.contains("data-poll"), "nothing to follow yet");
    let csrf = Browser::csrf(&page);
    let (status, _, _) = ana.post("/console/create", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = ana.get("/console/create").await;
    if page.contains("badge provisioning") {
        assert!(page.contains("data-poll=\"1500\""));
        assert!(
            page.contains("<noscript><meta http-equiv=\"refresh\""),
            "without JavaScript the page refreshes itself"
        );
    } else {
        // Already failed against the unreachable runtime: nothing to follow.
        assert!(page.contains("badge error"), "{page}");
        assert!(!page.contains("data-poll"));
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_instance_needs_the_confirmation() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ana = Browser::new(&app);
    ana.sign_up("ana@example.com", PASSWORD).await;
    let (_, account) = ana.get("/console/account").await;
    assert!(
        !account.contains("Delete instance"),
        "nothing to delete yet"
    );
    let csrf = Browser::csrf(&account);
    ana.post("/console/create", &[("csrf", &csrf)]).await;
    let (_, account) = ana.get("/console/account").await;
    assert!(account.contains("Delete instance"));

    let (status, page, _) = ana
        .post("/console/account/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Nothing was deleted"), "{page}");
    let (_, overview) = ana.get("/console").await;
    assert!(!overview.contains("badge deleted"));

    let (status, _, to) = ana
        .post(
            "/console/account/delete",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to.as_deref(), Some("/console?notice=deleted"));
    let (_, overview) = ana.get("/console?notice=deleted").await;
    assert!(overview.contains("Your instance was deleted"));
    assert!(overview.contains("badge deleted"), "{overview}");
    app.stop().await;
}

#[tokio::test]
async fn errors_are_sentences_for_people() {
    // Instance-hours cost money and there is no monthly grant: a new user
    // has no credits, so creating is refused.
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.billing.monthly_grant = MicroUsd::ZERO;
        c.billing.instance_hour_price = MicroUsd::from_usd(1);
    })
    .await;
    let mut ana = Browser::new(&app);
    ana.sign_up("ana@example.com", PASSWORD).await;
    let (_, page) = ana.get("/console/create").await;
    let csrf = Browser::csrf(&page);
    let (status, page, _) = ana.post("/console/create", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert!(page.contains("Your credits have run out"), "{page}");
    assert!(!page.contains("insufficient_credits") && !page.contains("\"ok\""));

    // An action on an instance that does not exist.
    let (status, page, _) = ana.post("/console/usage/backup", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("Create one on the Create page"), "{page}");
    app.stop().await;
}
