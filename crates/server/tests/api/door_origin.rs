//! Origin at the door: the owner's cookie opens the gateway only to pages of
//! the instance's own origin (another site's page in the owner's browser is
//! refused, WebSocket or not), devices still pass to the gateway's pairing,
//! and the console's pass is taken only from the console's own page, so no
//! other site can sign a browser in to someone else's instance.

use std::time::Duration;

use clawplane_domain::{Email, InstanceFields, InstanceStatus, UserId};
use clawplane_secrets::{EncryptionKey, KeyRing};
use clawplane_server::{Application, ServerConfig};
use clawplane_store::{Backend, NewInstance, Store};
use clawplane_testkit::TestDb;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};

use crate::console::PASSWORD;
use crate::helpers::unreachable_runtime;

/// A server with its store at hand, to make an instance ready.
struct DoorApp {
    port: u16,
    store: Store,
    client: Client,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDb,
}

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
    async fn spawn(backend: Backend) -> DoorApp {
        let db = TestDb::new(backend).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = Application::build(
            ServerConfig {
                run_jobs: false,
                ..Default::default()
            },
            db.store.clone(),
            KeyRing::new(EncryptionKey::generate()),
            unreachable_runtime(),
            listener,
        );
        let port = app.local_addr().unwrap().port();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        DoorApp {
            port,
            store: db.store.clone(),
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stop,
            handle,
            _db: db,
        }
    }

    /// The console's origin, as the browser names it.
    fn console(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// `runtime_name`'s own origin, as the browser names it.
    fn instance(&self, runtime_name: &str) -> String {
        format!("http://{runtime_name}.localhost:{}", self.port)
    }

    /// A request to the console (`host` None) or to an instance's host.
    fn at(&self, method: Method, host: Option<&str>, path: &str) -> RequestBuilder {
        let host = match host {
            Some(name) => format!("{name}.localhost:{}", self.port),
            None => format!("localhost:{}", self.port),
        };
        self.client
            .request(method, format!("http://127.0.0.1:{}{path}", self.port))
            .header("host", host)
    }

    /// Signs up `email` and gives the account a ready instance named
    /// `runtime_name`; returns the session cookie.
    async fn owner(&self, email: &str, runtime_name: &str) -> String {
        let page = self
            .at(Method::GET, None, "/console/sign-up")
            .send()
            .await
            .unwrap();
        let pre = cookie(&page, "clawplane_csrf").expect("a sign-up form cookie");
        let csrf = field(&page.text().await.unwrap(), "csrf");
        let done = self
            .at(Method::POST, None, "/console/sign-up")
            .header("cookie", format!("clawplane_csrf={pre}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", email),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "signed up");
        let session = cookie(&done, "clawplane_session").expect("a session");
        let (account, _) = self
            .store
            .account_by_email(&Email::parse(email).unwrap())
            .await
            .unwrap()
            .expect("the account");
        let instance = self
            .store
            .create_instance(NewInstance {
                user_id: UserId::parse(&account.id).unwrap(),
                fields: InstanceFields {
                    runtime_name: Some(runtime_name.to_owned()),
                    ..Default::default()
                },
            })
            .await
            .unwrap();
        self.store
            .set_instance_status(instance.id, InstanceStatus::Ready, None)
            .await
            .unwrap();
        session
    }

    /// "Open OpenClaw": the one-time pass the console hands to the door.
    async fn pass(&self, session: &str) -> String {
        let page = self
            .at(Method::GET, None, "/console/open")
            .header("cookie", format!("clawplane_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "the open page");
        field(&page.text().await.unwrap(), "pass")
    }

    /// Posts `pass` to `runtime_name`'s door as a browser's form post
    /// naming `header: value` as where it came from.
    async fn enter(&self, runtime_name: &str, pass: &str, from: (&str, &str)) -> Response {
        self.at(Method::POST, Some(runtime_name), "/__clawplane/door")
            .header(from.0, from.1)
            .header("sec-fetch-mode", "navigate")
            .form(&[("pass", pass)])
            .send()
            .await
            .unwrap()
    }

    /// The owner's door cookie, through the console's page.
    async fn door_cookie(&self, session: &str, runtime_name: &str) -> String {
        let pass = self.pass(session).await;
        let entered = self
            .enter(runtime_name, &pass, ("origin", &self.console()))
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

    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
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

/// The value `response` sets for cookie `name`.
fn cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// The value of the page's first hidden input `name`.
fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}: {page}"))
        + marker.len();
    page[at..].split('"').next().unwrap().to_owned()
}

async fn the_owners_cookie_opens_the_gateway_only_to_its_own_origin(backend: Backend) {
    let app = DoorApp::spawn(backend).await;
    let ana = app.owner("ana@example.com", "oc-ana").await;
    let cookie = format!("clawplane_door={}", app.door_cookie(&ana, "oc-ana").await);
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
        let r = app.enter("oc-ana", &pass, from).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{from:?}");
        assert!(cookie(&r, "clawplane_door").is_none(), "{from:?}");
    }
    assert_eq!(app.metric("refused").await - refused_before, 4.0);

    let console = app.console();
    let r = app.enter("oc-ana", &pass, ("origin", &console)).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the refusals left the pass"
    );
    assert!(cookie(&r, "clawplane_door").is_some());
    let again = app.enter("oc-ana", &pass, ("origin", &console)).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "used once");

    let pass = app.pass(&ana).await;
    let referer = format!("{console}/console/open");
    let r = app.enter("oc-ana", &pass, ("referer", &referer)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "Referer without Origin");
    let pass = app.pass(&ana).await;
    let loopback = format!("http://127.0.0.1:{}", app.port);
    let r = app.enter("oc-ana", &pass, ("origin", &loopback)).await;
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
