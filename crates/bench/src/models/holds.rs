//! Holds and settles per second through `clawplane_billing::Ledger`: what
//! the proxy's meter writes per request (one `reserve_model`, then one
//! `settle_model` at the usage's cost), without the proxy, on SQLite and
//! PostgreSQL, each in a fresh database dropped afterwards.

use std::time::{Duration, Instant};

use clawplane_billing::{BillingConfig, GrantRequest, Ledger, ModelReservation, ModelUsage};
use clawplane_domain::{IdempotencyKey, InstanceFields, InstanceId, MicroUsd, UserId};
use clawplane_store::{NewInstance, Store};

/// The hold of one request (the proxy reserves the request's largest cost).
const HOLD: MicroUsd = MicroUsd::from_micros(10_000);
/// What the upstream's usage costs (the fake's usage at the bench's prices).
const COST: MicroUsd = MicroUsd::from_micros(420);

/// One measured row.
pub(super) struct Pairs {
    /// Reserve-then-settle pairs per second.
    pub(super) per_second: f64,
    /// Each pair's time, sorted.
    pub(super) latencies: Vec<Duration>,
}

/// The payers of a run: one instance per user, each funded.
async fn payers(
    store: &Store,
    ledger: &Ledger,
    run: &str,
    users: usize,
) -> anyhow::Result<Vec<(UserId, InstanceId)>> {
    let mut out = Vec::with_capacity(users);
    for u in 0..users {
        let user_id = UserId::parse(&format!("holds-{run}-{u}"))?;
        let instance = store
            .create_instance(NewInstance {
                user_id: user_id.clone(),
                fields: InstanceFields::default(),
            })
            .await?;
        ledger
            .grant(GrantRequest {
                user_id: user_id.clone(),
                amount: MicroUsd::from_usd(1_000_000),
                source: "benchmark".into(),
                idempotency_key: IdempotencyKey::parse(&format!("holds-{run}-fund-{u}"))?,
                meta: serde_json::Value::Null,
            })
            .await?;
        out.push((user_id, instance.id));
    }
    Ok(out)
}

/// `clients` clients reserving and settling for `duration` (or
/// `max_per_client` pairs each); client `c` pays as user `c % users`.
pub(super) async fn pairs(
    store: &Store,
    clients: usize,
    users: usize,
    duration: Duration,
    max_per_client: usize,
) -> anyhow::Result<Pairs> {
    let ledger = Ledger::new(store.clone(), BillingConfig::default());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let payers = payers(store, &ledger, &run, users).await?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let (ledger, run) = (ledger.clone(), run.clone());
        let (user_id, instance_id) = payers[c % users].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in 0..max_per_client {
                if start.elapsed() >= duration {
                    break;
                }
                let t = Instant::now();
                let hold = ledger
                    .reserve_model(&ModelReservation {
                        user_id: user_id.clone(),
                        instance_id,
                        model: "gpt-mini".into(),
                        amount: HOLD,
                        request_id: format!("{run}-{c}-{i}"),
                    })
                    .await?;
                let usage = ModelUsage {
                    input_tokens: 1000,
                    output_tokens: 500,
                    cached_tokens: 400,
                    cost: COST,
                };
                ledger.settle_model(&hold.id, &usage).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    Ok(Pairs {
        per_second: latencies.len() as f64 / elapsed,
        latencies,
    })
}
