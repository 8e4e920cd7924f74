//! Monthly grants and usage metering on both backends, driven through an
//! in-process implementation of the [`Fleet`] interface.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use clawplane_billing::{BillingConfig, DailyCost, Fleet, Ledger, Meter};
use clawplane_domain::{Instance, InstanceFields, InstanceStatus, MicroUsd, UserId};
use clawplane_store::{NewInstance, Store};
use clawplane_testkit::{backend_tests, TestDb};

/// An in-process fleet: model spend is whatever the test sets, and stopping
/// marks the instance `stopped` in the store, as the real runtime side does.
struct InProcessFleet {
    store: Store,
    spend: Mutex<Vec<DailyCost>>,
    stops: Mutex<Vec<String>>,
}

impl InProcessFleet {
    fn new(store: Store) -> Arc<Self> {
        Arc::new(InProcessFleet {
            store,
            spend: Mutex::new(Vec::new()),
            stops: Mutex::new(Vec::new()),
        })
    }

    fn report_spend(&self, date: &str, total_micros: i64) {
        let date: NaiveDate = date.parse().unwrap();
        let mut spend = self.spend.lock().unwrap();
        spend.retain(|d| d.date != date);
        spend.push(DailyCost {
            date,
            total: MicroUsd::from_micros(total_micros),
        });
    }
}

#[async_trait]
impl Fleet for InProcessFleet {
    async fn model_spend(&self, _instance: &Instance) -> Result<Vec<DailyCost>, String> {
        Ok(self.spend.lock().unwrap().clone())
    }

    async fn stop_for_billing(&self, instance: &Instance, reason: &str) -> Result<(), String> {
        self.stops.lock().unwrap().push(reason.to_owned());
        self.store
            .set_instance_status(instance.id, InstanceStatus::Stopped, Some(reason))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

async fn ready_instance(store: &Store, user: &str) -> Instance {
    let i = store
        .create_instance(NewInstance {
            user_id: UserId::parse(user).unwrap(),
            fields: InstanceFields::default(),
        })
        .await
        .unwrap();
    store
        .set_instance_status(i.id, InstanceStatus::Ready, None)
        .await
        .unwrap()
}

fn config() -> BillingConfig {
    BillingConfig {
        instance_hour_price: MicroUsd::from_usd(36), // 0.01 USD per second: easy sums
        metering_interval: std::time::Duration::from_secs(60),
        ..Default::default()
    }
}

backend_tests!(
    the_monthly_grant_happens_once_per_user_and_month,
    |db: TestDb| async move {
        let ledger = Ledger::new(db.store.clone(), BillingConfig::default());
        ready_instance(&db.store, "ana").await;
        ready_instance(&db.store, "bob").await;
        let nov = at(2026, 11, 24, 12, 0, 0);
        let first = ledger.grant_monthly(nov).await.unwrap();
        assert_eq!(
            (first.users, first.granted, first.already_granted),
            (2, 2, 0)
        );
        let second = ledger.grant_monthly(nov).await.unwrap();
        assert_eq!((second.granted, second.already_granted), (0, 2));
        // A restart with another amount configured still grants nothing twice.
        let changed = Ledger::new(
            db.store.clone(),
            BillingConfig {
                monthly_grant: MicroUsd::from_usd(99),
                ..Default::default()
            },
        );
        assert_eq!(
            changed
                .grant_monthly(at(2026, 11, 30, 23, 59, 59))
                .await
                .unwrap()
                .granted,
            0
        );
        assert_eq!(
            ledger
                .balance(&UserId::parse("ana").unwrap())
                .await
                .unwrap()
                .balance_micro_usd,
            10_000_000
        );
        // December is a new month.
        assert_eq!(
            ledger
                .grant_monthly(at(2026, 12, 1, 0, 0, 0))
                .await
                .unwrap()
                .granted,
            2
        );
        assert_eq!(
            ledger
                .balance(&UserId::parse("bob").unwrap())
                .await
                .unwrap()
                .balance_micro_usd,
            20_000_000
        );
    }
);

backend_tests!(
    two_concurrent_monthly_jobs_grant_once,
    |db: TestDb| async move {
        for i in 0..20 {
            ready_instance(&db.store, &format!("user-{i}")).await;
        }
        let a = Ledger::new(db.store.clone(), BillingConfig::default());
        let b = Ledger::new(db.store.clone(), BillingConfig::default());
        let now = at(2026, 11, 2, 0, 0, 0);
        let (ra, rb) = tokio::join!(a.grant_monthly(now), b.grant_monthly(now));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.granted + rb.granted, 20);
        assert_eq!(ra.failed + rb.failed, 0);
        let report = a.verify().await.unwrap();
        assert_eq!(report.entries, 20);
        assert!(report.mismatches.is_empty());
    }
);

backend_tests!(
    deleted_instances_get_no_monthly_grant,
    |db: TestDb| async move {
        let i = ready_instance(&db.store, "gone").await;
        db.store
            .set_instance_status(i.id, InstanceStatus::Deleted, None)
            .await
            .unwrap();
        let ledger = Ledger::new(db.store.clone(), BillingConfig::default());
        assert_eq!(ledger.grant_monthly(Utc::now()).await.unwrap().users, 0);
    }
);

backend_tests!(
    runtime_intervals_burn_exactly_once_across_restarts,
    |db: TestDb| async move {
        let instance = ready_instance(&db.store, "ana").await;
        let ledger = Ledger::new(db.store.clone(), config());
        let fleet = InProcessFleet::new(db.store.clone());
        ledger
            .grant(clawplane_billing::GrantRequest {
                user_id: instance.user_id.clone(),
                amount: MicroUsd::from_usd(100),
                source: "manual".into(),
                idempotency_key: clawplane_domain::IdempotencyKey::parse("g").unwrap(),
                meta: serde_json::json!({}),
            })
            .await
            .unwrap();
        let base = instance.last_ready_at.unwrap().timestamp();
        let t = |secs: i64| Utc.timestamp_opt(base + secs, 0).unwrap();

        let meter = Meter::new(ledger.clone(), fleet.clone());
        // Ticks during the first (partial) interval bill nothing: it ended before
        // the instance... or has not ended yet.
        let mut billed = 0;
        for secs in [130, 131, 150, 190, 250, 250] {
            billed += meter.tick(t(secs)).await.unwrap().runtime_burns;
        }
        // A "restarted" meter (new object, same database) repeats the last tick.
        let restarted = Meter::new(Ledger::new(db.store.clone(), config()), fleet.clone());
        billed += restarted.tick(t(250)).await.unwrap().runtime_burns;
        let entries = ledger
            .entries(&instance.user_id, None, 100)
            .await
            .unwrap()
            .entries;
        let burns: Vec<_> = entries
            .iter()
            .filter(|e| e.source == "runtime_time")
            .collect();
        assert_eq!(burns.len(), billed);
        let intervals: std::collections::HashSet<_> = burns
            .iter()
            .map(|e| e.meta["interval_start"].to_string())
            .collect();
        assert_eq!(intervals.len(), burns.len(), "each interval is billed once");
        assert!(
            burns.iter().all(|e| e.amount.micros() == -600_000),
            "60 s at 0.01 USD/s"
        );
        assert!((2..=3).contains(&burns.len()), "{} burns", burns.len());
        assert!(ledger.verify().await.unwrap().mismatches.is_empty());
    }
);

backend_tests!(
    model_spend_burns_the_increase_with_markup,
    |db: TestDb| async move {
        let instance = ready_instance(&db.store, "ana").await;
        let cfg = BillingConfig {
            meter_model_spend: true,
            model_markup_bps: 2_000,
            ..Default::default()
        };
        let ledger = Ledger::new(db.store.clone(), cfg);
        ledger
            .grant(clawplane_billing::GrantRequest {
                user_id: instance.user_id.clone(),
                amount: MicroUsd::from_usd(10),
                source: "manual".into(),
                idempotency_key: clawplane_domain::IdempotencyKey::parse("g").unwrap(),
                meta: serde_json::json!({}),
            })
            .await
            .unwrap();
        let fleet = InProcessFleet::new(db.store.clone());
        let meter = Meter::new(ledger.clone(), fleet.clone());
        let now = Utc::now();

        fleet.report_spend("2026-11-23", 1_000_000);
        assert_eq!(meter.tick(now).await.unwrap().model_burns, 1);
        assert_eq!(
            meter.tick(now).await.unwrap().model_burns,
            0,
            "no increase, no burn"
        );
        fleet.report_spend("2026-11-23", 1_500_000);
        fleet.report_spend("2026-11-24", 250_000);
        assert_eq!(meter.tick(now).await.unwrap().model_burns, 2);
        // A second replica sees the same readings and bills nothing more.
        let replica = Meter::new(ledger.clone(), fleet.clone());
        assert_eq!(replica.tick(now).await.unwrap().model_burns, 0);

        let spent: i64 = ledger
            .entries(&instance.user_id, None, 100)
            .await
            .unwrap()
            .entries
            .iter()
            .filter(|e| e.source == "model_spend")
            .map(|e| -e.amount.micros())
            .sum();
        assert_eq!(
            spent,
            (1_500_000 + 250_000) * 12 / 10,
            "reported spend plus 20%, exactly"
        );
    }
);

backend_tests!(
    reaching_the_floor_stops_the_instance_until_a_grant,
    |db: TestDb| async move {
        let instance = ready_instance(&db.store, "ana").await;
        let ledger = Ledger::new(db.store.clone(), config());
        let fleet = InProcessFleet::new(db.store.clone());
        let meter = Meter::new(ledger.clone(), fleet.clone());
        let user = instance.user_id.clone();
        ledger
            .grant(clawplane_billing::GrantRequest {
                user_id: user.clone(),
                amount: MicroUsd::parse_decimal("1.00").unwrap(),
                source: "manual".into(),
                idempotency_key: clawplane_domain::IdempotencyKey::parse("g1").unwrap(),
                meta: serde_json::json!({}),
            })
            .await
            .unwrap();
        let base = instance.last_ready_at.unwrap().timestamp();
        // Interval burns of 0.60 USD: the second takes the balance to -0.20 USD,
        // recorded whole (usage already happened), and the instance is stopped.
        let mut stopped_at = None;
        for step in 1..=5 {
            let now = Utc.timestamp_opt(base + 60 * (step + 1), 0).unwrap();
            if meter.tick(now).await.unwrap().stopped > 0 {
                stopped_at = Some(step);
                break;
            }
        }
        assert!(
            stopped_at.is_some(),
            "the instance was stopped at the floor"
        );
        let stopped = db.store.instance(instance.id).await.unwrap();
        assert_eq!(stopped.status, InstanceStatus::Stopped);
        assert!(stopped
            .status_reason
            .as_deref()
            .unwrap()
            .contains("reached the floor"));
        let balance = ledger.balance(&user).await.unwrap().balance_micro_usd;
        assert_eq!(
            balance, -200_000,
            "1.00 - 0.60 - 0.60: usage below the floor is recorded whole"
        );
        assert_eq!(stopped_at, Some(2));
        assert!(
            ledger.ensure_can_run(&user).await.is_err(),
            "cannot start at the floor"
        );

        // A stopped instance is no longer metered.
        let later = Utc.timestamp_opt(base + 3600, 0).unwrap();
        assert_eq!(meter.tick(later).await.unwrap().runtime_burns, 0);

        // A top-up lets the user start it again.
        ledger
            .grant(clawplane_billing::GrantRequest {
                user_id: user.clone(),
                amount: MicroUsd::from_usd(5),
                source: "topup".into(),
                idempotency_key: clawplane_domain::IdempotencyKey::parse("g2").unwrap(),
                meta: serde_json::json!({}),
            })
            .await
            .unwrap();
        ledger.ensure_can_run(&user).await.unwrap();
        db.store
            .set_instance_status(instance.id, InstanceStatus::Ready, None)
            .await
            .unwrap();
        assert_eq!(fleet.stops.lock().unwrap().len(), 1);
        assert!(ledger.verify().await.unwrap().mismatches.is_empty());
    }
);

#[tokio::test]
async fn nothing_is_stopped_when_nothing_is_metered() {
    let db = TestDb::new(clawplane_store::Backend::Sqlite).await;
    ready_instance(&db.store, "free").await;
    let ledger = Ledger::new(
        db.store.clone(),
        BillingConfig {
            instance_hour_price: MicroUsd::ZERO,
            ..Default::default()
        },
    );
    let fleet = InProcessFleet::new(db.store.clone());
    let report = Meter::new(ledger.clone(), fleet.clone())
        .tick(Utc::now())
        .await
        .unwrap();
    assert_eq!(report.stopped, 0);
    ledger
        .ensure_can_run(&UserId::parse("free").unwrap())
        .await
        .unwrap();
}
