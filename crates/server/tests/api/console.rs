//! The web console over HTTP: sign-up and sign-in with sessions, CSRF on
//! every form, session fixation and signed-out cookies refused, throttled
//! sign-ins, and one person never seeing another's pages.

use std::collections::HashMap;

use clawplane_store::Backend;
use reqwest::{Client, StatusCode};

use crate::helpers::{spawn_app, TestApp};

/// A browser-like client: no redirects followed, cookies kept by hand.
pub struct Browser<'a> {
    app: &'a TestApp,
    client: Client,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.app.address))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        (r.status(), r.text().await.unwrap())
    }

    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let r = self
            .client
            .post(format!("{}{path}", self.app.address))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (r.status(), r.text().await.unwrap(), location)
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(page: &str) -> String {
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        page[at..].split('"').next().unwrap().to_owned()
    }

    pub async fn sign_up(
        &mut self,
        email: &str,
        password: &str,
    ) -> (StatusCode, String, Option<String>) {
        let (_, page) = self.get("/console/sign-up").await;
        let csrf = Self::csrf(&page);
        self.post(
            "/console/sign-up",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    async fn sign_in(
        &mut self,
        email: &str,
        password: &str,
    ) -> (StatusCode, String, Option<String>) {
        let (_, page) = self.get("/console/sign-in").await;
        let csrf = Self::csrf(&page);
        self.post(
            "/console/sign-in",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }
}

pub const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn sign_up_sign_in_pages_and_sign_out() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ana = Browser::new(&app);
    let (status, _, to) = ana.sign_up("Ana@Example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to.as_deref(), Some("/console"));
    let session = ana
        .cookies
        .get("clawplane_session")
        .cloned()
        .expect("a session");
    for page in [
        "/console",
        "/console/create",
        "/console/security",
        "/console/usage",
        "/console/billing",
        "/console/account",
    ] {
        let (status, body) = ana.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {body}");
        assert!(
            body.contains("ana@example.com"),
            "{page} shows who is signed in"
        );
        for (href, _) in clawplane_server::console::LINKS {
            assert!(
                body.contains(&format!("href=\"{href}\"")),
                "{page} links {href}"
            );
        }
        assert!(!body.contains("\"ok\":"), "{page} is a page, not JSON");
    }
    let (_, overview) = ana.get("/console").await;
    assert!(overview.contains("Not created"));
    let (_, billing) = ana.get("/console/billing").await;
    assert!(billing.contains("$0.00"), "{billing}");

    // Create: the instance exists and the stepper moves.
    let (_, create) = ana.get("/console/create").await;
    let csrf = Browser::csrf(&create);
    let (status, _, to) = ana.post("/console/create", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to.as_deref(), Some("/console/create?notice=created"));
    let (_, create) = ana.get("/console/create?notice=created").await;
    assert!(create.contains("Your instance is being created."));
    assert!(
        create.contains("Provisioning") || create.contains("Error"),
        "{create}"
    );
    let (_, billing) = ana.get("/console/billing").await;
    assert!(billing.contains("$10.00"), "the month's grant: {billing}");

    // Sign out: the old cookie no longer opens anything.
    let (_, page) = ana.get("/console").await;
    let csrf = Browser::csrf(&page);
    let (status, _, to) = ana.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to.as_deref(), Some("/console/sign-in"));
    ana.cookies.insert("clawplane_session".into(), session);
    let (status, _) = ana.get("/console").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a signed-out cookie is refused"
    );

    // Signing in again works; a wrong password does not.
    let (status, body, _) = ana.sign_in("ana@example.com", "wrong password!").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("do not match"));
    let (status, _, to) = ana.sign_in("ana@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to.as_deref(), Some("/console"));
    app.stop().await;
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ana = Browser::new(&app);
    ana.sign_up("ana@example.com", PASSWORD).await;
    for (path, form) in [
        ("/console/create", vec![]),
        ("/console/account/tokens", vec![("name", "laptop")]),
        ("/console/sign-out", vec![]),
    ] {
        let (status, body, _) = ana.post(path, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("did not come from this site"), "{body}");
        let mut wrong = form.clone();
        wrong.push(("csrf", "not-the-token"));
        let (status, _, _) = ana.post(path, &wrong).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (_, overview) = ana.get("/console").await;
    assert!(overview.contains("Not created"), "nothing was created");
    let (_, account) = ana.get("/console/account").await;
    assert!(account.contains("No token yet."));
    // A body that is not a form is a page that says so, not a 5xx.
    let r = ana
        .client
        .post(format!("{}/console/create", app.address))
        .header("cookie", ana.cookie_header())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("could not be read"));
    // A sign-in form without its cookie's token is refused too.
    let mut other = Browser::new(&app);
    let (status, _, _) = other
        .post(
            "/console/sign-in",
            &[("email", "ana@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn a_planted_session_cookie_is_never_promoted() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ana = Browser::new(&app);
    ana.sign_up("ana@example.com", PASSWORD).await;
    let (_, page) = ana.get("/console").await;
    let csrf = Browser::csrf(&page);
    ana.post("/console/sign-out", &[("csrf", &csrf)]).await;

    let mut victim = Browser::new(&app);
    victim.cookies.insert(
        "clawplane_session".into(),
        "attacker-chosen-value-0123456789".into(),
    );
    let (status, _) = victim.get("/console").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "an unknown session is not signed in"
    );
    victim.sign_in("ana@example.com", PASSWORD).await;
    let issued = victim.cookies.get("clawplane_session").unwrap();
    assert_ne!(
        issued, "attacker-chosen-value-0123456789",
        "a fresh session at sign-in"
    );
    let mut attacker = Browser::new(&app);
    attacker.cookies.insert(
        "clawplane_session".into(),
        "attacker-chosen-value-0123456789".into(),
    );
    let (status, _) = attacker.get("/console").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.stop().await;
}

#[tokio::test]
async fn failed_sign_ins_are_throttled() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ana = Browser::new(&app);
    ana.sign_up("ana@example.com", PASSWORD).await;
    let mut guesser = Browser::new(&app);
    // Three free failures, then one that makes this address wait a second
    // for this account (other addresses: `accounts.rs`).
    for _ in 0..4 {
        let (status, _, _) = guesser
            .sign_in("ana@example.com", "guess-guess-guess")
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body, _) = guesser.sign_in("ana@example.com", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "from the guessing address even the right password waits"
    );
    assert!(body.contains("Wait a second"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn one_person_never_sees_anothers_pages() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ana = Browser::new(&app);
    let mut bob = Browser::new(&app);
    ana.sign_up("ana@example.com", PASSWORD).await;
    bob.sign_up("bob@example.com", PASSWORD).await;
    let (_, account) = ana.get("/console/account").await;
    let csrf = Browser::csrf(&account);
    let (status, page, _) = ana
        .post(
            "/console/account/tokens",
            &[("csrf", &csrf), ("name", "ana-laptop")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("ana-laptop") && page.contains("id=\"new-token\""));
    let (_, account) = ana.get("/console/account").await;
    assert!(
        !account.contains("id=\"new-token\""),
        "the token is shown once"
    );
    let (_, bobs) = bob.get("/console/account").await;
    assert!(!bobs.contains("ana-laptop"));
    assert!(!bobs.contains("ana@example.com"));
    // Bob cannot revoke Ana's token, even with his own valid form token.
    let token_id = account
        .split("/console/account/tokens/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let bob_csrf = Browser::csrf(&bobs);
    let (status, _, _) = bob
        .post(
            &format!("/console/account/tokens/{token_id}/revoke"),
            &[("csrf", &bob_csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, account) = ana.get("/console/account").await;
    assert!(account.contains("active"));
    app.stop().await;
}
