//! A server for the door's tests, like `spawn_app`'s but with its store at
//! hand (to make instances ready and backdate rows), addressed by host name
//! as a browser addresses the console and an instance's door.

use std::time::Duration;

use clawplane_domain::{Email, InstanceFields, InstanceStatus, UserId};
use clawplane_secrets::{EncryptionKey, KeyRing};
use clawplane_server::{Application, ServerConfig};
use clawplane_store::{Backend, NewInstance, Store};
use clawplane_testkit::TestDb;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};

use crate::console::PASSWORD;
use crate::helpers::unreachable_runtime;

pub struct DoorApp {
    pub port: u16,
    pub store: Store,
    client: Client,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDb,
}

impl DoorApp {
    pub async fn spawn(backend: Backend) -> DoorApp {
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

    /// A request to the console (`host` None) or to an instance's host.
    pub fn at(&self, method: Method, host: Option<&str>, path: &str) -> RequestBuilder {
        let host = match host {
            Some(name) => format!("{name}.localhost:{}", self.port),
            None => format!("localhost:{}", self.port),
        };
        self.client
            .request(method, format!("http://127.0.0.1:{}{path}", self.port))
            .header("host", host)
    }

    /// Signs up `email`; returns the session cookie.
    pub async fn sign_up(&self, email: &str) -> String {
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
        cookie(&done, "clawplane_session").expect("a session")
    }

    /// Gives `email`'s account a ready instance named `runtime_name`.
    pub async fn ready_instance(&self, email: &str, runtime_name: &str) {
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
    }

    /// "Open OpenClaw": the one-time pass the console hands to the door.
    pub async fn pass(&self, session: &str) -> String {
        let page = self
            .at(Method::GET, None, "/console/open")
            .header("cookie", format!("clawplane_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "the open page");
        field(&page.text().await.unwrap(), "pass")
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }
}

/// The value `response` sets for cookie `name`.
pub fn cookie(response: &Response, name: &str) -> Option<String> {
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
pub fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}: {page}"))
        + marker.len();
    page[at..].split('"').next().unwrap().to_owned()
}
