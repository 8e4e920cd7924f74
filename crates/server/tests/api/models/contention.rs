//! 64 streams at once against a balance that covers only some of their
//! holds: the rest are refused with 402, nothing is overdrawn at any
//! moment, every hold is settled or released, and the ledger verifies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use clawplane_models::proxy::ProxySettings;
use clawplane_secrets::ExposeSecret;
use clawplane_store::Backend;
use clawplane_testkit::fake_upstream::{cue, PIECES};
use futures_util::future::join_all;
use serde_json::Value;

use super::cues::{self, error_code};
use super::ModelsApp;

/// Streams sent at once.
const STREAMS: usize = 64;
/// Holds the balance covers at once.
const ROOM: i64 = 20;

async fn streams_share_a_balance_without_overdraft(backend: Backend) {
    // Long waits: the first streams wait for the gate while the last are admitted.
    let settings = ProxySettings {
        first_byte_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..cues::settings()
    };
    let app = ModelsApp::spawn_with(backend, settings).await;
    let body = cues::body(cue::GATED, true);
    let hold = app.hold_of(&body);
    let cost = app.usage_cost();
    // 600 x $1/M + 400 cached x $0.5/M + 500 x $2/M; the hold covers it.
    assert_eq!(cost, 1800);
    assert!(cost < hold, "{cost} >= {hold}");
    let grant = ROOM * hold + hold / 2;
    let credits = format!("{}.{:06}", grant / 1_000_000, grant % 1_000_000);
    let (user, token) = app.tenant("many", Some(&credits)).await;
    assert_eq!(
        app.ledger.balance(&user).await.unwrap().balance_micro_usd,
        grant
    );

    // Watch the balance and what is available beside it, all along.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (store, user, watching) = (app.db.store.clone(), user.clone(), watching.clone());
        tokio::spawn(async move {
            let (mut lowest_balance, mut lowest_available) = (i64::MAX, i64::MAX);
            for _ in 0..6000 {
                if !watching.load(Ordering::Relaxed) {
                    break;
                }
                let (Ok(balance), Ok(available)) = (
                    store.balance(&user).await,
                    store.available_balance(&user).await,
                ) else {
                    break;
                };
                lowest_balance = lowest_balance.min(balance.micros());
                lowest_available = lowest_available.min(available.micros());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (lowest_balance, lowest_available)
        })
    };

    // Every stream holds its credits until the gate lets it finish, so all
    // 64 contend for the balance at once.
    let token = token.expose_secret();
    let responses = join_all((0..STREAMS).map(|_| app.post(Some(token), body.clone()))).await;
    let (answered, refused): (Vec<_>, Vec<_>) = responses
        .into_iter()
        .partition(|r| r.status() == StatusCode::OK);
    assert_eq!(answered.len() as i64, ROOM, "as many streams as holds fit");
    let held = app.db.store.held_balance(&user).await.unwrap().micros();
    assert_eq!(held, ROOM * hold);
    for response in refused {
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "insufficient_quota", "{body}");
        assert_eq!(body["error"]["type"], "insufficient_quota");
    }

    // Each stream needs a permit per piece after the first and one for its usage.
    app.upstream.gate.add_permits(PIECES * ROOM as usize);
    let texts = join_all(answered.into_iter().map(|r| r.text())).await;
    for text in texts {
        let text = text.unwrap();
        for i in 0..PIECES {
            assert!(text.contains(&format!("piece-{i}")), "{text}");
        }
        assert!(
            text.contains("\"usage\"") && text.trim_end().ends_with("data: [DONE]"),
            "{text}"
        );
        assert!(!text.contains("\"error\""), "{text}");
    }

    // A stream ends only after its hold is settled.
    watching.store(false, Ordering::Relaxed);
    let (lowest_balance, lowest_available) = watcher.await.unwrap();
    assert!(lowest_balance >= 0, "balance went to {lowest_balance}");
    assert!(
        lowest_available >= 0,
        "available went to {lowest_available}"
    );
    let entries = app.model_entries(&user).await;
    assert_eq!(
        entries.len() as i64,
        ROOM,
        "one model entry per stream answered"
    );
    assert!(
        entries.iter().all(|e| e.amount.micros() == -cost),
        "{entries:?}"
    );
    let balance = app.ledger.balance(&user).await.unwrap().balance_micro_usd;
    assert_eq!(balance, grant - ROOM * cost);
    app.assert_nothing_held(&user).await;
    app.assert_verify_clean().await;
    assert_eq!(
        app.upstream.seen().len() as i64,
        ROOM,
        "a refused request never reaches the upstream"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_streams_share_a_balance_without_overdraft_on_sqlite() {
    streams_share_a_balance_without_overdraft(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_streams_share_a_balance_without_overdraft_on_postgres() {
    streams_share_a_balance_without_overdraft(Backend::Postgres).await;
}
