//! End to end with the real binary on the embedded defaults (and once on
//! PostgreSQL): `clawplane serve` with the `local` provisioner runs a real
//! `clawplane runtime` and a real OpenClaw gateway per instance.
//!
//! create -> ready -> status -> a real device's pending request approved
//! through the API -> backup -> control plane killed and started again
//! (runtime found again, not duplicated) -> billing summary -> delete.
//! Every secret of the run is then looked for in every log: none is there.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use clawplane_testkit::device::{Outcome, TestDevice};
use common::api::Api;
use common::{processes_under, Reaper, Server, CONTROL_KEY};
use reqwest::{Client, Method};
use serde_json::Value;

const INTERNAL_KEY: &str = "internal-key-for-e2e-tests-0123456789";
const USER: &str = "e2e-user@example.com";
const ENCRYPTION_KEY: &str = "6b1f3c0e9d2a4b5c8e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff";

fn runtime_record(data_dir: &Path, id: &str) -> Value {
    let text = std::fs::read_to_string(data_dir.join("instances").join(id).join("runtime.json"))
        .expect("runtime.json of a local runtime");
    serde_json::from_str(&text).unwrap()
}

/// Runtimes and gateways under the data directory (not the server itself).
/// The long-lived processes of the data directory's instances: runtimes,
/// their cells' sandboxes and network helpers, and gateways. The gateway's
/// own short-lived workers come and go and are left out, so a duplicate
/// runtime or gateway is what a difference shows.
fn runtimes(data_dir: &Path, server: &Server) -> Vec<i32> {
    let own = server.child.id() as i32;
    processes_under(data_dir)
        .into_iter()
        .filter(|p| *p != own)
        .filter(|p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let comm = comm.trim();
            ["clawplane", "bwrap", "slirp4netns"].contains(&comm)
                || comm.starts_with("openclaw-gatew")
        })
        .collect()
}

fn start(data_dir: &Path, database_url: Option<&str>) -> Server {
    Server::start(
        data_dir,
        database_url,
        &[
            ("OA_INTERNAL_KEY", INTERNAL_KEY),
            ("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("CLAWPLANE_LOG", "debug,sqlx=warn,hyper=warn,reqwest=warn"),
        ],
    )
}

async fn the_whole_flow(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let _reaper = Reaper(data_dir.clone());
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut logs = String::new();

    let server = start(&data_dir, database_url);
    let api = Api {
        client: client.clone(),
        server: &server,
        user: USER,
        internal_key: INTERNAL_KEY,
    };

    // Create: answered at once with `provisioning`; a second call is the same instance.
    let started = Instant::now();
    let (status, created) = api.call(Method::POST, "/api/openclaw/instance").await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["data"]["status"], "provisioning");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (_, again) = api.call(Method::POST, "/api/openclaw/instance").await;
    assert_eq!(again["data"]["id"], id.as_str(), "idempotent create");

    let ready = api.wait_for("ready", Duration::from_secs(240)).await;
    eprintln!("ready after {:?}", started.elapsed());
    assert!(ready["last_ready_at"].as_i64().is_some(), "{ready}");
    assert_eq!(ready["provisioner"], "local");
    assert!(ready["runtime_name"].as_str().unwrap().starts_with("oc-"));
    let text = ready.to_string();
    for field in ["_encrypted", "_iv", "_alg", "token\":"] {
        assert!(!text.contains(field), "no secret field in {text}");
    }

    let (status, runtime) = api.call(Method::GET, "/api/openclaw/runtime/status").await;
    assert_eq!(status, 200, "{runtime}");
    assert_eq!(runtime["data"]["gateway"]["state"], "running");
    assert_eq!(runtime["data"]["instanceId"], id.as_str());

    // A real device arrives at the gateway and asks to pair.
    let (status, secret) = api
        .control(&format!(
            "/control/openclaw/instance/secret?user_id={USER}&name=gateway_token"
        ))
        .await;
    assert_eq!(status, 200, "{secret}");
    let gateway_token = secret["data"]["value"].as_str().unwrap().to_owned();
    let (_, secret) = api
        .control(&format!(
            "/control/openclaw/instance/secret?user_id={USER}&name=service_token"
        ))
        .await;
    let service_token = secret["data"]["value"].as_str().unwrap().to_owned();
    assert!(gateway_token.len() >= 43 && service_token.len() >= 43);
    assert_ne!(gateway_token, service_token);

    let record = runtime_record(&data_dir, &id);
    let ws = format!("ws://127.0.0.1:{}", record["gateway_port"]);
    let phone = TestDevice::new("E2E phone");
    let first = phone
        .connect(&ws, &gateway_token, false, Some("203.0.113.9"), None)
        .await;
    let Outcome::NotPaired { request_id } = first else {
        panic!("expected a pairing request, got {first:?}")
    };
    let (status, devices) = api.call(Method::GET, "/api/openclaw/runtime/devices").await;
    assert_eq!(status, 200, "{devices}");
    assert!(devices["data"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["requestId"] == request_id.as_str() && p["remoteIp"] == "203.0.113.9"));
    let (status, approved) = api
        .call(
            Method::POST,
            &format!("/api/openclaw/runtime/devices/{request_id}/approve"),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    let second = phone
        .connect(&ws, &gateway_token, false, Some("203.0.113.9"), None)
        .await;
    assert!(
        matches!(second, Outcome::HelloOk { .. }),
        "paired: {second:?}"
    );

    // Backup.
    let (status, backup) = api.call(Method::POST, "/api/openclaw/runtime/backup").await;
    assert_eq!(status, 200, "{backup}");
    let (_, backups) = api.call(Method::GET, "/api/openclaw/runtime/backups").await;
    assert!(
        !backups["data"]["backups"].as_array().unwrap().is_empty(),
        "{backups}"
    );

    // Provider keys: stored encrypted, names listed, the runtime restarted
    // with them in its environment, the gateway running again.
    let provider_key = "sk-e2e-provider-key-0123456789abcdef";
    let (status, put) = api
        .put_json(
            "/api/openclaw/provider-keys",
            serde_json::json!({ "keys": { "OPENAI_API_KEY": provider_key } }),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["data"]["names"], serde_json::json!(["OPENAI_API_KEY"]));
    assert!(!put.to_string().contains(provider_key));
    let deadline = Instant::now() + Duration::from_secs(180);
    let record = loop {
        let now = runtime_record(&data_dir, &id);
        if now["pid"] != record["pid"] {
            let (status, runtime) = api.call(Method::GET, "/api/openclaw/runtime/status").await;
            if status == 200 && runtime["data"]["gateway"]["state"] == "running" {
                break now;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the runtime was not restarted with the keys"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let environ = std::fs::read(format!("/proc/{}/environ", record["pid"])).unwrap();
    assert!(
        String::from_utf8_lossy(&environ).contains(provider_key),
        "the runtime has the keys"
    );
    let (_, names) = api.call(Method::GET, "/api/openclaw/provider-keys").await;
    assert_eq!(
        names["data"]["names"],
        serde_json::json!(["OPENAI_API_KEY"])
    );
    assert!(!names.to_string().contains(provider_key));
    let (_, runtime) = api.call(Method::GET, "/api/openclaw/runtime/status").await;
    let gateway_pid = runtime["data"]["gateway"]["pid"].as_u64().unwrap();

    // The control plane dies (SIGKILL) and starts again on the same data:
    // the runtime and its gateway kept running and are found again.
    let runtimes_before = runtimes(&data_dir, &server);
    assert!(
        runtimes_before.len() >= 2,
        "a runtime and its gateway: {runtimes_before:?}"
    );
    logs.push_str(&server.stderr());
    drop(api);
    drop(server);
    let server = start(&data_dir, database_url);
    let api = Api {
        client: client.clone(),
        server: &server,
        user: USER,
        internal_key: INTERNAL_KEY,
    };
    let (_, instance) = api.call(Method::GET, "/api/openclaw/instance").await;
    assert_eq!(instance["data"]["id"], id.as_str());
    assert_eq!(instance["data"]["status"], "ready");
    tokio::time::sleep(Duration::from_secs(3)).await; // the reconciler's first pass
    let (status, runtime) = api.call(Method::GET, "/api/openclaw/runtime/status").await;
    assert_eq!(status, 200, "{runtime}");
    assert_eq!(
        runtime["data"]["gateway"]["pid"].as_u64(),
        Some(gateway_pid),
        "same gateway"
    );
    assert_eq!(
        runtime_record(&data_dir, &id)["pid"],
        record["pid"],
        "same runtime"
    );
    // A short-lived child of the gateway (its spawn broker's work) may be
    // in the list for a moment; a duplicate runtime or gateway stays.
    let mut now = runtimes(&data_dir, &server);
    for _ in 0..10 {
        if now == runtimes_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = runtimes(&data_dir, &server);
    }
    assert_eq!(now, runtimes_before, "nothing duplicated");

    // Billing: the month's credits were granted when the instance was created.
    let (status, summary) = api.call(Method::GET, "/api/openclaw/billing/summary").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["data"]["user_id"], USER);
    assert_eq!(
        summary["data"]["balance_usd"].as_f64(),
        Some(10.0),
        "{summary}"
    );

    // The secret reads above are in the audit log.
    let (_, audit) = api
        .control(&format!("/control/openclaw/audit?user_id={USER}"))
        .await;
    let reads = audit["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "secret.read")
        .count();
    assert_eq!(reads, 2, "{audit}");

    let runtime_log = std::fs::read_to_string(
        data_dir
            .join("instances")
            .join(&id)
            .join("logs/runtime.log"),
    )
    .unwrap_or_default();

    // Delete: protective backup, runtime gone, instance deleted, backups kept.
    let (status, deleted) = api.call(Method::DELETE, "/api/openclaw/instance").await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["data"]["instance"]["status"], "deleted");
    assert!(deleted["data"]["backup"].is_object(), "{deleted}");
    assert!(
        runtimes(&data_dir, &server).is_empty(),
        "no runtime or gateway left"
    );
    assert!(data_dir.join("backups").join(&id).exists(), "backups kept");
    let (status, _) = api.call(Method::GET, "/api/openclaw/runtime/status").await;
    assert_eq!(status, 404);

    logs.push_str(&server.stderr());
    logs.push_str(&runtime_log);
    assert!(logs.contains("instance ready"), "the logs were captured");
    for secret in [
        provider_key,
        gateway_token.as_str(),
        service_token.as_str(),
        INTERNAL_KEY,
        CONTROL_KEY,
        ENCRYPTION_KEY,
    ] {
        assert!(!logs.contains(secret), "a secret in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_the_embedded_defaults() {
    the_whole_flow(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_postgres() {
    let (url, name) = clawplane_testkit::create_postgres_database().await;
    the_whole_flow(Some(&url)).await;
    clawplane_testkit::drop_postgres_database(&name).await;
}

/// The control plane is killed while an instance is provisioning: the next
/// start picks the instance up, finds (or starts) its runtime, and brings it
/// to `ready` with exactly one runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_provisioning_recovers_without_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let _reaper = Reaper(data_dir.clone());
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();

    let server = start(&data_dir, None);
    let api = Api {
        client: client.clone(),
        server: &server,
        user: USER,
        internal_key: INTERNAL_KEY,
    };
    let (_, created) = api.call(Method::POST, "/api/openclaw/instance").await;
    assert_eq!(created["data"]["status"], "provisioning");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    // Let the runtime be started, then kill the control plane mid-provisioning.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(api);
    drop(server);

    let server = start(&data_dir, None);
    let api = Api {
        client: client.clone(),
        server: &server,
        user: USER,
        internal_key: INTERNAL_KEY,
    };
    let ready = api.wait_for("ready", Duration::from_secs(240)).await;
    assert_eq!(ready["id"], id.as_str(), "the same instance");
    let runtime_pids: Vec<i32> = runtimes(&data_dir, &server)
        .into_iter()
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains("runtime")
        })
        .collect();
    assert_eq!(runtime_pids.len(), 1, "one runtime: {runtime_pids:?}");
    let (status, runtime) = api.call(Method::GET, "/api/openclaw/runtime/status").await;
    assert_eq!(status, 200, "{runtime}");
    assert_eq!(runtime["data"]["gateway"]["state"], "running");

    let (status, _) = api.call(Method::DELETE, "/api/openclaw/instance").await;
    assert_eq!(status, 200);
    assert!(runtimes(&data_dir, &server).is_empty());
}
