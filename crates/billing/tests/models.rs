//! Model spend in two phases on both backends: reserves never overdraw under
//! concurrency, are idempotent by request id, settle once with the usage's
//! meta and at most the hold, release bills nothing, recovery releases stale
//! holds, and `verify` stays clean.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use clawplane_billing::ledger::GrantRequest;
use clawplane_billing::{BillingConfig, BillingError, Ledger, ModelReservation, ModelUsage};
use clawplane_domain::{EntryKind, IdempotencyKey, InstanceId, MicroUsd, UserId};
use clawplane_store::{HoldState, Settlement};
use clawplane_testkit::{backend_tests, TestDb};

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn usd(text: &str) -> MicroUsd {
    MicroUsd::parse_decimal(text).unwrap()
}

fn ledger(db: &TestDb) -> Ledger {
    Ledger::new(db.store.clone(), BillingConfig::default())
}

async fn fund(ledger: &Ledger, u: &str, amount: &str) {
    ledger
        .grant(GrantRequest {
            user_id: user(u),
            amount: usd(amount),
            source: "manual".into(),
            idempotency_key: IdempotencyKey::parse(&format!("fund-{u}-{amount}")).unwrap(),
            meta: serde_json::json!({}),
        })
        .await
        .unwrap();
}

fn reservation(u: &str, instance: InstanceId, amount: &str, request: &str) -> ModelReservation {
    ModelReservation {
        user_id: user(u),
        instance_id: instance,
        model: "gpt-test".into(),
        amount: usd(amount),
        request_id: request.into(),
    }
}

fn usage(cost: &str) -> ModelUsage {
    ModelUsage {
        input_tokens: 1200,
        output_tokens: 345,
        cached_tokens: 200,
        cost: usd(cost),
    }
}

async fn assert_clean(ledger: &Ledger) {
    let report = ledger.verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

backend_tests!(
    concurrent_reserves_never_overdraw_and_exactly_the_covered_ones_succeed,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        fund(&ledger, "ana", "1.00").await;
        let instance = InstanceId::new();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    ledger
                        .reserve_model(&reservation("ana", instance, "0.03", &format!("req-{i}")))
                        .await
                })
            })
            .collect();
        let mut held = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(hold) => held.push(hold),
                Err(BillingError::InsufficientCredits { amount, .. }) => {
                    assert_eq!(amount, usd("0.03"));
                }
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        // floor((1.00 - 0) / 0.03) = 33.
        assert_eq!(held.len(), 33);
        let available = ledger.available_balance(&user("ana")).await.unwrap();
        assert_eq!(available, usd("0.01"));
        assert_eq!(
            ledger
                .balance(&user("ana"))
                .await
                .unwrap()
                .balance_micro_usd,
            1_000_000
        );
        // Nothing is left for a floored burn, nor for an instance to run.
        let burn = ledger
            .burn(clawplane_billing::BurnRequest {
                user_id: user("ana"),
                amount: usd("0.02"),
                source: "usage".into(),
                idempotency_key: IdempotencyKey::parse("burn-over-holds").unwrap(),
                meta: serde_json::json!({}),
            })
            .await;
        assert!(
            matches!(burn, Err(BillingError::InsufficientCredits { balance, .. }) if balance == usd("0.01")),
            "{burn:?}"
        );
        assert_clean(&ledger).await;

        // Settle every hold concurrently at its full amount: the balance ends
        // at exactly what the holds left, never below the floor.
        let tasks: Vec<_> = held
            .iter()
            .map(|hold| {
                let ledger = ledger.clone();
                let id = hold.id;
                tokio::spawn(async move { ledger.settle_model(&id, &usage("0.05")).await })
            })
            .collect();
        for task in tasks {
            assert!(matches!(
                task.await.unwrap().unwrap(),
                Settlement::Settled { .. }
            ));
        }
        let balance = ledger.balance(&user("ana")).await.unwrap();
        assert_eq!(balance.balance_micro_usd, 10_000);
        assert_eq!(
            ledger.available_balance(&user("ana")).await.unwrap(),
            usd("0.01")
        );
        assert!(ledger
            .store()
            .open_holds(None, 100)
            .await
            .unwrap()
            .is_empty());
        assert_clean(&ledger).await;
    }
);

backend_tests!(
    a_reserve_is_idempotent_by_request_id,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        fund(&ledger, "ana", "1.00").await;
        let instance = InstanceId::new();
        let first = ledger
            .reserve_model(&reservation("ana", instance, "0.40", "req-1"))
            .await
            .unwrap();
        assert_eq!(first.state, HoldState::Open);
        let again = ledger
            .reserve_model(&reservation("ana", instance, "0.40", "req-1"))
            .await
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(
            ledger.available_balance(&user("ana")).await.unwrap(),
            usd("0.60")
        );

        // Concurrent retries of one request reserve once.
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    ledger
                        .reserve_model(&reservation("ana", instance, "0.10", "req-2"))
                        .await
                })
            })
            .collect();
        let mut ids = HashSet::new();
        for task in tasks {
            ids.insert(task.await.unwrap().unwrap().id);
        }
        assert_eq!(ids.len(), 1);
        assert_eq!(
            ledger.available_balance(&user("ana")).await.unwrap(),
            usd("0.50")
        );

        // The same request id for a different request is refused.
        let other = ledger
            .reserve_model(&reservation("ana", instance, "0.20", "req-1"))
            .await;
        assert!(
            matches!(other, Err(BillingError::IdempotencyConflict)),
            "{other:?}"
        );
        // Malformed input is refused before anything is written.
        let bad = ledger
            .reserve_model(&reservation("ana", instance, "0.20", "has space"))
            .await;
        assert!(
            matches!(bad, Err(BillingError::IdempotencyKey(_))),
            "{bad:?}"
        );
        let zero = ledger
            .reserve_model(&reservation("ana", instance, "0", "req-3"))
            .await;
        assert!(matches!(zero, Err(BillingError::Amount(_))), "{zero:?}");
        assert_clean(&ledger).await;
    }
);

backend_tests!(
    a_settle_writes_one_entry_with_the_usage_and_at_most_the_hold,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        fund(&ledger, "ana", "1.00").await;
        let instance = InstanceId::new();
        let hold = ledger
            .reserve_model(&reservation("ana", instance, "0.30", "req-cheap"))
            .await
            .unwrap();
        let settled = ledger
            .settle_model(&hold.id, &usage("0.012345"))
            .await
            .unwrap();
        let Settlement::Settled {
            hold: closed,
            entry,
        } = &settled
        else {
            panic!("expected a new settlement: {settled:?}");
        };
        assert_eq!(closed.state, HoldState::Settled);
        assert_eq!(closed.entry_id, Some(entry.id));
        assert_eq!(entry.kind, EntryKind::Burn);
        assert_eq!(entry.source, "model");
        assert_eq!(entry.amount, usd("-0.012345"));
        assert_eq!(entry.balance_after, usd("0.987655"));
        assert_eq!(entry.idempotency_key, "clawplane:model:req-cheap");
        assert_eq!(entry.meta["model"], "gpt-test");
        assert_eq!(entry.meta["request_id"], "req-cheap");
        assert_eq!(entry.meta["instance_id"], instance.to_string());
        assert_eq!(entry.meta["hold_id"], hold.id.to_string());
        assert_eq!(entry.meta["input_tokens"], 1200);
        assert_eq!(entry.meta["output_tokens"], 345);
        assert_eq!(entry.meta["cached_tokens"], 200);
        assert_eq!(entry.meta["cost_micro_usd"], 12_345);
        assert_eq!(entry.meta["hold_micro_usd"], 300_000);
        // The rest of the hold is free again.
        assert_eq!(
            ledger.available_balance(&user("ana")).await.unwrap(),
            usd("0.987655")
        );

        // A cost above the hold is billed at the hold, never more.
        let hold = ledger
            .reserve_model(&reservation("ana", instance, "0.10", "req-dear"))
            .await
            .unwrap();
        let settled = ledger.settle_model(&hold.id, &usage("5.00")).await.unwrap();
        assert_eq!(settled.entry().unwrap().amount, usd("-0.10"));
        assert_eq!(settled.entry().unwrap().meta["cost_micro_usd"], 5_000_000);
        assert_eq!(
            ledger
                .balance(&user("ana"))
                .await
                .unwrap()
                .balance_micro_usd,
            887_655
        );
        // An unknown hold is not found; a negative cost is refused.
        let unknown = ledger
            .settle_model(&clawplane_store::HoldId::new(), &usage("0.01"))
            .await;
        assert!(
            matches!(unknown, Err(BillingError::EntryNotFound)),
            "{unknown:?}"
        );
        let hold = ledger
            .reserve_model(&reservation("ana", instance, "0.10", "req-neg"))
            .await
            .unwrap();
        let negative = ledger
            .settle_model(
                &hold.id,
                &ModelUsage {
                    cost: MicroUsd::from_micros(-1),
                    ..usage("0")
                },
            )
            .await;
        assert!(
            matches!(negative, Err(BillingError::Amount(_))),
            "{negative:?}"
        );
        // A zero cost is still one entry (the token counts are kept).
        let free = ledger.settle_model(&hold.id, &usage("0")).await.unwrap();
        assert_eq!(free.entry().unwrap().amount, MicroUsd::ZERO);
        assert_clean(&ledger).await;
    }
);

backend_tests!(a_double_settle_bills_once, |db: TestDb| async move {
    let ledger = ledger(&db);
    fund(&ledger, "ana", "1.00").await;
    let hold = ledger
        .reserve_model(&reservation("ana", InstanceId::new(), "0.50", "req-twice"))
        .await
        .unwrap();
    let first = ledger.settle_model(&hold.id, &usage("0.25")).await.unwrap();
    let entry = first.entry().unwrap().clone();
    let second = ledger.settle_model(&hold.id, &usage("0.40")).await.unwrap();
    assert!(matches!(&second, Settlement::AlreadySettled { entry: e, .. } if *e == entry));

    // Concurrent settles of one hold: exactly one writes.
    let hold = ledger
        .reserve_model(&reservation("ana", InstanceId::new(), "0.20", "req-race"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let ledger = ledger.clone();
            let id = hold.id;
            tokio::spawn(async move { ledger.settle_model(&id, &usage("0.10")).await })
        })
        .collect();
    let mut new = 0;
    let mut entries = HashSet::new();
    for task in tasks {
        let settled = task.await.unwrap().unwrap();
        if matches!(settled, Settlement::Settled { .. }) {
            new += 1;
        }
        entries.insert(settled.entry().unwrap().id);
    }
    assert_eq!(new, 1);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        ledger
            .balance(&user("ana"))
            .await
            .unwrap()
            .balance_micro_usd,
        650_000
    );
    let page = ledger.entries(&user("ana"), None, 50).await.unwrap();
    assert_eq!(
        page.entries.iter().filter(|e| e.source == "model").count(),
        2
    );
    assert_clean(&ledger).await;
});

backend_tests!(
    a_release_bills_nothing_and_a_settle_after_it_is_a_no_op,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        fund(&ledger, "ana", "1.00").await;
        let hold = ledger
            .reserve_model(&reservation(
                "ana",
                InstanceId::new(),
                "0.70",
                "req-refused",
            ))
            .await
            .unwrap();
        assert_eq!(
            ledger.available_balance(&user("ana")).await.unwrap(),
            usd("0.30")
        );
        let released = ledger.release_model(&hold.id).await.unwrap();
        assert_eq!(released.state, HoldState::Released);
        assert!(released.entry_id.is_none());
        assert_eq!(ledger.release_model(&hold.id).await.unwrap(), released);
        assert_eq!(
            ledger.available_balance(&user("ana")).await.unwrap(),
            usd("1.00")
        );

        let late = ledger.settle_model(&hold.id, &usage("0.10")).await.unwrap();
        assert!(matches!(&late, Settlement::Released(h) if h.id == hold.id));
        assert!(late.entry().is_none());
        // A release after a settle changes nothing either.
        let hold = ledger
            .reserve_model(&reservation("ana", InstanceId::new(), "0.10", "req-done"))
            .await
            .unwrap();
        ledger.settle_model(&hold.id, &usage("0.05")).await.unwrap();
        let after = ledger.release_model(&hold.id).await.unwrap();
        assert_eq!(after.state, HoldState::Settled);
        assert_eq!(
            ledger
                .balance(&user("ana"))
                .await
                .unwrap()
                .balance_micro_usd,
            950_000
        );
        // A released request's retry gets its released hold, not a new one.
        let retry = ledger
            .reserve_model(&reservation(
                "ana",
                released.instance_id,
                "0.70",
                "req-refused",
            ))
            .await
            .unwrap();
        assert_eq!(retry.state, HoldState::Released);
        assert_eq!(
            ledger.available_balance(&user("ana")).await.unwrap(),
            usd("0.95")
        );
        assert_clean(&ledger).await;
    }
);

backend_tests!(
    recovery_releases_stale_holds_and_leaves_young_ones,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        fund(&ledger, "ana", "1.00").await;
        let instance = InstanceId::new();
        let mut holds = Vec::new();
        for i in 0..5 {
            holds.push(
                ledger
                    .reserve_model(&reservation("ana", instance, "0.10", &format!("crash-{i}")))
                    .await
                    .unwrap(),
            );
        }
        ledger
            .settle_model(&holds[0].id, &usage("0.01"))
            .await
            .unwrap();
        // Nothing was reserved an hour ago: nothing to release.
        let none = ledger
            .recover_holds(Utc::now() - Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(none.released, 0);
        assert_eq!(ledger.store().open_holds(None, 100).await.unwrap().len(), 4);

        let report = ledger
            .recover_holds(Utc::now() + Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(report.released, 4);
        assert!(ledger
            .store()
            .open_holds(None, 100)
            .await
            .unwrap()
            .is_empty());
        for hold in &holds[1..] {
            let hold = ledger.store().hold(&hold.id).await.unwrap().unwrap();
            assert_eq!(hold.state, HoldState::Released);
        }
        // Only the settled request was billed.
        assert_eq!(
            ledger
                .balance(&user("ana"))
                .await
                .unwrap()
                .balance_micro_usd,
            990_000
        );
        assert_eq!(
            ledger.available_balance(&user("ana")).await.unwrap(),
            usd("0.99")
        );
        assert_clean(&ledger).await;
    }
);

backend_tests!(
    a_user_without_credits_cannot_reserve,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        let refused = ledger
            .reserve_model(&reservation("nobody", InstanceId::new(), "0.01", "req-x"))
            .await;
        assert!(
            matches!(refused, Err(BillingError::InsufficientCredits { balance, .. }) if balance == MicroUsd::ZERO),
            "{refused:?}"
        );
        assert!(ledger
            .store()
            .hold_by_request("req-x")
            .await
            .unwrap()
            .is_none());
        assert_clean(&ledger).await;
    }
);
