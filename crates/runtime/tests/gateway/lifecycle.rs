//! Start, readiness and status; restart; kill -9 recovery; stop with no
//! process left.

use std::time::Duration;

use clawplane_runtime::gateway::process::{descendants, is_alive};
use reqwest::Method;

use crate::helpers::{eventually, group_members, spawn_agent, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_starts_restarts_recovers_from_kill_9_and_stops_without_leftovers() {
    let agent = spawn_agent(Options {
        autostart: false,
        ..Default::default()
    })
    .await;

    // Status never starts anything.
    let (status, body) = agent.call(Method::GET, "/v1/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["gateway"]["state"], "stopped");
    assert!(body["data"]["gateway"]["pid"].is_null());
    assert_eq!(body["data"]["versions"]["openclaw"], "2026.9.6");
    assert_eq!(body["data"]["instanceType"], "test");

    // Start: ready means /readyz answers 200.
    let (status, body) = agent.call(Method::POST, "/v1/gateway/start").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["gateway"]["state"], "running");
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", agent.gateway_port))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let (_, body) = agent.call(Method::GET, "/v1/status").await;
    let first = body["data"]["gateway"]["pid"].as_u64().unwrap() as u32;
    assert!(body["data"]["gateway"]["uptimeMs"].as_i64().unwrap() >= 0);
    let first_tree = descendants(first);

    // Restart: a new process, the old tree gone.
    let (status, body) = agent.call(Method::POST, "/v1/gateway/restart").await;
    assert_eq!(status, 200, "{body}");
    let second = body["data"]["gateway"]["pid"].as_u64().unwrap() as u32;
    assert_ne!(first, second);
    assert!(
        !is_alive(first) && first_tree.iter().all(|p| !is_alive(*p)),
        "nothing of the first gateway survives"
    );
    assert!(group_members(first).is_empty());
    assert_eq!(body["data"]["gateway"]["restarts"], 1);

    // kill -9: the supervisor brings it back and counts it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let third;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        let (_, body) = agent.call(Method::GET, "/v1/status").await;
        let g = &body["data"]["gateway"];
        if g["state"] == "running" && g["pid"].as_u64().is_some_and(|p| p as u32 != second) {
            third = g["pid"].as_u64().unwrap() as u32;
            assert_eq!(g["crashes"], 1);
            assert_eq!(g["restarts"], 2);
            assert_eq!(g["lastExit"]["signal"], 9);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not back after kill -9: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eventually(
        "the killed gateway's group is gone",
        Duration::from_secs(10),
        || group_members(second).is_empty(),
    )
    .await;

    // Stop: SIGTERM to the group, bounded wait; nothing left.
    let tree = descendants(third);
    let (status, body) = agent.call(Method::POST, "/v1/gateway/stop").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["gateway"]["state"], "stopped");
    assert!(
        body["data"]["backup"].is_object(),
        "a protective backup before the stop"
    );
    assert!(!is_alive(third));
    assert!(
        group_members(third).is_empty(),
        "no process left in the gateway's group"
    );
    assert!(
        tree.iter().all(|p| !is_alive(*p)),
        "no worker left: {tree:?}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_failure_runs_doctor_once_and_the_gateway_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("runtime");
    // A key this OpenClaw refuses: the gateway exits with code 78.
    std::fs::create_dir_all(state_dir.join("openclaw")).unwrap();
    std::fs::write(
        state_dir.join("openclaw/openclaw.json"),
        r#"{"gateway":{"bogusKey":true}}"#,
    )
    .unwrap();
    let agent = spawn_agent(Options {
        state_dir: Some(state_dir.clone()),
        ..Default::default()
    })
    .await;
    let status = agent.wait_running().await;
    let gateway = &status["data"]["gateway"];
    assert!(gateway["crashes"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(gateway["lastExit"]["code"], 78, "{status}");
    let (_, logs) = agent.call(Method::GET, "/v1/logs?lines=2000").await;
    let lines = logs["data"]["lines"].as_array().unwrap();
    let doctor_runs = lines
        .iter()
        .filter(|l| {
            l.as_str()
                .unwrap_or_default()
                .contains("running openclaw doctor")
        })
        .count();
    assert_eq!(doctor_runs, 1, "doctor runs once");
    let config = std::fs::read_to_string(state_dir.join("openclaw/openclaw.json")).unwrap();
    assert!(!config.contains("bogusKey"), "doctor removed the bad key");
    agent.stop().await;
}
