//! Billing over HTTP: the control surface's writes and the API's reads.

use clawplane_store::Backend;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{send, spawn_app, spawn_app_with};

async fn grant_burn_replay_and_refusals(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = app.grant("ana", "12.345", "g-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user_id"], "ana");
    assert_eq!(body["data"]["balance_usd"].to_string(), "12.35");
    assert_eq!(body["data"]["balance_micro_usd"], 12_345_000);

    // JSON numbers are exact too.
    let (status, body) = send(
        app.control(Method::POST, "/control/openclaw/billing/burn")
            .header("idempotency-key", "b-1")
            .json(&json!({ "userId": "ana", "amount_usd": 0.345 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["balance_micro_usd"], 12_000_000);

    // Replay: same answer, nothing written.
    let (status, replay) = app.grant("ana", "12.345", "g-1").await;
    assert_eq!(status, 200);
    assert_eq!(replay["data"]["replayed"], true);
    assert_eq!(replay["data"]["balance_micro_usd"], 12_000_000);

    // Same key, different request: 409.
    let (status, body) = app.grant("ana", "1", "g-1").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("idempotency_conflict"))
    );

    // Zero: the seed's message.
    let (status, body) = app.burn("ana", "0", "b-0").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "amount_usd must be greater than zero"
    );

    // Overdraft: 402 and nothing written.
    let (status, body) = app.burn("ana", "12.000001", "b-2").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (402, Some("insufficient_credits"))
    );
    let (_, summary) = send(app.api(Method::GET, "/api/openclaw/billing/summary", "ana")).await;
    assert_eq!(summary["data"]["balance_micro_usd"], 12_000_000);
    assert_eq!(summary["data"]["month_to_date_usage_micro_usd"], 345_000);
    assert_eq!(
        summary["data"]["recent_entries"].as_array().unwrap().len(),
        2
    );

    // Missing and malformed idempotency keys.
    let (status, body) = send(
        app.control(Method::POST, "/control/openclaw/billing/grant")
            .json(&json!({ "user_id": "ana", "amount_usd": 1 })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );
    let (status, _) = app.grant("ana", "1", "clawplane:monthly:x").await;
    assert_eq!(status, 400, "server-reserved keys are refused");
    app.stop().await;
}

#[tokio::test]
async fn grant_burn_replay_and_refusals_on_sqlite() {
    grant_burn_replay_and_refusals(Backend::Sqlite).await;
}

#[tokio::test]
async fn grant_burn_replay_and_refusals_on_postgres() {
    grant_burn_replay_and_refusals(Backend::Postgres).await;
}

#[tokio::test]
async fn the_control_summary_finds_the_user_in_the_seeds_order() {
    let app = spawn_app(Backend::Sqlite).await;
    for (user, amount) in [
        ("from-header", "1"),
        ("from-query", "2"),
        ("from-query-camel", "3"),
    ] {
        app.grant(user, amount, &format!("g-{user}")).await;
    }
    let base = "/control/openclaw/billing/summary";
    let balance = |body: serde_json::Value| body["data"]["user_id"].as_str().unwrap().to_owned();
    let (_, b) = send(
        app.control(
            Method::GET,
            &format!("{base}?user_id=from-query&userId=from-query-camel"),
        )
        .header("x-oa-user-id", "from-header"),
    )
    .await;
    assert_eq!(balance(b), "from-header");
    let (_, b) = send(app.control(
        Method::GET,
        &format!("{base}?userId=from-query-camel&user_id=from-query"),
    ))
    .await;
    assert_eq!(balance(b), "from-query");
    let (_, b) = send(app.control(Method::GET, &format!("{base}?userId=from-query-camel"))).await;
    assert_eq!(balance(b), "from-query-camel");
    let (status, b) = send(app.control(Method::GET, base)).await;
    assert_eq!(
        (status, b["error"]["message"].as_str()),
        (400, Some("missing user id"))
    );

    // Body lookup order on a write: user_id, userId, subject, user.
    for (body, expected) in [
        (
            json!({"user": "u4", "subject": "u3", "amount_usd": 1}),
            "u3",
        ),
        (json!({"user": "u4", "amount_usd": 1}), "u4"),
        (
            json!({"userId": "u2", "subject": "u3", "amount_usd": 1}),
            "u2",
        ),
        (
            json!({"user_id": "u1", "userId": "u2", "amount_usd": 1}),
            "u1",
        ),
    ] {
        let (status, b) = send(
            app.control(Method::POST, "/control/openclaw/billing/grant")
                .header("idempotency-key", format!("k-{expected}"))
                .json(&body),
        )
        .await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(b["data"]["user_id"], expected);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_api_reads_only_the_callers_own_ledger() {
    let app = spawn_app(Backend::Sqlite).await;
    for i in 0..7 {
        app.grant("ana", "1", &format!("a-{i}")).await;
    }
    app.grant("bob", "5", "b-0").await;
    let (status, page) =
        send(app.api(Method::GET, "/api/openclaw/billing/ledger?limit=5", "ana")).await;
    assert_eq!(status, 200);
    let entries = page["data"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert!(entries.iter().all(|e| e["user_id"] == "ana"));
    let cursor = page["data"]["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = send(app.api(
        Method::GET,
        &format!("/api/openclaw/billing/ledger?limit=5&before={cursor}"),
        "ana",
    ))
    .await;
    assert_eq!(next["data"]["entries"].as_array().unwrap().len(), 2);
    assert!(next["data"]["next_cursor"].is_null());

    let (_, bob) = send(app.api(Method::GET, "/api/openclaw/billing/summary", "bob")).await;
    assert_eq!(bob["data"]["balance_micro_usd"], 5_000_000);
    assert_eq!(bob["data"]["recent_entries"].as_array().unwrap().len(), 1);

    for bad in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "before=-3",
        "before=xyz",
    ] {
        let (status, _) = send(app.api(
            Method::GET,
            &format!("/api/openclaw/billing/ledger?{bad}"),
            "ana",
        ))
        .await;
        assert_eq!(status, 400, "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_reversal_through_the_control_surface() {
    let app = spawn_app(Backend::Sqlite).await;
    app.grant("ana", "10", "g").await;
    let (_, burned) = app.burn("ana", "4", "b").await;
    let entry_id = burned["data"]["entry"]["id"].as_i64().unwrap();
    let reverse = |key: &'static str, body: serde_json::Value| {
        app.control(Method::POST, "/control/openclaw/billing/reverse")
            .header("idempotency-key", key)
            .json(&body)
    };
    let (status, body) = send(reverse(
        "r1",
        json!({"user_id": "ana", "entry_id": entry_id, "reason": "refund"}),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["balance_micro_usd"], 10_000_000);
    let (status, _) = send(reverse(
        "r2",
        json!({"user_id": "ana", "entry_id": entry_id}),
    ))
    .await;
    assert_eq!(status, 409);
    let (status, _) = send(reverse(
        "r3",
        json!({"user_id": "bob", "entry_id": entry_id}),
    ))
    .await;
    assert_eq!(status, 404, "another user's entry");
    let (status, _) = send(reverse("r4", json!({"user_id": "ana", "entry_id": "1"}))).await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn a_negative_floor_is_honoured_over_http() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.billing.floor = clawplane_domain::MicroUsd::from_usd(-5);
    })
    .await;
    let (status, body) = app.burn("ana", "5", "b1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["balance_usd"].to_string(), "-5");
    let (status, _) = app.burn("ana", "0.01", "b2").await;
    assert_eq!(status, 402);
    let (_, summary) = send(app.api(Method::GET, "/api/openclaw/billing/summary", "ana")).await;
    assert_eq!(summary["data"]["floor_usd"].to_string(), "-5");
    app.stop().await;
}
