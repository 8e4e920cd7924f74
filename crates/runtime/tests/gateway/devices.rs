//! Devices end to end: a test device arrives as a remote client, the real
//! gateway records a real pending request, `/v1/devices` lists it, approve
//! pairs it, reject removes another.

use reqwest::Method;

use crate::helpers::{spawn_agent, Options};
use clawplane_testkit::device::{Outcome, TestDevice};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_device_is_listed_approved_and_connects_and_another_is_rejected() {
    let agent = spawn_agent(Options::default()).await;
    agent.wait_running().await;

    let phone = TestDevice::new("Test phone");
    let first = phone
        .connect(
            &agent.ws_url(),
            &agent.gateway_token,
            false,
            Some("203.0.113.7"),
            None,
        )
        .await;
    let Outcome::NotPaired { request_id } = first else {
        panic!("expected a pairing request, got {first:?}")
    };

    let (status, body) = agent.call(Method::GET, "/v1/devices").await;
    assert_eq!(status, 200, "{body}");
    let pending = body["data"]["pending"].as_array().unwrap();
    let entry = pending
        .iter()
        .find(|p| p["requestId"] == request_id.as_str())
        .expect("listed as pending");
    assert_eq!(entry["remoteIp"], "203.0.113.7");
    assert_eq!(entry["deviceId"], phone.device_id.as_str());
    assert_eq!(entry["displayName"], "Test phone");

    let (status, body) = agent
        .call(Method::POST, &format!("/v1/devices/{request_id}/approve"))
        .await;
    assert_eq!(status, 200, "{body}");
    let second = phone
        .connect(
            &agent.ws_url(),
            &agent.gateway_token,
            false,
            Some("203.0.113.7"),
            None,
        )
        .await;
    let Outcome::HelloOk {
        device_token: Some(device_token),
    } = second
    else {
        panic!("expected hello-ok with a device token, got {second:?}")
    };
    // The paired device now connects with its own token alone.
    let third = phone
        .connect(
            &agent.ws_url(),
            &device_token,
            true,
            Some("203.0.113.7"),
            None,
        )
        .await;
    assert!(matches!(third, Outcome::HelloOk { .. }), "{third:?}");
    let (_, body) = agent.call(Method::GET, "/v1/devices").await;
    assert!(body["data"]["paired"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["deviceId"] == phone.device_id.as_str()));

    // A second device is rejected and disappears from the pending list.
    let laptop = TestDevice::new("Test laptop");
    let Outcome::NotPaired { request_id: other } = laptop
        .connect(
            &agent.ws_url(),
            &agent.gateway_token,
            false,
            Some("203.0.113.8"),
            None,
        )
        .await
    else {
        panic!("expected a pairing request")
    };
    let (status, _) = agent
        .call(Method::POST, &format!("/v1/devices/{other}/reject"))
        .await;
    assert_eq!(status, 200);
    let (_, body) = agent.call(Method::GET, "/v1/devices").await;
    assert!(!body["data"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["requestId"] == other.as_str()));
    assert!(!body["data"]["paired"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["deviceId"] == laptop.device_id.as_str()));

    // Unknown (or already handled) requests are 404; malformed ids 400.
    for id in [other.clone(), uuid::Uuid::new_v4().to_string()] {
        let (status, body) = agent
            .call(Method::POST, &format!("/v1/devices/{id}/approve"))
            .await;
        assert_eq!(status, 404, "{body}");
    }
    for hostile in [
        "not-a-uuid",
        "..%2F..%2Fetc",
        "%00",
        &"a".repeat(300),
        "1'%20OR%20'1'='1",
    ] {
        let (status, body) = agent
            .call(Method::POST, &format!("/v1/devices/{hostile}/approve"))
            .await;
        assert_eq!(status, 400, "{hostile}: {body}");
    }
    agent.stop().await;
}
