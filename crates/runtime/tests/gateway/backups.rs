//! Backups through the agent: back up, wipe the state, start again and find
//! it restored (a marker file and a paired device); an unchanged state
//! backs up with zero new bytes; `lastBackup` survives a restart.

use reqwest::Method;

use crate::helpers::{spawn_agent, Options};
use clawplane_testkit::device::{Outcome, TestDevice};

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

    // Restore on request: an earlier backup comes back, the gateway runs again.
    std::fs::write(state_dir.join("openclaw/marker.txt"), "changed later").unwrap();
    let (status, body) = agent
        .call_json(
            Method::POST,
            "/v1/storage/restore",
            serde_json::json!({ "backupId": latest }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["restored"]["backupId"], latest.as_str());
    assert_eq!(body["data"]["gateway"]["state"], "running");
    assert_eq!(
        std::fs::read_to_string(state_dir.join("openclaw/marker.txt")).unwrap(),
        "still here"
    );
    let (_, list) = agent.call(Method::GET, "/v1/storage/backups").await;
    assert_eq!(
        list["data"]["backups"][0]["trigger"], "before-restore",
        "a protective backup first"
    );
    let (status, _) = agent
        .call_json(
            Method::POST,
            "/v1/storage/restore",
            serde_json::json!({ "backupId": "20990101T000000.000Z-00000000" }),
        )
        .await;
    assert!(
        (400..500).contains(&status),
        "an unknown backup is a client error, got {status}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_run_only_when_something_changed() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("runtime");
    let agent = crate::helpers::spawn_agent_with(
        Options {
            state_dir: Some(state_dir.clone()),
            autostart: false,
            ..Default::default()
        },
        |c| c.backup_interval = std::time::Duration::from_millis(300),
    )
    .await;
    std::fs::create_dir_all(state_dir.join("openclaw")).unwrap();
    std::fs::write(state_dir.join("openclaw/notes.md"), "one").unwrap();
    let count = || async {
        let (_, list) = agent.call(Method::GET, "/v1/storage/backups").await;
        list["data"]["backups"].as_array().unwrap().len()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count().await == 0 {
        assert!(std::time::Instant::now() < deadline, "no scheduled backup");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, list) = agent.call(Method::GET, "/v1/storage/backups").await;
    assert_eq!(list["data"]["backups"][0]["trigger"], "scheduled");
    // Unchanged: several intervals pass without a new backup.
    let before = count().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(count().await, before, "nothing changed, nothing backed up");
    std::fs::write(state_dir.join("openclaw/notes.md"), "two, longer").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count().await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "a change was not backed up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    agent.stop().await;
}
