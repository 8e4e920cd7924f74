//! Model holds in the store on both backends: held credits move with the
//! holds, floored burns (group commit on SQLite, locked on PostgreSQL) leave
//! them alone, and `verify` finds holds, held credits and model burns that
//! disagree.

use clawplane_domain::{EntryKind, IdempotencyKey, InstanceId, MicroUsd, UserId};
use clawplane_store::{HoldId, HoldState, NewEntry, NewHold, Settlement, Store, StoreError};
use clawplane_testkit::{backend_tests, TestDb};

fn ana() -> UserId {
    UserId::parse("ana").unwrap()
}

fn entry(kind: EntryKind, amount: i64, key: &str, floor: Option<MicroUsd>) -> NewEntry {
    NewEntry {
        user_id: ana(),
        kind,
        source: "manual".into(),
        amount: MicroUsd::from_micros(amount),
        idempotency_key: IdempotencyKey::parse(key).unwrap(),
        request_hash: key.into(),
        meta: serde_json::json!({}),
        floor,
        reverses_entry_id: None,
        cursor: None,
        at: None,
    }
}

fn hold(amount: i64, request: &str) -> NewHold {
    NewHold {
        user_id: ana(),
        instance_id: InstanceId::new(),
        model: "m".into(),
        amount: MicroUsd::from_micros(amount),
        request_id: request.into(),
    }
}

async fn raw(db: &TestDb, sql: &str) {
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn problems(store: &Store) -> Vec<String> {
    let report = store.verify_ledger().await.unwrap();
    assert!(report.mismatches.is_empty(), "{report:?}");
    report
        .hold_problems
        .into_iter()
        .map(|p| p.problem)
        .collect()
}

backend_tests!(
    held_credits_move_with_holds_and_floored_burns_leave_them_alone,
    |db: TestDb| async move {
        let store = &db.store;
        store
            .append_entry(&entry(EntryKind::Grant, 1_000, "g", None))
            .await
            .unwrap();
        let h = store
            .reserve_hold(&hold(600, "r1"), MicroUsd::ZERO)
            .await
            .unwrap();
        assert_eq!(store.held_balance(&ana()).await.unwrap().micros(), 600);
        assert_eq!(store.available_balance(&ana()).await.unwrap().micros(), 400);
        assert_eq!(store.balance(&ana()).await.unwrap().micros(), 1_000);

        // A floored burn may use only what is not held; an unfloored one
        // (usage that already happened) is recorded regardless.
        let refused = store
            .append_entry(&entry(EntryKind::Burn, -500, "b1", Some(MicroUsd::ZERO)))
            .await;
        assert!(
            matches!(refused, Err(StoreError::InsufficientCredits { balance }) if balance.micros() == 400),
            "{refused:?}"
        );
        store
            .append_entry(&entry(EntryKind::Burn, -400, "b2", Some(MicroUsd::ZERO)))
            .await
            .unwrap();
        let over = store.reserve_hold(&hold(1, "r2"), MicroUsd::ZERO).await;
        assert!(
            matches!(over, Err(StoreError::InsufficientCredits { .. })),
            "{over:?}"
        );
        // A negative floor lends that much, to holds as to burns.
        store
            .reserve_hold(&hold(50, "r3"), MicroUsd::from_micros(-50))
            .await
            .unwrap();

        let settled = store
            .settle_hold(&h.id, MicroUsd::from_micros(100), serde_json::Map::new())
            .await
            .unwrap();
        let Settlement::Settled {
            hold: closed,
            entry,
        } = settled
        else {
            panic!("expected a settlement");
        };
        assert_eq!(closed.state, HoldState::Settled);
        assert_eq!(entry.amount.micros(), -100);
        assert_eq!(entry.balance_after.micros(), 500);
        assert_eq!(store.held_balance(&ana()).await.unwrap().micros(), 50);
        assert_eq!(store.available_balance(&ana()).await.unwrap().micros(), 450);
        assert_eq!(store.open_holds(None, 10).await.unwrap().len(), 1);
        assert!(matches!(
            store.release_hold(&HoldId::new()).await,
            Err(StoreError::EntryNotFound)
        ));
        assert!(problems(store).await.is_empty());
    }
);

backend_tests!(
    verify_finds_held_credits_and_model_burns_that_disagree_with_the_holds,
    |db: TestDb| async move {
        let store = &db.store;
        store
            .append_entry(&entry(EntryKind::Grant, 1_000, "g", None))
            .await
            .unwrap();
        store
            .reserve_hold(&hold(300, "r1"), MicroUsd::ZERO)
            .await
            .unwrap();
        assert!(problems(store).await.is_empty());

        raw(&db, "UPDATE credit_balances SET held_micro_usd = 299").await;
        let found = problems(store).await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("open holds sum to 300"), "{found:?}");
        raw(&db, "UPDATE credit_balances SET held_micro_usd = 300").await;

        // A model burn that settles no hold (written around the holds).
        let mut orphan = entry(EntryKind::Burn, -10, "x", None);
        orphan.idempotency_key = clawplane_store::ledger::holds::model_entry_key("ghost");
        store.append_entry(&orphan).await.unwrap();
        let found = problems(store).await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("settles no hold"), "{found:?}");
    }
);
