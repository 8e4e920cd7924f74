//! The door's cookies end with the console session: signing out deletes the
//! account's passes and door cookies (and no one else's), so the gateway's
//! door refuses them at the next request; the sweeper deletes expired
//! sessions, passes and door cookies and keeps live ones.

use std::time::Duration;

use clawplane_domain::{Account, Email, UserId};
use clawplane_server::console::session::{spawn_sweeper, sweep_expired};
use clawplane_store::{Backend, PassKind, Store};
use clawplane_testkit::TestDb;
use reqwest::{Response, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::door_app::{cookie, field, DoorApp};

impl DoorApp {
    /// Posts `pass` to `runtime_name`'s door.
    async fn enter(&self, runtime_name: &str, pass: &str) -> Response {
        self.at(
            reqwest::Method::POST,
            Some(runtime_name),
            "/__clawplane/door",
        )
        .form(&[("pass", pass)])
        .send()
        .await
        .unwrap()
    }

    /// A door cookie for `runtime_name`, through the console's pass.
    async fn door_cookie(&self, session: &str, runtime_name: &str) -> String {
        let pass = self.pass(session).await;
        let entered = self.enter(runtime_name, &pass).await;
        assert_eq!(entered.status(), StatusCode::SEE_OTHER, "the pass is taken");
        cookie(&entered, "clawplane_door").expect("a door cookie")
    }

    /// A browser's page load at `runtime_name` with `door`: whether the
    /// door let it through (to a runtime that cannot be reached here).
    async fn door_admits(&self, runtime_name: &str, door: &str) -> bool {
        let r = self
            .at(reqwest::Method::GET, Some(runtime_name), "/")
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

    async fn sign_out(&self, session: &str) {
        let page = self
            .at(reqwest::Method::GET, None, "/console")
            .header("cookie", format!("clawplane_session={session}"))
            .send()
            .await
            .unwrap();
        let csrf = field(&page.text().await.unwrap(), "csrf");
        let done = self
            .at(reqwest::Method::POST, None, "/console/sign-out")
            .header("cookie", format!("clawplane_session={session}"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "signed out");
    }

    async fn signed_in(&self, session: &str) -> bool {
        let r = self
            .at(reqwest::Method::GET, None, "/console")
            .header("cookie", format!("clawplane_session={session}"))
            .send()
            .await
            .unwrap();
        r.status() == StatusCode::OK
    }
}

async fn signing_out_closes_the_accounts_doors_and_no_one_elses(backend: Backend) {
    let app = DoorApp::spawn(backend).await;
    let ana = app.sign_up("ana@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    app.ready_instance("ana@example.com", "oc-ana").await;
    app.ready_instance("bob@example.com", "oc-bob").await;
    let anas_door = app.door_cookie(&ana, "oc-ana").await;
    let anas_unused_pass = app.pass(&ana).await;
    let bobs_door = app.door_cookie(&bob, "oc-bob").await;
    assert!(app.door_admits("oc-ana", &anas_door).await);
    assert!(app.door_admits("oc-bob", &bobs_door).await);

    app.sign_out(&ana).await;

    assert!(
        !app.door_admits("oc-ana", &anas_door).await,
        "ana's browser at her gateway is refused at its next request"
    );
    let late = app.enter("oc-ana", &anas_unused_pass).await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED, "her pass went too");
    assert!(
        app.door_admits("oc-bob", &bobs_door).await,
        "bob's door cookie is his, not ana's"
    );
    assert!(app.signed_in(&bob).await, "bob is still signed in");
    app.stop().await;
}

#[tokio::test]
async fn signing_out_closes_the_accounts_doors_and_no_one_elses_on_sqlite() {
    signing_out_closes_the_accounts_doors_and_no_one_elses(Backend::Sqlite).await;
}

#[tokio::test]
async fn signing_out_closes_the_accounts_doors_and_no_one_elses_on_postgres() {
    signing_out_closes_the_accounts_doors_and_no_one_elses(Backend::Postgres).await;
}

async fn account(store: &Store, email: &str) -> Account {
    store
        .create_account(&Email::parse(email).unwrap(), "not-a-real-hash")
        .await
        .unwrap()
}

async fn the_sweep_removes_expired_rows_and_keeps_live_ones(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let ana = account(store, "ana@example.com").await;
    let bob = account(store, "bob@example.com").await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let earlier = chrono::Utc::now() - chrono::Duration::seconds(1);
    for (digest, who, expires) in [
        ("live-session", &ana, later),
        ("old-session", &ana, earlier),
    ] {
        store
            .create_session(digest, who, "csrf-token", expires)
            .await
            .unwrap();
    }
    for (digest, who, kind, host, expires) in [
        ("live-door", &ana, PassKind::Door, "oc-ana", later),
        ("old-pass", &ana, PassKind::Handoff, "oc-ana", earlier),
        ("old-door", &bob, PassKind::Door, "oc-bob", earlier),
    ] {
        store
            .create_door_pass(digest, &user_id(who), kind, host, expires)
            .await
            .unwrap();
    }

    assert_eq!(sweep_expired(store).await.unwrap(), 3, "the expired three");
    assert_eq!(sweep_expired(store).await.unwrap(), 0, "nothing is left");
    assert!(store.session("live-session").await.unwrap().is_some());
    assert_eq!(
        store
            .door_pass_owner("live-door", PassKind::Door, "oc-ana")
            .await
            .unwrap(),
        Some(user_id(&ana)),
        "live-door"
    );
}

fn user_id(account: &Account) -> UserId {
    UserId::parse(&account.id).unwrap()
}

#[tokio::test]
async fn the_sweep_removes_expired_rows_and_keeps_live_ones_on_sqlite() {
    the_sweep_removes_expired_rows_and_keeps_live_ones(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_sweep_removes_expired_rows_and_keeps_live_ones_on_postgres() {
    the_sweep_removes_expired_rows_and_keeps_live_ones(Backend::Postgres).await;
}

#[tokio::test]
async fn the_sweeper_sweeps_at_once_and_stops_when_told() {
    let db = TestDb::new(Backend::Sqlite).await;
    let ana = account(&db.store, "ana@example.com").await;
    let earlier = chrono::Utc::now() - chrono::Duration::seconds(1);
    let ana = user_id(&ana);
    let old_door = || {
        db.store
            .create_door_pass("old-door", &ana, PassKind::Door, "oc-ana", earlier)
    };
    old_door().await.unwrap();
    let shutdown = CancellationToken::new();
    let sweeper = spawn_sweeper(
        db.store.clone(),
        Duration::from_secs(3600),
        shutdown.clone(),
    );
    // The expired row holds its digest until it is swept: recording the same
    // digest again succeeds only once the sweeper has run.
    tokio::time::timeout(Duration::from_secs(10), async {
        while old_door().await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first sweep runs at once, not after the interval");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), sweeper)
        .await
        .expect("the sweeper stops when told")
        .unwrap();
}
