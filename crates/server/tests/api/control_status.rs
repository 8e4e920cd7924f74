//! The control status route applies the rules of the API's create and
//! start: a move into `ready` or `provisioning` for a user at the credit
//! floor is 402, one on a full host is 503, and a refused move changes
//! nothing.

use clawplane_domain::MicroUsd;
use clawplane_server::instances::Capacity;
use clawplane_server::ServerConfig;
use clawplane_store::Backend;
use serde_json::json;

use crate::control::{cpost, err, instance_of, ok};
use crate::helpers::{spawn_app_with, TestApp};

const INSTANCE: &str = "/control/openclaw/instance";
const STATUS: &str = "/control/openclaw/instance/status";

/// Running time is metered, so the floor stops a start (without a price
/// nothing is metered and any balance may run).
fn metered(c: &mut ServerConfig) {
    c.billing.instance_hour_price = MicroUsd::from_usd(1);
}

async fn move_to(app: &TestApp, user: &str, status: &str) -> (u16, serde_json::Value) {
    cpost(app, STATUS, json!({ "user_id": user, "status": status })).await
}

async fn status_of(app: &TestApp, user: &str) -> serde_json::Value {
    instance_of(app, user).await["status"].clone()
}

async fn moves_at_the_floor_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, metered).await;
    // Created with the month's 10 USD, then all of it used: at the floor.
    let created = ok(cpost(&app, INSTANCE, json!({ "user_id": "ana" })).await);
    assert_eq!(created["status"], "provisioning");
    ok(app.burn("ana", "10", "use-all").await);
    let (status, body) = move_to(&app, "ana", "ready").await;
    assert!(body["error"]["message"].is_string(), "{body}");
    err((status, body), 402, "insufficient_credits");
    assert_eq!(status_of(&app, "ana").await, "provisioning", "unchanged");
    // From `error`, provisioning again is refused the same way.
    ok(move_to(&app, "ana", "error").await);
    err(
        move_to(&app, "ana", "provisioning").await,
        402,
        "insufficient_credits",
    );
    assert_eq!(status_of(&app, "ana").await, "error", "unchanged");
    // With credits, the same moves pass.
    ok(app.grant("ana", "5", "top-up").await);
    let moved = ok(move_to(&app, "ana", "provisioning").await);
    assert_eq!(moved["status"], "provisioning");
    let moved = ok(move_to(&app, "ana", "ready").await);
    assert_eq!(moved["status"], "ready");
    app.stop().await;
}

#[tokio::test]
async fn moves_into_ready_or_provisioning_at_the_floor_are_402_on_sqlite() {
    moves_at_the_floor_are_refused(Backend::Sqlite).await;
}

#[tokio::test]
async fn moves_into_ready_or_provisioning_at_the_floor_are_402_on_postgres() {
    moves_at_the_floor_are_refused(Backend::Postgres).await;
}

#[tokio::test]
async fn a_move_into_provisioning_on_a_full_host_is_503() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.instances.capacity = Some(Capacity {
            budget_bytes: 2 << 30,
            per_instance_bytes: 2 << 30,
        });
    })
    .await;
    ok(cpost(&app, INSTANCE, json!({ "user_id": "ana" })).await);
    ok(move_to(&app, "ana", "error").await);
    // Bob takes the one place while ana's instance does not run.
    ok(cpost(&app, INSTANCE, json!({ "user_id": "bob" })).await);
    err(move_to(&app, "ana", "provisioning").await, 503, "capacity");
    assert_eq!(status_of(&app, "ana").await, "error", "unchanged");
    // Writing a running instance's status again takes no new place.
    ok(move_to(&app, "bob", "provisioning").await);
    app.stop().await;
}
