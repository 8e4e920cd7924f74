//! The gateway's cell seen from the agent: `/v1/status` says how it is
//! isolated and limited, the gateway runs as the cell's uid, its state is
//! the cell's, and a state past its disk quota keeps the gateway from
//! starting, with the reason in the status.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::{spawn_agent_with, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_shows_the_cell_and_the_gateway_runs_as_its_uid() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("runtime");
    let agent = spawn_agent_with(
        Options {
            state_dir: Some(state_dir.clone()),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let (status, body) = agent.call(Method::POST, "/v1/gateway/start").await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = agent.call(Method::GET, "/v1/status").await;
    let cell = &body["data"]["cell"];
    assert_eq!(cell["isolation"], "cell", "{body}");
    let uid = cell["uid"].as_u64().expect("the cell's uid") as u32;
    assert!(uid >= 100_000, "{cell}");
    assert_eq!(cell["limits"]["memoryBytes"], 2u64 << 30, "{cell}");
    assert_eq!(cell["limits"]["pids"], 512, "{cell}");
    assert!(cell["memoryBytes"].as_u64() > Some(0), "measured: {cell}");
    assert!(cell["processes"].as_u64() > Some(0), "measured: {cell}");
    // Every process of the gateway (inside the sandbox) runs as that uid.
    let pid = body["data"]["gateway"]["pid"].as_u64().unwrap() as u32;
    let inside: Vec<u32> = clawplane_runtime::gateway::process::descendants(pid)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() != "bwrap")
        })
        .collect();
    assert!(!inside.is_empty());
    for p in inside {
        let meta = std::fs::metadata(format!("/proc/{p}")).unwrap();
        assert_eq!(meta.uid(), uid, "process {p} runs as the cell's uid");
    }
    // Its state is the cell's; the runtime's own files are not.
    let state = std::fs::metadata(state_dir.join("openclaw/openclaw.json")).unwrap();
    assert_eq!(state.uid(), uid);
    let logs = std::fs::metadata(state_dir.join("logs")).unwrap();
    assert_eq!(logs.uid(), 0, "the agent's logs stay the agent's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_past_its_disk_quota_keeps_the_gateway_stopped_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("runtime");
    // 80 MiB of state against a 64 MiB quota, before the agent starts.
    std::fs::create_dir_all(state_dir.join("openclaw/workspace")).unwrap();
    std::fs::write(
        state_dir.join("openclaw/workspace/big.bin"),
        vec![7u8; 80 << 20],
    )
    .unwrap();
    let agent = spawn_agent_with(
        Options {
            state_dir: Some(state_dir.clone()),
            ..Default::default()
        },
        |config| {
            if let Some(cell) = config.cell.as_mut() {
                cell.disk_quota_bytes = 64 << 20;
            }
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let body = loop {
        let (_, body) = agent.call(Method::GET, "/v1/status").await;
        let state = &body["data"]["gateway"]["state"];
        if body["data"]["cell"]["stoppedReason"].is_string()
            && (state == "stopped" || state == "crashed")
        {
            break body;
        }
        assert!(Instant::now() < deadline, "not stopped: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reason = body["data"]["cell"]["stoppedReason"].as_str().unwrap();
    assert!(
        reason.contains("over its quota of 64 MiB"),
        "the reason says why: {reason}"
    );
    assert!(body["data"]["cell"]["diskBytes"].as_u64() > Some(64 << 20));
    assert!(
        body["data"]["gateway"]["readyAt"].is_null(),
        "the gateway never became ready: {body}"
    );
}
