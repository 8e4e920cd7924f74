//! The sweep of model holds left open while `serve` runs. The proxy settles
//! or releases every hold within its own request, so an open hold older
//! than the longest request was left by a failure: a settle or release the
//! database refused at that moment, or a replica that died. Start-up
//! recovery releases what an earlier run of this process left; this sweep
//! releases what is left later, so credits are never held for good. What
//! the upstream counted for such a request is unknown: it is released
//! (billed nothing), never guessed.
//!
//! The age bound is the longest request plus [`MARGIN`], so a replica's
//! live request is never released under it.

use std::time::Duration;

use clawplane_billing::Ledger;
use tokio_util::sync::CancellationToken;

/// How often open holds are looked at.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Added to the longest request before a hold counts as left open.
pub const MARGIN: Duration = Duration::from_secs(60);

/// Every `interval` until `stop`, releases the open holds reserved more
/// than `older_than` ago.
pub async fn sweep_holds(
    ledger: Ledger,
    older_than: Duration,
    interval: Duration,
    stop: CancellationToken,
) {
    let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let Some(bound) = chrono::Utc::now().checked_sub_signed(age) else {
            continue;
        };
        match ledger.recover_holds(bound).await {
            Ok(report) if report.released > 0 => tracing::warn!(
                released = report.released,
                "released model holds left open past the longest request"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot sweep model holds now; trying again later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawplane_billing::{BillingConfig, GrantRequest, ModelReservation};
    use clawplane_domain::{IdempotencyKey, InstanceFields, MicroUsd, UserId};
    use clawplane_store::{Backend, HoldState, NewInstance};
    use clawplane_testkit::TestDb;

    #[tokio::test]
    async fn a_hold_left_open_is_released_and_a_young_one_is_kept() {
        let db = TestDb::new(Backend::Sqlite).await;
        let ledger = Ledger::new(db.store.clone(), BillingConfig::default());
        let user = UserId::parse("sweep-user").unwrap();
        let instance = db
            .store
            .create_instance(NewInstance {
                user_id: user.clone(),
                fields: InstanceFields::default(),
            })
            .await
            .unwrap();
        ledger
            .grant(GrantRequest {
                user_id: user.clone(),
                amount: MicroUsd::parse_decimal("1").unwrap(),
                source: "manual".into(),
                idempotency_key: IdempotencyKey::parse("sweep-grant").unwrap(),
                meta: serde_json::json!({}),
            })
            .await
            .unwrap();
        let reserve = |id: &str| ModelReservation {
            user_id: user.clone(),
            instance_id: instance.id,
            model: "mini".into(),
            amount: MicroUsd::parse_decimal("0.25").unwrap(),
            request_id: id.into(),
        };
        let left = ledger.reserve_model(&reserve("left-open")).await.unwrap();
        assert_eq!(left.state, HoldState::Open);

        // A bound of an hour keeps it: it could be a live request.
        let stop = CancellationToken::new();
        let patient = tokio::spawn(sweep_holds(
            ledger.clone(),
            Duration::from_secs(3600),
            Duration::from_millis(20),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            ledger.available_balance(&user).await.unwrap(),
            MicroUsd::parse_decimal("0.75").unwrap()
        );
        stop.cancel();
        patient.await.unwrap();

        // Past the bound it is released: nothing billed, the credits back.
        let stop = CancellationToken::new();
        let sweeper = tokio::spawn(sweep_holds(
            ledger.clone(),
            Duration::ZERO,
            Duration::from_millis(20),
            stop.clone(),
        ));
        let mut released = false;
        for _ in 0..250 {
            if ledger.available_balance(&user).await.unwrap()
                == MicroUsd::parse_decimal("1").unwrap()
            {
                released = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        sweeper.await.unwrap();
        assert!(released, "the sweep released the hold left open");
        assert_eq!(
            ledger.balance(&user).await.unwrap().balance_micro_usd,
            1_000_000,
            "nothing billed"
        );
        assert!(ledger.verify().await.unwrap().is_clean());
    }
}
