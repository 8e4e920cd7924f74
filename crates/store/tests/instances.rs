//! Instance storage: the same behaviour on SQLite and PostgreSQL.

use std::collections::HashSet;

use clawplane_domain::{InstanceFields, InstanceStatus, UserId};
use clawplane_store::{NewInstance, Store, StoreError};
use clawplane_testkit::{backend_tests, TestDb};

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn new_instance(user_id: &str) -> NewInstance {
    NewInstance {
        user_id: user(user_id),
        fields: InstanceFields {
            provisioner: Some("local".into()),
            ..Default::default()
        },
    }
}

async fn delete(store: &Store, user_id: &str) {
    let live = store
        .live_instance_for_user(&user(user_id))
        .await
        .unwrap()
        .unwrap();
    store
        .set_instance_status(live.id, InstanceStatus::Deleted, None)
        .await
        .unwrap();
}

backend_tests!(
    a_new_instance_starts_provisioning_with_utc_timestamps,
    |db: TestDb| async move {
        let before = chrono::Utc::now().timestamp_millis();
        let created = db
            .store
            .create_instance(new_instance("alice"))
            .await
            .unwrap();
        assert_eq!(created.status, InstanceStatus::Provisioning);
        assert_eq!(created.user_id.as_str(), "alice");
        assert_eq!(created.provisioner.as_deref(), Some("local"));
        assert!(created.last_ready_at.is_none());
        assert!(created.secrets.is_empty());
        let created_ms = created.created_at.timestamp_millis();
        assert!(created_ms >= before && created_ms <= chrono::Utc::now().timestamp_millis());
        assert_eq!(created.created_at, created.updated_at);
        let read = db.store.instance(created.id).await.unwrap();
        assert_eq!(read, created);
        let live = db
            .store
            .live_instance_for_user(&user("alice"))
            .await
            .unwrap();
        assert_eq!(live.unwrap().id, created.id);
        assert!(db
            .store
            .live_instance_for_user(&user("bob"))
            .await
            .unwrap()
            .is_none());
    }
);

backend_tests!(
    a_second_live_instance_for_one_user_is_refused,
    |db: TestDb| async move {
        db.store
            .create_instance(new_instance("alice"))
            .await
            .unwrap();
        let err = db
            .store
            .create_instance(new_instance("alice"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::LiveInstanceExists(ref u) if u.as_str() == "alice"),
            "{err}"
        );
        // Another user is unaffected.
        db.store.create_instance(new_instance("bob")).await.unwrap();
    }
);

backend_tests!(
    concurrent_creates_for_one_user_leave_exactly_one_live_instance,
    |db: TestDb| async move {
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let store = db.store.clone();
            tasks.push(tokio::spawn(async move {
                store.create_instance(new_instance("racer")).await
            }));
        }
        let mut created = Vec::new();
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(instance) => created.push(instance),
                Err(StoreError::LiveInstanceExists(_)) => refused += 1,
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(created.len(), 1, "exactly one create wins");
        assert_eq!(refused, 31);
        let live = db
            .store
            .live_instance_for_user(&user("racer"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live.id, created[0].id);
    }
);

backend_tests!(
    after_delete_the_user_can_provision_again_as_a_new_instance,
    |db: TestDb| async move {
        let first = db
            .store
            .create_instance(new_instance("carol"))
            .await
            .unwrap();
        delete(&db.store, "carol").await;
        assert!(db
            .store
            .live_instance_for_user(&user("carol"))
            .await
            .unwrap()
            .is_none());
        let shown = db
            .store
            .current_instance_for_user(&user("carol"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (shown.id, shown.status),
            (first.id, InstanceStatus::Deleted)
        );

        let second = db
            .store
            .create_instance(new_instance("carol"))
            .await
            .unwrap();
        assert_ne!(second.id, first.id);
        let shown = db
            .store
            .current_instance_for_user(&user("carol"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            shown.id, second.id,
            "the live instance wins over deleted ones"
        );
        // The deleted row can never come back while another is live.
        let err = db
            .store
            .set_instance_status(first.id, InstanceStatus::Provisioning, None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Transition(_)), "{err}");
    }
);

backend_tests!(
    every_status_write_goes_through_the_transition_table,
    |db: TestDb| async move {
        for from in InstanceStatus::ALL {
            for to in InstanceStatus::ALL {
                let user_id = format!("u-{from}-{to}");
                let instance = db
                    .store
                    .create_instance(new_instance(&user_id))
                    .await
                    .unwrap();
                let at_from = drive_to(&db.store, instance.id, from).await;
                let result = db
                    .store
                    .set_instance_status(instance.id, to, Some("test"))
                    .await;
                let after = db.store.instance(instance.id).await.unwrap();
                if from.can_transition_to(to) {
                    let updated = result.unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
                    assert_eq!(updated.status, to);
                    assert_eq!(after.status, to);
                } else {
                    let err = result.unwrap_err();
                    assert!(
                        matches!(err, StoreError::Transition(_)),
                        "{from} -> {to}: {err}"
                    );
                    assert_eq!(after, at_from, "a refused write changes nothing");
                }
            }
        }
    }
);

/// Drives a fresh instance to `status` along allowed transitions.
async fn drive_to(
    store: &Store,
    id: clawplane_domain::InstanceId,
    status: InstanceStatus,
) -> clawplane_domain::Instance {
    use InstanceStatus::*;
    let path: &[InstanceStatus] = match status {
        Provisioning => &[],
        Ready => &[Ready],
        Stopped => &[Ready, Stopped],
        Error => &[Error],
        Deleted => &[Deleted],
    };
    for step in path {
        store.set_instance_status(id, *step, None).await.unwrap();
    }
    store.instance(id).await.unwrap()
}

backend_tests!(
    last_ready_at_is_set_on_every_transition_into_ready,
    |db: TestDb| async move {
        let instance = db
            .store
            .create_instance(new_instance("dave"))
            .await
            .unwrap();
        let ready = db
            .store
            .set_instance_status(instance.id, InstanceStatus::Ready, None)
            .await
            .unwrap();
        let first = ready.last_ready_at.expect("set on provisioning -> ready");
        assert_eq!(ready.status_reason, None);

        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let again = db
            .store
            .set_instance_status(instance.id, InstanceStatus::Ready, None)
            .await
            .unwrap();
        assert_eq!(
            again.last_ready_at,
            Some(first),
            "ready -> ready is not a transition"
        );

        let stopped = db
            .store
            .set_instance_status(
                instance.id,
                InstanceStatus::Stopped,
                Some("balance reached the floor"),
            )
            .await
            .unwrap();
        assert_eq!(
            stopped.status_reason.as_deref(),
            Some("balance reached the floor")
        );
        assert_eq!(
            stopped.last_ready_at,
            Some(first),
            "leaving ready keeps the time"
        );

        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let back = db
            .store
            .set_instance_status(instance.id, InstanceStatus::Ready, None)
            .await
            .unwrap();
        let second = back.last_ready_at.unwrap();
        assert!(second > first, "stopped -> ready sets it again");
        assert_eq!(back.status_reason, None, "the reason is cleared");
    }
);

backend_tests!(
    concurrent_status_writers_all_pass_the_table,
    |db: TestDb| async move {
        // Many writers race provisioning -> ready and provisioning -> error. Whatever
        // order they commit in, every committed write was allowed from the status
        // it replaced, so the instance ends in ready or error, never stuck.
        let instance = db
            .store
            .create_instance(new_instance("erin"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = db.store.clone();
            let to = if i % 2 == 0 {
                InstanceStatus::Ready
            } else {
                InstanceStatus::Error
            };
            tasks.push(tokio::spawn(async move {
                store.set_instance_status(instance.id, to, None).await
            }));
        }
        let mut outcomes = HashSet::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(i) => {
                    outcomes.insert(i.status);
                }
                Err(StoreError::Transition(_)) => {}
                Err(other) => panic!("unexpected: {other}"),
            }
        }
        let last = db.store.instance(instance.id).await.unwrap();
        assert!(matches!(
            last.status,
            InstanceStatus::Ready | InstanceStatus::Error
        ));
        assert!(!outcomes.is_empty());
    }
);

backend_tests!(
    provisioner_fields_update_and_keep_unset_ones,
    |db: TestDb| async move {
        let instance = db
            .store
            .create_instance(new_instance("frank"))
            .await
            .unwrap();
        let fields = InstanceFields {
            runtime_url: Some("http://127.0.0.1:9001".into()),
            runtime_name: Some("oc-frank".into()),
            r2_bucket_name: Some("bucket-frank".into()),
            ..Default::default()
        };
        let updated = db
            .store
            .update_instance_fields(instance.id, &fields)
            .await
            .unwrap();
        assert_eq!(
            updated.runtime_url.as_deref(),
            Some("http://127.0.0.1:9001")
        );
        assert_eq!(
            updated.provisioner.as_deref(),
            Some("local"),
            "unset fields are kept"
        );
        assert!(updated.updated_at >= instance.updated_at);

        // Runtime names are unique among live instances.
        let other = db
            .store
            .create_instance(new_instance("grace"))
            .await
            .unwrap();
        let clash = InstanceFields {
            runtime_name: Some("oc-frank".into()),
            ..Default::default()
        };
        let err = db
            .store
            .update_instance_fields(other.id, &clash)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::RuntimeNameTaken), "{err}");

        // Deleted instances are read-only.
        db.store
            .set_instance_status(instance.id, InstanceStatus::Deleted, None)
            .await
            .unwrap();
        let err = db
            .store
            .update_instance_fields(instance.id, &fields)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::WrongStatus(InstanceStatus::Deleted)),
            "{err}"
        );
    }
);

backend_tests!(unknown_instances_are_not_found, |db: TestDb| async move {
    let id = clawplane_domain::InstanceId::new();
    assert!(matches!(
        db.store.instance(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        db.store
            .set_instance_status(id, InstanceStatus::Ready, None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        db.store
            .update_instance_fields(id, &InstanceFields::default())
            .await,
        Err(StoreError::NotFound)
    ));
});

backend_tests!(
    the_reconciler_can_list_instances_by_status_and_age,
    |db: TestDb| async move {
        let a = db.store.create_instance(new_instance("h1")).await.unwrap();
        let b = db.store.create_instance(new_instance("h2")).await.unwrap();
        db.store
            .set_instance_status(b.id, InstanceStatus::Ready, None)
            .await
            .unwrap();
        let provisioning = db
            .store
            .instances_in_status(InstanceStatus::Provisioning, None, 10)
            .await
            .unwrap();
        assert_eq!(
            provisioning.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![a.id]
        );
        let old = db
            .store
            .instances_in_status(InstanceStatus::Provisioning, Some(a.created_at), 10)
            .await
            .unwrap();
        assert!(old.is_empty(), "only instances older than the cut-off");
        let counts = db.store.count_instances_by_status().await.unwrap();
        assert!(counts.contains(&(InstanceStatus::Provisioning, 1)));
        assert!(counts.contains(&(InstanceStatus::Ready, 1)));
        db.store.ping().await.unwrap();
    }
);

#[tokio::test]
async fn the_sqlite_file_is_created_in_wal_mode_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let options = clawplane_store::StoreOptions::default();
    let store = Store::open_sqlite_dir(&dir.path().join("nested"), &options)
        .await
        .unwrap();
    let created = store.create_instance(new_instance("ivan")).await.unwrap();
    store.close().await;
    let path = dir.path().join("nested").join("clawplane.sqlite");
    assert!(path.exists());
    let reopened = Store::open_sqlite_dir(&dir.path().join("nested"), &options)
        .await
        .unwrap();
    assert_eq!(reopened.instance(created.id).await.unwrap(), created);
    let mode: String = sqlx_journal_mode(&path).await;
    assert_eq!(mode, "wal");
}

async fn sqlx_journal_mode(path: &std::path::Path) -> String {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let row = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    row.get::<String, _>(0)
}

#[tokio::test]
async fn an_unsupported_database_url_is_a_clear_error() {
    let err = Store::connect("mysql://localhost/db", &Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("use sqlite://"), "{err}");
}
