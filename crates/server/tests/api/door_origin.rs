//! Origin at the door: the owner's cookie opens the gateway only to pages of
//! the instance's own origin (another site's page in the owner's browser is
//! refused, WebSocket or not), devices still pass to the gateway's pairing,
//! and the console's pass is taken only from the console's own page, so no
//! other site can sign a browser in to someone else's instance.

use clawplane_store::Backend;
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::door_app::{cookie, DoorApp};

/// What the door did with a request.
#[derive(Debug, PartialEq, Eq)]
enum Door {
    /// On to the runtime (which cannot be reached here).
    Passed,
    /// Refused as another site's request, with the door's page.
    Foreign,
    /// Refused: sign in first.
    SignIn,
}

impl DoorApp {
    /// The console's origin, as the browser names it.
    fn console(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// `runtime_name`'s own origin, as the browser names it.
    fn instance(&self, runtime_name: &str) -> String {
        format!("http://{runtime_name}.localhost:{}", self.port)
    }

    /// Signs up `email` and gives the account a ready instance named
    /// `runtime_name`; returns the session cookie.
    async fn owner(&self, email: &str, runtime_name: &str) -> String {
        let session = self.sign_up(email).await;
        self.ready_instance(email, runtime_name).await;
        session
    }

    /// Posts `pass` to `runtime_name`'s door as a browser's form post
    /// naming `header: value` as where it came from.
    async fn enter_from(&self, runtime_name: &str, pass: &str, from: (&str, &str)) -> Response {
        self.at(Method::POST, Some(runtime_name), "/__clawplane/door")
            .header(from.0, from.1)
            .header("sec-fetch-mode", "navigate")
            .form(&[("pass", pass)])
            .send()
            .await
            .unwrap()
    }

    /// The owner's door cookie, through the console's page.
    async fn console_door_cookie(&self, session: &str, runtime_name: &str) -> String {
        let pass = self.pass(session).await;
        let entered = self
            .enter_from(runtime_name, &pass, ("origin", &self.console()))
            .await;
        assert_eq!(entered.status(), StatusCode::SEE_OTHER, "the pass is taken");
        cookie(&entered, "clawplane_door").expect("a door cookie")
    }

    async fn metric(&self, outcome: &str) -> f64 {
        let text = self
            .at(Method::GET, None, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let prefix = format!("clawplane_ingress_requests_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }
}

/// What the door did with `request`.
async fn door(request: RequestBuilder) -> Door {
    let r = request.send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    match status {
        StatusCode::SERVICE_UNAVAILABLE if body.contains("cannot be reached") => Door::Passed,
        StatusCode::BAD_GATEWAY => Door::Passed,
        StatusCode::FORBIDDEN if body.contains("came from another site") => Door::Foreign,
        StatusCode::UNAUTHORIZED if body.contains("Sign in to the console") => Door::SignIn,
        _ => panic!("neither through nor refused ({status}): {body}"),
    }
}

/// `request` as a browser's WebSocket upgrade.
fn websocket(request: RequestBuilder) -> RequestBuilder {
    request
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

async fn the_owners_cookie_opens_the_gateway_only_to_its_own_origin(backend: Backend) {
    let app = DoorApp::spawn(backend).await;
    let ana = app.owner("ana@example.com", "oc-ana").await;
    let cookie = format!(
        "clawplane_door={}",
        app.console_door_cookie(&ana, "oc-ana").await
    );
    let own = app.instance("oc-ana");
    let ws = |origin: &str| {
        websocket(app.at(Method::GET, Some("oc-ana"), "/"))
            .header("cookie", &cookie)
            .header("origin", origin)
    };
    let refused_before = app.metric("refused").await;

    for foreign in ["http://evil.example", "null", &app.instance("oc-bob")] {
        assert_eq!(door(ws(foreign)).await, Door::Foreign, "{foreign}");
    }
    let fetch = app
        .at(Method::POST, Some("oc-ana"), "/api/x")
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site");
    assert_eq!(door(fetch).await, Door::Foreign, "a plain request too");
    assert_eq!(
        app.metric("refused").await - refused_before,
        4.0,
        "each refusal is counted"
    );

    assert_eq!(door(ws(&own)).await, Door::Passed, "the Control UI's own");
    let page = app
        .at(Method::GET, Some("oc-ana"), "/")
        .header("cookie", &cookie)
        .header("sec-fetch-mode", "navigate");
    assert_eq!(door(page).await, Door::Passed, "a page load has no Origin");

    let device = websocket(app.at(Method::GET, Some("oc-ana"), "/"));
    assert_eq!(door(device).await, Door::Passed, "a device, to its pairing");
    let stranger = websocket(app.at(Method::GET, Some("oc-ana"), "/")).header("origin", &own);
    assert_eq!(
        door(stranger).await,
        Door::SignIn,
        "a browser without the cookie"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_owners_cookie_opens_the_gateway_only_to_its_own_origin_on_sqlite() {
    the_owners_cookie_opens_the_gateway_only_to_its_own_origin(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_owners_cookie_opens_the_gateway_only_to_its_own_origin_on_postgres() {
    the_owners_cookie_opens_the_gateway_only_to_its_own_origin(Backend::Postgres).await;
}

async fn the_pass_is_taken_only_from_the_consoles_page(backend: Backend) {
    let app = DoorApp::spawn(backend).await;
    let ana = app.owner("ana@example.com", "oc-ana").await;
    let pass = app.pass(&ana).await;
    let own = app.instance("oc-ana");
    let refused_before = app.metric("refused").await;

    for from in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("origin", own.as_str()),
        ("referer", "http://evil.example/localhost"),
    ] {
        let r = app.enter_from("oc-ana", &pass, from).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{from:?}");
        assert!(cookie(&r, "clawplane_door").is_none(), "{from:?}");
    }
    assert_eq!(app.metric("refused").await - refused_before, 4.0);

    let console = app.console();
    let r = app.enter_from("oc-ana", &pass, ("origin", &console)).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the refusals left the pass"
    );
    assert!(cookie(&r, "clawplane_door").is_some());
    let again = app.enter_from("oc-ana", &pass, ("origin", &console)).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "used once");

    let pass = app.pass(&ana).await;
    let referer = format!("{console}/console/open");
    let r = app.enter_from("oc-ana", &pass, ("referer", &referer)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "Referer without Origin");
    let pass = app.pass(&ana).await;
    let loopback = format!("http://127.0.0.1:{}", app.port);
    let r = app.enter_from("oc-ana", &pass, ("origin", &loopback)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the console on loopback");
    app.stop().await;
}

#[tokio::test]
async fn the_pass_is_taken_only_from_the_consoles_page_on_sqlite() {
    the_pass_is_taken_only_from_the_consoles_page(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_pass_is_taken_only_from_the_consoles_page_on_postgres() {
    the_pass_is_taken_only_from_the_consoles_page(Backend::Postgres).await;
}
