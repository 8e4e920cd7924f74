//! Ledger operations on both backends: amounts, idempotency, overdraft,
//! concurrency, reversal, pagination and verify.

use std::collections::HashSet;

use clawplane_billing::ledger::{BurnRequest, GrantRequest};
use clawplane_billing::{BillingConfig, BillingError, Ledger};
use clawplane_domain::{EntryKind, IdempotencyKey, MicroUsd, UserId};
use clawplane_testkit::{backend_tests, TestDb};

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn usd(text: &str) -> MicroUsd {
    MicroUsd::parse_decimal(text).unwrap()
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).unwrap()
}

fn grant(u: &str, amount: &str, k: &str) -> GrantRequest {
    GrantRequest {
        user_id: user(u),
        amount: usd(amount),
        source: "manual".into(),
        idempotency_key: key(k),
        meta: serde_json::json!({}),
    }
}

fn burn(u: &str, amount: &str, k: &str) -> BurnRequest {
    BurnRequest {
        user_id: user(u),
        amount: usd(amount),
        source: "usage".into(),
        idempotency_key: key(k),
        meta: serde_json::json!({}),
    }
}

fn ledger(db: &TestDb) -> Ledger {
    Ledger::new(db.store.clone(), BillingConfig::default())
}

backend_tests!(
    grant_and_burn_answer_the_seeds_shape_with_exact_amounts,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        let b = ledger.balance(&user("ana")).await.unwrap();
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"user_id":"ana","balance_usd":0,"balance_micro_usd":0})
        );

        ledger.grant(grant("ana", "12.345", "g1")).await.unwrap();
        let after = ledger.burn(burn("ana", "0.000001", "b1")).await.unwrap();
        assert_eq!(after.balance_micro_usd, 12_344_999);
        assert_eq!(after.balance_usd.to_string(), "12.34");
        let entry = after.entry.unwrap();
        assert_eq!(entry.kind, EntryKind::Burn);
        assert_eq!(entry.amount.micros(), -1);
        let b = ledger.balance(&user("ana")).await.unwrap();
        assert_eq!(b.balance_micro_usd, 12_344_999);

        ledger.grant(grant("bob", "1.005", "g2")).await.unwrap();
        assert_eq!(
            ledger
                .balance(&user("bob"))
                .await
                .unwrap()
                .balance_usd
                .to_string(),
            "1.01"
        );
    }
);

backend_tests!(
    zero_and_negative_amounts_are_refused_and_write_nothing,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        for amount in ["0", "-1", "0.000000"] {
            let err = ledger
                .grant(grant("ana", amount, &format!("g{amount}")))
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "amount_usd must be greater than zero");
            let err = ledger
                .burn(burn("ana", amount, &format!("b{amount}")))
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "amount_usd must be greater than zero");
        }
        let err = ledger
            .grant(grant("ana", "1000000001", "huge"))
            .await
            .unwrap_err();
        assert!(matches!(err, BillingError::Amount(_)));
        assert!(ledger
            .entries(&user("ana"), None, 10)
            .await
            .unwrap()
            .entries
            .is_empty());
        assert!(ledger.verify().await.unwrap().mismatches.is_empty());
    }
);

backend_tests!(
    a_replay_returns_the_original_and_writes_nothing,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        let first = ledger.grant(grant("ana", "5", "same-key")).await.unwrap();
        let again = ledger.grant(grant("ana", "5", "same-key")).await.unwrap();
        assert!(!first.replayed && again.replayed);
        assert_eq!(
            first.entry.as_ref().unwrap().id,
            again.entry.as_ref().unwrap().id
        );
        assert_eq!(again.balance_micro_usd, 5_000_000);

        ledger.burn(burn("ana", "1", "burn-key")).await.unwrap();
        let replayed = ledger.burn(burn("ana", "1", "burn-key")).await.unwrap();
        assert!(replayed.replayed);
        assert_eq!(
            ledger
                .balance(&user("ana"))
                .await
                .unwrap()
                .balance_micro_usd,
            4_000_000
        );
        assert_eq!(
            ledger
                .entries(&user("ana"), None, 10)
                .await
                .unwrap()
                .entries
                .len(),
            2
        );
    }
);

backend_tests!(
    the_same_key_for_a_different_request_is_refused,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        ledger.grant(grant("ana", "5", "k1")).await.unwrap();
        for conflicting in [
            ledger.grant(grant("ana", "6", "k1")).await,
            ledger.grant(grant("bob", "5", "k1")).await,
            ledger.burn(burn("ana", "5", "k1")).await,
        ] {
            assert!(
                matches!(conflicting, Err(BillingError::IdempotencyConflict)),
                "{conflicting:?}"
            );
        }
        assert_eq!(
            ledger
                .balance(&user("ana"))
                .await
                .unwrap()
                .balance_micro_usd,
            5_000_000
        );
        assert_eq!(
            ledger
                .balance(&user("bob"))
                .await
                .unwrap()
                .balance_micro_usd,
            0
        );
    }
);

backend_tests!(
    a_burn_below_the_floor_is_refused_and_writes_nothing,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        let err = ledger.burn(burn("ana", "0.01", "b0")).await.unwrap_err();
        assert!(
            matches!(err, BillingError::InsufficientCredits { .. }),
            "{err}"
        );
        ledger.grant(grant("ana", "1", "g")).await.unwrap();
        ledger.burn(burn("ana", "1", "b1")).await.unwrap();
        let err = ledger
            .burn(burn("ana", "0.000001", "b2"))
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("insufficient credits"), "{err}");
        assert_eq!(
            ledger
                .balance(&user("ana"))
                .await
                .unwrap()
                .balance_micro_usd,
            0
        );
        // The refused key was not consumed: after a grant, it works.
        ledger.grant(grant("ana", "1", "g2")).await.unwrap();
        ledger.burn(burn("ana", "0.000001", "b2")).await.unwrap();

        // A configured negative floor allows a bounded overdraft.
        let lenient = Ledger::new(
            db.store.clone(),
            BillingConfig {
                floor: usd("-2"),
                ..Default::default()
            },
        );
        lenient.burn(burn("carl", "2", "c1")).await.unwrap();
        assert!(lenient.burn(burn("carl", "0.000001", "c2")).await.is_err());
        assert_eq!(
            lenient
                .balance(&user("carl"))
                .await
                .unwrap()
                .balance_micro_usd,
            -2_000_000
        );
    }
);

backend_tests!(
    sixty_four_concurrent_burners_never_overdraw,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        ledger
            .grant(grant("hot", "100", "seed-grant"))
            .await
            .unwrap();
        // 64 burners x 10 burns x 0.25 USD = 160 USD asked of 100 USD.
        let mut tasks = Vec::new();
        for worker in 0..64 {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                let mut refused = 0;
                for i in 0..10 {
                    match ledger
                        .burn(burn("hot", "0.25", &format!("w{worker}-{i}")))
                        .await
                    {
                        Ok(b) => {
                            assert!(
                                b.balance_micro_usd >= 0,
                                "overdraft: {}",
                                b.balance_micro_usd
                            );
                            ok += 1;
                        }
                        Err(BillingError::InsufficientCredits { .. }) => refused += 1,
                        Err(e) => panic!("unexpected: {e}"),
                    }
                }
                (ok, refused)
            }));
        }
        let (mut ok, mut refused) = (0, 0);
        for t in tasks {
            let (o, r) = t.await.unwrap();
            ok += o;
            refused += r;
        }
        assert_eq!(ok, 400, "exactly 100 USD was burned");
        assert_eq!(refused, 240);
        assert_eq!(
            ledger
                .balance(&user("hot"))
                .await
                .unwrap()
                .balance_micro_usd,
            0
        );

        let mut keys = HashSet::new();
        let mut cursor = None;
        loop {
            let page = ledger
                .entries(&user("hot"), cursor.as_deref(), 200)
                .await
                .unwrap();
            for e in &page.entries {
                assert!(
                    keys.insert(e.idempotency_key.clone()),
                    "duplicate entry {}",
                    e.idempotency_key
                );
                assert!(e.balance_after.micros() >= 0);
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(keys.len(), 401);
        let report = ledger.verify().await.unwrap();
        assert!(report.mismatches.is_empty(), "{report:?}");
        assert_eq!(report.entries, 401);
    }
);

backend_tests!(
    concurrent_replays_of_one_key_write_once,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        ledger.grant(grant("ana", "10", "g")).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                ledger.burn(burn("ana", "1", "one-burn")).await
            }));
        }
        let mut ids = HashSet::new();
        for t in tasks {
            ids.insert(t.await.unwrap().unwrap().entry.unwrap().id);
        }
        assert_eq!(ids.len(), 1, "every replay names the same entry");
        assert_eq!(
            ledger
                .balance(&user("ana"))
                .await
                .unwrap()
                .balance_micro_usd,
            9_000_000
        );
        assert!(ledger.verify().await.unwrap().mismatches.is_empty());
    }
);

backend_tests!(a_reversal_cancels_an_entry_once, |db: TestDb| async move {
    let ledger = ledger(&db);
    ledger.grant(grant("ana", "10", "g")).await.unwrap();
    let burned = ledger
        .burn(burn("ana", "3", "b"))
        .await
        .unwrap()
        .entry
        .unwrap();
    let reversed = ledger
        .reverse(&user("ana"), burned.id, key("rev-1"), "billing mistake")
        .await
        .unwrap();
    assert_eq!(reversed.balance_micro_usd, 10_000_000);
    let rev = reversed.entry.unwrap();
    assert_eq!(
        (rev.kind, rev.amount.micros(), rev.reverses_entry_id),
        (EntryKind::Reversal, 3_000_000, Some(burned.id))
    );
    // Replaying the reversal is harmless; a second reversal is refused.
    assert!(
        ledger
            .reverse(&user("ana"), burned.id, key("rev-1"), "billing mistake")
            .await
            .unwrap()
            .replayed
    );
    let err = ledger
        .reverse(&user("ana"), burned.id, key("rev-2"), "again")
        .await
        .unwrap_err();
    assert!(matches!(err, BillingError::NotReversible(_)), "{err}");
    let err = ledger
        .reverse(&user("ana"), rev.id, key("rev-3"), "reverse the reversal")
        .await
        .unwrap_err();
    assert!(matches!(err, BillingError::NotReversible(_)), "{err}");
    // Another user's entry is not found.
    let err = ledger
        .reverse(&user("bob"), burned.id, key("rev-4"), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, BillingError::EntryNotFound), "{err}");
    assert!(ledger.verify().await.unwrap().mismatches.is_empty());
});

backend_tests!(
    entries_page_newest_first_with_a_cursor,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        for i in 0..25 {
            ledger
                .grant(grant("ana", "1", &format!("g{i}")))
                .await
                .unwrap();
        }
        ledger.grant(grant("bob", "1", "bob")).await.unwrap();
        let first = ledger.entries(&user("ana"), None, 10).await.unwrap();
        assert_eq!(first.entries.len(), 10);
        assert!(first.entries.windows(2).all(|w| w[0].id > w[1].id));
        assert_eq!(first.entries[0].idempotency_key, "g24");
        let second = ledger
            .entries(&user("ana"), first.next_cursor.as_deref(), 10)
            .await
            .unwrap();
        let third = ledger
            .entries(&user("ana"), second.next_cursor.as_deref(), 10)
            .await
            .unwrap();
        assert_eq!(third.entries.len(), 5);
        assert!(third.next_cursor.is_none());
        assert_eq!(third.entries.last().unwrap().idempotency_key, "g0");
        assert!(ledger
            .entries(&user("ana"), Some("not-a-cursor"), 10)
            .await
            .is_err());
    }
);

backend_tests!(
    the_summary_shows_month_to_date_usage_and_the_next_grant,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        ledger.grant(grant("ana", "10", "g")).await.unwrap();
        ledger.burn(burn("ana", "1.25", "b1")).await.unwrap();
        let b2 = ledger
            .burn(burn("ana", "0.75", "b2"))
            .await
            .unwrap()
            .entry
            .unwrap();
        ledger
            .reverse(&user("ana"), b2.id, key("r"), "refund")
            .await
            .unwrap();
        let summary = ledger
            .summary(&user("ana"), chrono::Utc::now())
            .await
            .unwrap();
        assert_eq!(summary.balance_micro_usd, 8_750_000);
        assert_eq!(
            summary.month_to_date_usage_micro_usd, 1_250_000,
            "a refunded burn is not usage"
        );
        assert_eq!(summary.recent_entries.len(), 4);
        let next = summary.next_monthly_grant.unwrap();
        assert_eq!(next.amount_micro_usd, 10_000_000);
        assert!(next.at > chrono::Utc::now().timestamp_millis());
    }
);

backend_tests!(
    a_concurrent_mix_of_replays_conflicts_and_refusals_stays_consistent,
    |db: TestDb| async move {
        let ledger = ledger(&db);
        ledger.grant(grant("mix", "5", "fund")).await.unwrap();
        // Many tasks at once, so that SQLite's writer batches them together:
        // the same key with the same request, the same key with another amount,
        // and burns that only partly fit under the floor.
        let mut tasks = Vec::new();
        for i in 0..48 {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                match i % 3 {
                    0 => ledger.burn(burn("mix", "1", "shared")).await,
                    1 => ledger.burn(burn("mix", "2", "shared")).await,
                    _ => ledger.burn(burn("mix", "1", &format!("own-{i}"))).await,
                }
            }));
        }
        let mut applied = 0;
        let mut replayed = 0;
        let mut conflicts = 0;
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(b) if b.replayed => replayed += 1,
                Ok(_) => applied += 1,
                Err(BillingError::IdempotencyConflict) => conflicts += 1,
                Err(BillingError::InsufficientCredits { .. }) => refused += 1,
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        let entries = ledger
            .entries(&user("mix"), None, 200)
            .await
            .unwrap()
            .entries;
        let burned: i64 = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Burn)
            .map(|e| -e.amount.micros())
            .sum();
        assert_eq!(
            applied,
            entries.len() - 1,
            "every applied burn is one entry"
        );
        assert_eq!(applied + replayed + conflicts + refused, 48);
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.idempotency_key == "shared")
                .count(),
            1
        );
        assert!(conflicts >= 1 || replayed >= 1);
        let balance = ledger
            .balance(&user("mix"))
            .await
            .unwrap()
            .balance_micro_usd;
        assert_eq!(balance, 5_000_000 - burned);
        assert!(balance >= 0, "never below the floor");
        assert!(ledger.verify().await.unwrap().mismatches.is_empty());
    }
);
