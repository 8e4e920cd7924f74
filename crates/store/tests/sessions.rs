//! An account's console sessions as its owner sees them, on both backends:
//! listed live and newest first with what their client was (bounded, never
//! by digest), the current one marked; and "sign out everywhere else",
//! which ends every other session and every door pass of the account and
//! nothing of anyone else's.

use chrono::{DateTime, Duration, Utc};
use clawplane_domain::{Account, Email, UserId};
use clawplane_store::console::{SignedOut, MAX_CLIENT_CHARS};
use clawplane_store::{PassKind, Store};
use clawplane_testkit::{backend_tests, TestDb};

async fn account(store: &Store, email: &str) -> (Account, UserId) {
    let account = store
        .create_account(&Email::parse(email).unwrap(), "not-a-real-hash")
        .await
        .unwrap();
    let id = UserId::parse(&account.id).unwrap();
    (account, id)
}

fn later() -> DateTime<Utc> {
    Utc::now() + Duration::hours(1)
}

fn earlier() -> DateTime<Utc> {
    Utc::now() - Duration::seconds(1)
}

async fn session(store: &Store, digest: &str, account: &Account, expires: DateTime<Utc>) {
    store
        .create_session(digest, account, "csrf", expires)
        .await
        .unwrap();
}

backend_tests!(
    live_sessions_are_listed_newest_first_with_their_client_and_the_current_marked,
    |db: TestDb| async move {
        let store = &db.store;
        let (ana, ana_id) = account(store, "ana@example.com").await;
        let (bob, _) = account(store, "bob@example.com").await;
        // Created in this order; if two share a millisecond, the digest
        // orders them the same way.
        session(store, "s1-ana", &ana, later()).await;
        session(store, "s2-ana", &ana, later()).await;
        session(store, "s0-ana-expired", &ana, earlier()).await;
        session(store, "s3-bob", &bob, later()).await;
        let agent = format!("Agent\u{7}\n{}", "x".repeat(300));
        store
            .set_session_client("s1-ana", Some(&agent), Some("198.51.100.7"))
            .await
            .unwrap();
        store
            .set_session_client("no-such-session", Some("ignored"), None)
            .await
            .unwrap();

        let listed = store
            .live_sessions(&ana_id, Some("s1-ana"), 50)
            .await
            .unwrap();
        assert_eq!(listed.len(), 2, "ana's live sessions only: {listed:?}");
        let (newest, oldest) = (&listed[0], &listed[1]);
        assert!(newest.created_at >= oldest.created_at, "newest first");
        assert!(!newest.current, "s2 is not the asking session");
        assert_eq!(newest.client, None, "nothing recorded for s2");
        assert!(oldest.current, "s1 is the asking session");
        let client = oldest.client.as_deref().unwrap();
        assert_eq!(client.chars().count(), MAX_CLIENT_CHARS, "cut to the bound");
        assert!(client.starts_with("Agentx"), "control characters dropped");
        assert_eq!(oldest.address.as_deref(), Some("198.51.100.7"));
        assert!(oldest.expires_at > Utc::now());

        let one = store.live_sessions(&ana_id, None, 1).await.unwrap();
        assert_eq!(one.len(), 1, "bounded by the limit");
        assert_eq!(one[0].created_at, newest.created_at, "the newest kept");
        assert!(!one[0].current, "no current session asked: none marked");
    }
);

backend_tests!(
    signing_out_everywhere_else_keeps_this_session_and_no_one_elses_rows,
    |db: TestDb| async move {
        let store = &db.store;
        let (ana, ana_id) = account(store, "ana@example.com").await;
        let (bob, bob_id) = account(store, "bob@example.com").await;
        for digest in ["ana-here", "ana-laptop", "ana-phone"] {
            session(store, digest, &ana, later()).await;
        }
        session(store, "bob-here", &bob, later()).await;
        for (digest, who, kind, host) in [
            ("ana-door", &ana_id, PassKind::Door, "oc-ana"),
            ("ana-pass", &ana_id, PassKind::Handoff, "oc-ana"),
            ("bob-door", &bob_id, PassKind::Door, "oc-bob"),
        ] {
            store
                .create_door_pass(digest, who, kind, host, later())
                .await
                .unwrap();
        }

        let ended = store
            .delete_other_sessions_and_passes(&ana_id, Some("ana-here"))
            .await
            .unwrap();
        assert_eq!(
            ended,
            SignedOut {
                sessions: 2,
                passes: 2
            }
        );
        assert!(store.session("ana-here").await.unwrap().is_some(), "kept");
        assert!(store.session("ana-laptop").await.unwrap().is_none());
        assert!(store.session("ana-phone").await.unwrap().is_none());
        assert_eq!(
            store
                .door_pass_owner("ana-door", PassKind::Door, "oc-ana")
                .await
                .unwrap(),
            None,
            "ana's door cookie went"
        );
        assert_eq!(
            store
                .live_door_passes(&ana_id, PassKind::Handoff)
                .await
                .unwrap(),
            0,
            "and her unused pass"
        );
        assert!(store.session("bob-here").await.unwrap().is_some());
        assert_eq!(
            store
                .door_pass_owner("bob-door", PassKind::Door, "oc-bob")
                .await
                .unwrap(),
            Some(bob_id.clone()),
            "bob's door cookie is his"
        );

        let all = store
            .delete_other_sessions_and_passes(&ana_id, None)
            .await
            .unwrap();
        assert_eq!(all.sessions, 1, "without a session to keep, all go");
        assert!(store.session("ana-here").await.unwrap().is_none());
        assert!(store.session("bob-here").await.unwrap().is_some());
    }
);
