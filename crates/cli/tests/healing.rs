//! `serve` heals what dies while it runs, with the real binary, real
//! runtimes and a real gateway in its cell:
//!
//! - the gateway killed alone is restarted by its agent, and counted;
//! - the runtime agent killed with SIGKILL (what the OOM killer does) is
//!   noticed and started again: the API and the console show the
//!   interruption, the instance runs again, the old gateway is gone, and
//!   exactly one runtime and one gateway exist for it;
//! - an instance whose runtime is dead (and that no supervisor restores,
//!   here because the serve that adopted it checks only hourly) is deleted
//!   anyway, naming the backup it keeps, and nothing is left running (a
//!   delete that asks for a fresh backup is refused instead);
//! - a runtime that dies at every start ends its instance in `error` with
//!   the reason and is no longer restarted.

mod common;

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use common::api::Api;
use common::{processes_under, Reaper, Server};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::Value;

const INTERNAL_KEY: &str = "internal-key-for-healing-tests-0123456789";
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const USER: &str = "healing-user";

fn start(data: &Path, supervise_secs: &str) -> Server {
    Server::start(
        data,
        None,
        &[
            ("OA_INTERNAL_KEY", INTERNAL_KEY),
            ("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("OA_INTERNAL_USER_ID", USER),
            ("CLAWPLANE_SUPERVISE_INTERVAL_SECS", supervise_secs),
            ("CLAWPLANE_RUNTIME_RESTARTS", "3"),
            ("CLAWPLANE_LOG", "info,sqlx=warn,hyper=warn,reqwest=warn"),
        ],
    )
}

fn api(server: &Server) -> Api<'_> {
    Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        server,
        user: USER,
        internal_key: INTERNAL_KEY,
    }
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The instance's runtime agents and gateways (long-lived processes only:
/// the gateway's short-lived workers come and go).
fn agents_and_gateways(instance_dir: &Path) -> (Vec<i32>, Vec<i32>) {
    let all = processes_under(instance_dir);
    let agents = all
        .iter()
        .copied()
        .filter(|p| comm(*p) == "clawplane")
        .collect();
    let gateways = all
        .iter()
        .copied()
        .filter(|p| comm(*p).starts_with("openclaw-gatew"))
        .collect();
    (agents, gateways)
}

fn agent_pid(instance_dir: &Path) -> i32 {
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(instance_dir.join("runtime.json")).unwrap())
            .unwrap();
    record["pid"].as_i64().unwrap() as i32
}

fn alive(pid: i32) -> bool {
    clawplane_runtime::gateway::process::is_alive(pid as u32)
}

async fn gateway_status(api: &Api<'_>) -> Option<Value> {
    let (status, body) = api.call(Method::GET, "/api/openclaw/runtime/status").await;
    (status == 200).then(|| body["data"]["gateway"].clone())
}

/// Waits until the gateway runs (bounded), returning its status.
async fn wait_running(api: &Api<'_>, within: Duration, what: &str) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(g) = gateway_status(api).await {
            if g["state"] == "running" {
                return g;
            }
        }
        assert!(Instant::now() < deadline, "{what}: not running in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_ready(api: &Api<'_>, data: &Path) -> PathBuf {
    let (status, body) = api.call(Method::POST, "/api/openclaw/instance").await;
    assert_eq!(status, 200, "{body}");
    let instance = api.wait_for("ready", Duration::from_secs(300)).await;
    let dir = data
        .join("instances")
        .join(instance["id"].as_str().unwrap());
    wait_running(api, Duration::from_secs(240), "the new gateway").await;
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_heals_dead_gateways_and_runtimes_and_deletes_without_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _reaper = Reaper(data.clone());
    let mut server = start(&data, "5");
    let dir = create_ready(&api(&server), &data).await;
    let backup_id = gateway_and_runtime_deaths(&server, &dir).await;
    server.kill9();

    delete_without_runtime_and_give_up(&data, &dir, &backup_id).await;
}

/// Steps 1 and 2 of the test; returns the id of a backup taken after them.
async fn gateway_and_runtime_deaths(server: &Server, dir: &Path) -> String {
    let api = api(server);
    // 1. The gateway alone, killed: its agent starts it again and counts it.
    let before = gateway_status(&api).await.unwrap();
    let (_, gateways) = agents_and_gateways(dir);
    assert_eq!(gateways.len(), 1, "one gateway: {gateways:?}");
    kill(Pid::from_raw(gateways[0]), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let after = loop {
        if let Some(g) = gateway_status(&api).await {
            if g["state"] == "running" && g["pid"] != before["pid"] {
                break g;
            }
        }
        assert!(Instant::now() < deadline, "the gateway did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        after["crashes"].as_u64(),
        before["crashes"].as_u64().map(|c| c + 1),
        "{after}"
    );

    // 2. The runtime agent, killed: serve notices, shows it, restores it.
    let old_agent = agent_pid(dir);
    let (_, old_gateways) = agents_and_gateways(dir);
    kill(Pid::from_raw(old_agent), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    let (mut api_saw, mut console_saw) = (None::<String>, false);
    let back = loop {
        let (_, body) = api.call(Method::GET, "/api/openclaw/instance").await;
        let instance = &body["data"];
        assert_eq!(
            instance["status"], "ready",
            "the status is kept: {instance}"
        );
        if let Some(reason) = instance["status_reason"].as_str() {
            if api_saw.as_deref() != Some(reason) {
                eprintln!("{:?} after the kill: {reason}", killed.elapsed());
            }
            api_saw = Some(reason.to_owned());
            if !console_saw {
                let page = api
                    .client
                    .get(format!("{}/console", server.address))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                console_saw = page.contains("The runtime stopped unexpectedly");
            }
        } else if api_saw.is_some() {
            if let Some(g) = gateway_status(&api).await {
                if g["state"] == "running" {
                    break killed.elapsed();
                }
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "the runtime was not restored: {instance}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // OpenClaw's own start (17-19 s on the 2-core test machines) is most of
    // it: what serve adds (noticing, the new agent, its cell) is bounded.
    let restored = gateway_status(&api).await.unwrap();
    let at = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(restored[k].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{k} in {restored}: {e}"))
    };
    let own_start = (at("readyAt") - at("startedAt")).to_std().unwrap();
    eprintln!("running again {back:?} after the kill; the gateway's own start took {own_start:?}");
    let reason = api_saw.expect("the API showed the interruption");
    assert!(
        reason.contains("The runtime stopped unexpectedly") && reason.contains("restarting"),
        "{reason}"
    );
    assert!(console_saw, "the console showed the interruption");
    assert!(
        back.saturating_sub(own_start) < Duration::from_secs(5),
        "running again {back:?} after the kill, of which the gateway's start took {own_start:?}"
    );
    assert!(!alive(old_agent));
    assert!(
        old_gateways.iter().all(|p| !alive(*p)),
        "the old gateway died with its agent"
    );
    let (agents, gateways) = agents_and_gateways(dir);
    assert_eq!(agents.len(), 1, "exactly one runtime: {agents:?}");
    assert_eq!(gateways.len(), 1, "exactly one gateway: {gateways:?}");
    assert_ne!(agents[0], old_agent);
    let metrics = api
        .client
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("clawplane_runtime_restarts_total{outcome=\"restored\"} 1"),
        "{metrics}"
    );

    // 3. A backup to keep; then this serve dies and one that checks only
    //    hourly adopts the runtime, whose agent then dies unnoticed.
    let (status, backup) = api.call(Method::POST, "/api/openclaw/runtime/backup").await;
    assert_eq!(status, 200, "{backup}");
    backup["data"]["backup"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a backup id in {backup}"))
        .to_owned()
}

/// Steps 3 and 4 of the test, with the serve that checks only hourly.
async fn delete_without_runtime_and_give_up(data: &Path, dir: &Path, backup_id: &str) {
    let server = start(data, "3600");
    let api = self::api(&server);
    wait_running(&api, Duration::from_secs(60), "the adopted gateway").await;
    let agent = agent_pid(dir);
    kill(Pid::from_raw(agent), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(agent) {
        assert!(Instant::now() < deadline, "the agent did not die");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Asked for a fresh backup, the delete is refused and changes nothing.
    let (status, refused) = api
        .call(Method::DELETE, "/api/openclaw/instance?backup=required")
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "backup_failed");
    let (_, still) = api.call(Method::GET, "/api/openclaw/instance").await;
    assert_eq!(still["data"]["status"], "ready", "{still}");
    let (status, deleted) = api.call(Method::DELETE, "/api/openclaw/instance").await;
    assert_eq!(status, 200, "deleted without its runtime: {deleted}");
    assert_eq!(deleted["data"]["instance"]["status"], "deleted");
    assert_eq!(deleted["data"]["backup"]["fresh"], false, "{deleted}");
    assert_eq!(deleted["data"]["backup"]["kept"]["id"], backup_id);
    assert!(deleted["data"]["backup"]["note"]
        .as_str()
        .unwrap()
        .contains(backup_id));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_under(dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left running: {:?}",
            processes_under(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 4. A runtime that dies at every start: its backup store cannot be
    //    opened (a file where its directory must be), so each new agent
    //    exits at once. Its instance ends in `error`, and stays there.
    let dir = create_ready(&api, data).await;
    let backups = data.join("backups");
    std::fs::rename(&backups, data.join("backups.aside")).unwrap();
    std::fs::write(&backups, "not a directory").unwrap();
    kill(Pid::from_raw(agent_pid(&dir)), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let failed = loop {
        let (_, body) = api.call(Method::GET, "/api/openclaw/instance").await;
        if body["data"]["status"] == "error" {
            break body["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "not given up in time: {}",
            body["data"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reason = failed["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("keeps dying") && reason.contains("exited at start"),
        "{reason}"
    );
    let starts = |log: &str| log.matches("clawplane runtime listening").count();
    let log_path = dir.join("logs/runtime.log");
    let before = std::fs::read_to_string(&log_path).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        (after.len(), starts(&after)),
        (before.len(), starts(&before)),
        "no further restart"
    );
    assert!(agents_and_gateways(&dir).0.is_empty(), "nothing runs");
    let (_, again) = api.call(Method::GET, "/api/openclaw/instance").await;
    assert_eq!(again["data"]["status"], "error");
}
