//! A real `clawplane serve` killed with SIGKILL in the middle of a stream of
//! burns: after a restart every acknowledged burn is there, nothing is
//! half-written, and the ledger verifies clean. On SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clawplane_store::{Backend, Store};
use common::{clawplane, Server, CONTROL_KEY};

async fn burn_stream_survives_kill_9(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_name) = match backend {
        Backend::Sqlite => (None, None),
        Backend::Postgres => {
            let (url, name) = clawplane_testkit::create_postgres_database().await;
            (Some(url), Some(name))
        }
    };
    let env = [(
        "OPENCLAW_ENCRYPTION_KEY",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    )];
    let data = dir.path().join("data");
    let mut server = Server::start(&data, url.as_deref(), &env);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let grant = client
        .post(format!("{}/control/openclaw/billing/grant", server.address))
        .header("x-oa-control-key", CONTROL_KEY)
        .header("idempotency-key", "seed")
        .json(&serde_json::json!({"user_id": "crash", "amount_usd": "1000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), 200);

    // Eight clients stream burns; each records the keys acknowledged with 200.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for worker in 0..8 {
        let (client, address, acked) = (client.clone(), server.address.clone(), acked.clone());
        clients.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            for i in 0..5_000 {
                if Instant::now() > deadline {
                    break;
                }
                let key = format!("w{worker}-{i}");
                let sent = client
                    .post(format!("{address}/control/openclaw/billing/burn"))
                    .header("x-oa-control-key", CONTROL_KEY)
                    .header("idempotency-key", &key)
                    .json(&serde_json::json!({"user_id": "crash", "amount_usd": "0.01"}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(key),
                    _ => break, // the server is gone
                }
            }
        }));
    }
    // Kill once a few hundred burns are acknowledged (bounded in time).
    let start = Instant::now();
    while acked.lock().unwrap().len() < 300 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    for c in clients {
        c.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300,
        "only {} burns acknowledged before the kill",
        acked.len()
    );

    // The server starts again on the crashed database.
    let server = Server::start(&data, url.as_deref(), &env);
    let ready = client
        .get(format!("{}/readyz", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", server.stderr());

    let store = match &url {
        None => Store::open_sqlite_dir(&data, &Default::default())
            .await
            .unwrap(),
        Some(u) => Store::connect(u, &Default::default()).await.unwrap(),
    };
    let user = clawplane_domain::UserId::parse("crash").unwrap();
    for key in &acked {
        // Stored scoped to its user, as every client's key is.
        let stored = clawplane_server::extract::scoped_idempotency_key(
            &user,
            &clawplane_domain::IdempotencyKey::parse(key).unwrap(),
        );
        let entry = store
            .entry_by_idempotency_key(stored.as_str())
            .await
            .unwrap();
        assert!(
            entry.is_some(),
            "acknowledged burn {key} is missing after the crash"
        );
    }
    let mut burns = HashSet::new();
    let mut before = None;
    loop {
        let page = store.ledger_page(&user, before, 200).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.id);
        for e in page {
            if e.kind == clawplane_domain::EntryKind::Burn {
                assert_eq!(e.amount.micros(), -10_000, "no half-written entry");
                assert!(burns.insert(e.idempotency_key));
            }
        }
    }
    assert!(burns.len() >= acked.len());
    let balance = store.balance(&user).await.unwrap().micros();
    assert_eq!(
        balance,
        1_000_000_000 - 10_000 * burns.len() as i64,
        "balance matches the entries"
    );
    let report = store.verify_ledger().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    store.close().await;

    // The operator's own check agrees (exit code 0 means clean).
    let mut verify = clawplane();
    verify
        .args(["admin", "credits", "verify"])
        .env("CLAWPLANE_DATA_DIR", &data);
    if let Some(u) = &url {
        verify.env("DATABASE_URL", u);
    }
    let out = verify.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
    if let Some(name) = pg_name {
        clawplane_testkit::drop_postgres_database(&name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_burns_survive_kill_9_on_sqlite() {
    burn_stream_survives_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_burns_survive_kill_9_on_postgres() {
    burn_stream_survives_kill_9(Backend::Postgres).await;
}
