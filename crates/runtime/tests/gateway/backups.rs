//! Backups through the agent: back up, wipe the state, start again and find
//! it restored (a marker file and a paired device); an unchanged state
//! backs up with zero new bytes; `lastBackup` survives a restart.

use reqwest::Method;

use crate::device::{Outcome, TestDevice};
use crate::helpers::{spawn_agent, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_state_is_restored_from_the_latest_backup() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("runtime");
    let backup_url = format!("file://{}", dir.path().join("backups").display());
    let options = || Options {
        state_dir: Some(state_dir.clone()),
        backup_url: Some(backup_url.clone()),
        autostart: true,
    };

    let agent = spawn_agent(options()).await;
    agent.wait_running().await;
    std::fs::write(state_dir.join("openclaw/marker.txt"), "still here").unwrap();
    let phone = TestDevice::new("Backed-up phone");
    let Outcome::NotPaired { request_id } = phone
        .connect(
            &agent.ws_url(),
            &agent.gateway_token,
            false,
            Some("203.0.113.9"),
            None,
        )
        .await
    else {
        panic!("expected a pairing request")
    };
    let (status, _) = agent
        .call(Method::POST, &format!("/v1/devices/{request_id}/approve"))
        .await;
    assert_eq!(status, 200);

    let (status, body) = agent.call(Method::POST, "/v1/storage/backup").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["bytesUploaded"].as_u64().unwrap() > 0);
    assert_eq!(
        body["data"]["lastBackup"]["id"],
        body["data"]["backup"]["id"]
    );

    // With the gateway stopped nothing changes: the next backup uploads nothing.
    let (status, _) = agent.call(Method::POST, "/v1/gateway/stop").await;
    assert_eq!(status, 200);
    let (_, first) = agent.call(Method::POST, "/v1/storage/backup").await;
    let (_, again) = agent.call(Method::POST, "/v1/storage/backup").await;
    assert_eq!(
        again["data"]["bytesUploaded"], 0,
        "unchanged state: {again}"
    );
    let latest = again["data"]["backup"]["id"].as_str().unwrap().to_owned();
    assert_ne!(first["data"]["backup"]["id"], again["data"]["backup"]["id"]);
    let (_, list) = agent.call(Method::GET, "/v1/storage/backups").await;
    assert_eq!(
        list["data"]["backups"][0]["id"],
        latest.as_str(),
        "newest first"
    );
    agent.stop().await;

    // Wipe the gateway's state and start again.
    std::fs::remove_dir_all(state_dir.join("openclaw")).unwrap();
    let agent = spawn_agent(options()).await;
    let (_, status) = agent.call(Method::GET, "/v1/status").await;
    assert_eq!(
        status["data"]["lastBackup"]["id"],
        latest.as_str(),
        "lastBackup survives a restart"
    );
    assert_eq!(
        std::fs::read_to_string(state_dir.join("openclaw/marker.txt")).unwrap(),
        "still here"
    );
    agent.wait_running().await;
    let (_, devices) = agent.call(Method::GET, "/v1/devices").await;
    assert!(
        devices["data"]["paired"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["deviceId"] == phone.device_id.as_str()),
        "the paired device survives: {devices}"
    );
    let back = phone
        .connect(
            &agent.ws_url(),
            &agent.gateway_token,
            false,
            Some("203.0.113.9"),
            None,
        )
        .await;
    assert!(matches!(back, Outcome::HelloOk { .. }), "{back:?}");
    agent.stop().await;
}
