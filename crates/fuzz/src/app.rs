//! `serve` for a fuzz target: the real application on a loopback port over
//! a fresh SQLite store, as `crates/server/tests/api/helpers.rs` builds it,
//! plus one `ready` instance with its owner, so the ingress and the door
//! have someone to let in.
//!
//! The instance has no runtime: a request that passes the door is answered
//! 503 "cannot be reached" instead of being forwarded, which is how a
//! target tells "let in" from "refused" (401 or 403). It names no
//! provisioner, so the background supervisor leaves it alone.

use std::net::SocketAddr;
use std::sync::Arc;

use clawplane_domain::{Account, Email, InstanceFields, InstanceStatus, UserId};
use clawplane_secrets::{
    api_token_digest, generate_token, EncryptionKey, ExposeSecret, KeyRing, SecretString,
};
use clawplane_server::provision::static_env::{StaticProvisioner, StaticSettings};
use clawplane_server::{Application, ServerConfig};
use clawplane_store::{Backend, NewInstance, PassKind, Store};
use clawplane_testkit::TestDb;

use crate::wire::{self, RawRequest, Reply};

/// The control key of the app (`x-oa-control-key`).
pub const CONTROL_KEY: &str = "control-key-for-fuzzing-0123456789";
/// The internal key of the app (`x-oa-internal-key`).
pub const INTERNAL_KEY: &str = "internal-key-for-fuzzing-0123456789";
/// The ready instance's runtime name (its host is `oc-fuzz.localhost`).
pub const RUNTIME_NAME: &str = "oc-fuzz";
/// The marker of the ingress's own error page.
pub const INGRESS_PAGE_MARKER: &str = "OpenClaw is not reachable here";

/// A running app and what was seeded in it.
pub struct App {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its store, to seed passes and cookies.
    store: Store,
    /// The owner of the ready instance.
    owner: Account,
    runtime: tokio::runtime::Runtime,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _db: TestDb,
}

impl App {
    /// Starts the app on its own runtime, seeded with the ready instance.
    pub fn start() -> App {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let (address, store, owner, shutdown, db) = runtime.block_on(async {
            let db = TestDb::new(Backend::Sqlite).await;
            let config = ServerConfig {
                control_key: Some(SecretString::from(CONTROL_KEY.to_owned())),
                internal_key: Some(SecretString::from(INTERNAL_KEY.to_owned())),
                run_jobs: false,
                ..Default::default()
            };
            // Ready before `serve` starts: its start-up recovery would
            // otherwise drive the `provisioning` row it saw in between.
            let owner = seed_ready_instance(&db.store).await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port");
            let provisioner = Arc::new(StaticProvisioner::new(StaticSettings {
                runtime_url: Some("http://127.0.0.1:9".into()),
                ..Default::default()
            }));
            let app = Application::build(
                config,
                db.store.clone(),
                KeyRing::new(EncryptionKey::generate()),
                provisioner,
                listener,
            );
            let address = app.local_addr().expect("the bound address");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(app.run(async move {
                let _ = rx.await;
            }));
            (address, db.store.clone(), owner, tx, db)
        });
        App {
            address,
            store,
            owner,
            runtime,
            shutdown: Some(shutdown),
            _db: db,
        }
    }

    /// `Host` of the ready instance, with the app's port.
    pub fn instance_host(&self) -> String {
        format!("{RUNTIME_NAME}.localhost:{}", self.address.port())
    }

    /// The port suffix browsers put in origins (`:<port>`).
    pub fn port_suffix(&self) -> String {
        format!(":{}", self.address.port())
    }

    /// One exchange, waited for.
    pub fn send(&self, request: &RawRequest) -> Result<Reply, String> {
        self.runtime.block_on(wire::exchange(self.address, request))
    }

    /// A fresh pass of the owner for the instance's door, as the console's
    /// "Open OpenClaw" makes one, but good for an hour instead of a minute,
    /// so a long fuzzing run never outlives it.
    pub fn new_pass(&self) -> String {
        self.pass(PassKind::Handoff, 3600)
    }

    /// A fresh door cookie value of the owner for the instance's host.
    pub fn new_door_cookie(&self) -> String {
        self.pass(PassKind::Door, 12 * 3600)
    }

    fn pass(&self, kind: PassKind, seconds: i64) -> String {
        let token = generate_token();
        let token = token.expose_secret().to_owned();
        let owner = UserId::parse(&self.owner.id).expect("the owner's id");
        self.runtime.block_on(async {
            self.store
                .create_door_pass(
                    &api_token_digest(&token),
                    &owner,
                    kind,
                    RUNTIME_NAME,
                    chrono::Utc::now() + chrono::Duration::seconds(seconds),
                )
                .await
                .expect("store a pass");
        });
        token
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn seed_ready_instance(store: &Store) -> Account {
    let email = Email::parse("owner@example.com").expect("an address");
    let owner = store
        .create_account(&email, "not a hash: nobody signs in here")
        .await
        .expect("an account");
    let user = UserId::parse(&owner.id).expect("an account id is a user id");
    let instance = store
        .create_instance(NewInstance {
            user_id: user,
            fields: InstanceFields {
                runtime_name: Some(RUNTIME_NAME.to_owned()),
                ..Default::default()
            },
        })
        .await
        .expect("an instance");
    store
        .set_instance_status(instance.id, InstanceStatus::Ready, None)
        .await
        .expect("the instance is ready");
    owner
}
