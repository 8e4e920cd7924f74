//! The passes of instances' doors in their own table, on both backends:
//! found only by kind, host and while live, used once, bounded per account,
//! swept when expired, and deleted with the account's console session at
//! sign-out.

use chrono::{DateTime, Duration, Utc};
use clawplane_domain::{Email, UserId};
use clawplane_store::{PassKind, Store};
use clawplane_testkit::{backend_tests, TestDb};

async fn account(store: &Store, email: &str) -> UserId {
    let account = store
        .create_account(&Email::parse(email).unwrap(), "not-a-real-hash")
        .await
        .unwrap();
    UserId::parse(&account.id).unwrap()
}

fn later() -> DateTime<Utc> {
    Utc::now() + Duration::hours(1)
}

fn earlier() -> DateTime<Utc> {
    Utc::now() - Duration::seconds(1)
}

backend_tests!(
    a_pass_is_found_only_by_its_kind_and_host_while_it_lives,
    |db: TestDb| async move {
        let store = &db.store;
        let ana = account(store, "ana@example.com").await;
        store
            .create_door_pass("door", &ana, PassKind::Door, "oc-ana", later())
            .await
            .unwrap();
        store
            .create_door_pass("old", &ana, PassKind::Door, "oc-ana", earlier())
            .await
            .unwrap();
        let owner = |digest: &'static str, kind, host: &'static str| async move {
            store.door_pass_owner(digest, kind, host).await.unwrap()
        };
        assert_eq!(owner("door", PassKind::Door, "oc-ana").await, Some(ana));
        assert_eq!(owner("door", PassKind::Handoff, "oc-ana").await, None);
        assert_eq!(owner("door", PassKind::Door, "oc-bob").await, None);
        assert_eq!(
            owner("old", PassKind::Door, "oc-ana").await,
            None,
            "expired"
        );
        assert_eq!(owner("unknown", PassKind::Door, "oc-ana").await, None);
        assert!(
            store.session("door").await.unwrap().is_none(),
            "a pass is not a console session"
        );
    }
);

backend_tests!(a_pass_is_taken_once, |db: TestDb| async move {
    let store = &db.store;
    let ana = account(store, "ana@example.com").await;
    for (digest, host, expires) in [
        ("pass", "oc-ana", later()),
        ("expired", "oc-ana", earlier()),
    ] {
        store
            .create_door_pass(digest, &ana, PassKind::Handoff, host, expires)
            .await
            .unwrap();
    }
    let take = |digest: &'static str, kind, host: &'static str| async move {
        store.take_door_pass(digest, kind, host).await.unwrap()
    };
    assert_eq!(take("pass", PassKind::Handoff, "oc-bob").await, None);
    assert_eq!(take("pass", PassKind::Door, "oc-ana").await, None);
    assert_eq!(take("expired", PassKind::Handoff, "oc-ana").await, None);
    assert_eq!(
        store
            .live_door_passes(&ana, PassKind::Handoff)
            .await
            .unwrap(),
        1,
        "a pass to another host, or of another kind, is left alone"
    );
    assert_eq!(
        take("pass", PassKind::Handoff, "oc-ana").await,
        Some(ana.clone())
    );
    assert_eq!(
        take("pass", PassKind::Handoff, "oc-ana").await,
        None,
        "once"
    );
    assert_eq!(
        store.delete_expired_door_passes().await.unwrap(),
        1,
        "the expired one was the sweeper's"
    );
});

backend_tests!(
    the_newest_passes_are_kept_per_account_and_kind,
    |db: TestDb| async move {
        let store = &db.store;
        let ana = account(store, "ana@example.com").await;
        let bob = account(store, "bob@example.com").await;
        for i in 0..5 {
            let expires = later() + Duration::seconds(i);
            store
                .create_door_pass(&format!("h{i}"), &ana, PassKind::Handoff, "oc-ana", expires)
                .await
                .unwrap();
        }
        store
            .create_door_pass("d", &ana, PassKind::Door, "oc-ana", later())
            .await
            .unwrap();
        store
            .create_door_pass("b", &bob, PassKind::Handoff, "oc-bob", later())
            .await
            .unwrap();
        assert_eq!(
            store
                .live_door_passes(&ana, PassKind::Handoff)
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            store
                .keep_newest_door_passes(&ana, PassKind::Handoff, 2)
                .await
                .unwrap(),
            3
        );
        for (digest, kept) in [("h0", false), ("h2", false), ("h3", true), ("h4", true)] {
            let found = store
                .door_pass_owner(digest, PassKind::Handoff, "oc-ana")
                .await
                .unwrap();
            assert_eq!(found.is_some(), kept, "{digest}");
        }
        assert_eq!(
            store.live_door_passes(&ana, PassKind::Door).await.unwrap(),
            1,
            "the other kind is untouched"
        );
        assert_eq!(
            store
                .live_door_passes(&bob, PassKind::Handoff)
                .await
                .unwrap(),
            1,
            "another account's are untouched"
        );
    }
);

backend_tests!(
    the_sweep_deletes_only_expired_passes,
    |db: TestDb| async move {
        let store = &db.store;
        let ana = account(store, "ana@example.com").await;
        for (digest, kind, expires) in [
            ("live", PassKind::Door, later()),
            ("old-door", PassKind::Door, earlier()),
            ("old-pass", PassKind::Handoff, earlier()),
        ] {
            store
                .create_door_pass(digest, &ana, kind, "oc-ana", expires)
                .await
                .unwrap();
        }
        assert_eq!(store.delete_expired_door_passes().await.unwrap(), 2);
        assert_eq!(store.delete_expired_door_passes().await.unwrap(), 0);
        assert!(store
            .door_pass_owner("live", PassKind::Door, "oc-ana")
            .await
            .unwrap()
            .is_some());
        // Swept, a digest is free again.
        store
            .create_door_pass("old-door", &ana, PassKind::Door, "oc-ana", later())
            .await
            .expect("the expired row is gone");
    }
);

backend_tests!(
    signing_out_deletes_the_accounts_passes_and_no_one_elses,
    |db: TestDb| async move {
        let store = &db.store;
        let email = Email::parse("ana@example.com").unwrap();
        let ana_account = store
            .create_account(&email, "not-a-real-hash")
            .await
            .unwrap();
        let ana = UserId::parse(&ana_account.id).unwrap();
        let bob_account = store
            .create_account(&Email::parse("bob@example.com").unwrap(), "h")
            .await
            .unwrap();
        let bob = UserId::parse(&bob_account.id).unwrap();
        for (digest, account) in [
            ("ana-1", &ana_account),
            ("ana-2", &ana_account),
            ("bob-1", &bob_account),
        ] {
            store
                .create_session(digest, account, "csrf", later())
                .await
                .unwrap();
        }
        for (digest, user, kind) in [
            ("ana-door", &ana, PassKind::Door),
            ("ana-pass", &ana, PassKind::Handoff),
            ("bob-door", &bob, PassKind::Door),
        ] {
            store
                .create_door_pass(digest, user, kind, "oc-x", later())
                .await
                .unwrap();
        }

        store.delete_session_and_passes("ana-1").await.unwrap();

        assert!(store.session("ana-1").await.unwrap().is_none());
        assert!(
            store.session("ana-2").await.unwrap().is_some(),
            "her other console session is kept"
        );
        assert!(store.session("bob-1").await.unwrap().is_some());
        for kind in [PassKind::Door, PassKind::Handoff] {
            assert_eq!(store.live_door_passes(&ana, kind).await.unwrap(), 0);
        }
        assert_eq!(
            store.live_door_passes(&bob, PassKind::Door).await.unwrap(),
            1,
            "bob's door is his"
        );
        // An unknown session deletes nothing.
        store.delete_session_and_passes("unknown").await.unwrap();
        assert_eq!(
            store.live_door_passes(&bob, PassKind::Door).await.unwrap(),
            1
        );
    }
);
