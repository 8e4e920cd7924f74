//! A full host refuses new instances with 503 `capacity` and a sentence,
//! and leaves nothing behind: no instance, no grant.

use clawplane_server::instances::Capacity;
use clawplane_store::Backend;
use reqwest::Method;

use crate::helpers::{send, spawn_app_with};

async fn a_full_host_refuses_a_create_and_leaves_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        config.instances.capacity = Some(Capacity {
            budget_bytes: 1 << 30,
            per_instance_bytes: 2 << 30,
        });
    })
    .await;
    let (status, body) = send(app.api(Method::POST, "/api/openclaw/instance", "ana")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"]["code"], "capacity", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("This host is full") && message.contains("Try again later"),
        "{message}"
    );
    let (status, body) = send(app.api(Method::GET, "/api/openclaw/instance", "ana")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"].is_null(), "no instance was made: {body}");
    let (status, body) = send(app.api(Method::GET, "/api/openclaw/billing/ledger", "ana")).await;
    assert_eq!(status, 200, "{body}");
    let entries = body["data"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(entries.is_empty(), "no credits were granted: {body}");
    app.stop().await;
}

#[tokio::test]
async fn a_full_host_refuses_a_create_and_leaves_nothing_sqlite() {
    a_full_host_refuses_a_create_and_leaves_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_full_host_refuses_a_create_and_leaves_nothing_postgres() {
    a_full_host_refuses_a_create_and_leaves_nothing(Backend::Postgres).await;
}

#[test]
fn slots_divide_the_budget_by_what_one_instance_may_use() {
    let c = Capacity {
        budget_bytes: 22 << 30,
        per_instance_bytes: 2 << 30,
    };
    assert_eq!(c.slots(), 11);
    let none = Capacity {
        budget_bytes: 1,
        per_instance_bytes: 0,
    };
    assert_eq!(none.slots(), 1);
}
