//! Devices: a real device pairs through the Security page and then
//! connects; the Control UI opens through the front door signed in by the
//! console, and refuses a browser without the door cookie.

use std::time::{Duration, Instant};

use clawplane_testkit::device::{Outcome, TestDevice};
use serde_json::json;

use crate::api::Api;
use crate::session::Browser;
use crate::DEVICE_NAME;

/// Security: a device's pairing request appears by itself and is approved
/// with its Approve button; the device then connects. The gateway token.
pub(crate) async fn pair_a_device(
    b: &Browser,
    api: &Api,
    user: &str,
    port: &str,
    gateway_url: &str,
    live_problems: &mut Vec<String>,
) -> String {
    let minute = Duration::from_secs(60);

    // Security: a real device asks to pair while the page is open; its row
    // appears by itself; Approve; the device connects.
    b.click(r#"nav a[href="/console/security"]"#).await;
    b.wait_for_path("/console/security", minute).await;
    b.wait_for_text("main", "No device is waiting for approval", minute)
        .await;
    let live_on_security = b.live().await;
    b.mark_document().await;
    let gateway_token = api
        .control(&format!(
            "/control/openclaw/instance/secret?user_id={user}&name=gateway_token"
        ))
        .await["value"]
        .as_str()
        .expect("the gateway token")
        .to_owned();
    // The device comes through the front door at <runtime_name>.localhost,
    // its address forwarded by a trusted proxy (simulated on loopback).
    let ws = format!("ws://127.0.0.1:{port}");
    let door_host = gateway_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let phone = TestDevice::new(DEVICE_NAME);
    let first = phone
        .connect(
            &ws,
            &gateway_token,
            false,
            Some("203.0.113.9"),
            Some(&door_host),
        )
        .await;
    let Outcome::NotPaired { request_id } = first else {
        panic!("expected a pairing request, got {first:?}")
    };
    let approve_form = format!(r#"form[action="/console/security/{request_id}/approve"]"#);
    let approve_label = format!("Approve {DEVICE_NAME}");
    let row = format!("{approve_form} button");
    match b
        .try_wait_for_text("main table", DEVICE_NAME, Duration::from_secs(45))
        .await
    {
        Ok(_) if b.still_marked().await => {}
        Ok(_) => live_problems.push(
            "the Security page was reloaded while waiting for the pending device \
             (window.__sameDocument was lost)"
                .to_owned(),
        ),
        Err(shown) => {
            live_problems.push(format!(
                "the pending device did not appear on the open Security page within 45 s \
                 without navigating ({shown})"
            ));
            b.goto("/console/security").await;
            b.wait_for_text("main table", DEVICE_NAME, minute).await;
        }
    }
    if !live_on_security {
        live_problems.push("console.js did not run on the Security page".to_owned());
    }
    let pending = b.texts("main table tbody tr").await;
    assert!(
        pending
            .iter()
            .any(|r| r.contains(DEVICE_NAME) && r.contains("203.0.113.9")),
        "the pending row names the device and its address: {pending:?}"
    );
    let label = b
        .eval(
            "const e = document.querySelector(arguments[0]); \
             return e ? e.getAttribute('aria-label') : null;",
            vec![json!(row)],
        )
        .await;
    assert_eq!(
        label,
        json!(approve_label),
        "the Approve button of the request"
    );
    b.screenshot("security-pending").await;
    b.press(&format!(
        r#"{approve_form} button[aria-label="{approve_label}"]"#
    ))
    .await;
    b.wait_for_text("p.notice", "The device was approved.", minute)
        .await;
    b.wait_for_text("main", "No device is waiting for approval", minute)
        .await;
    let paired = b.texts("main table tbody tr").await;
    assert!(
        paired.iter().any(|r| r.contains(DEVICE_NAME)),
        "the device is listed as paired: {paired:?}"
    );
    b.screenshot("security-approved").await;
    let second = phone
        .connect(
            &ws,
            &gateway_token,
            false,
            Some("203.0.113.9"),
            Some(&door_host),
        )
        .await;
    assert!(
        matches!(second, Outcome::HelloOk { .. }),
        "the approved device connects: {second:?}"
    );
    gateway_token
}

/// The Control UI through the front door, then the same browser without its
/// door cookie.
pub(crate) async fn control_ui(b: &Browser, api: &Api, gateway_url: &str, gateway_token: &str) {
    let minute = Duration::from_secs(60);

    // The Control UI through the front door, signed in by the console: no
    // token typed, none in the page, the URL or the browser's storage; the
    // gateway pairs the runtime's owner device for it.
    b.goto("/console/open").await;
    let deadline = Instant::now() + minute;
    loop {
        let url = b.client.current_url().await.map(|u| u.to_string());
        if url.as_deref().is_ok_and(|u| u.starts_with(gateway_url)) {
            break;
        }
        assert!(Instant::now() < deadline, "not at the gateway: {url:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let owner_device = loop {
        let (_, devices) = api
            .call(reqwest::Method::GET, "/api/openclaw/runtime/devices")
            .await;
        let found = devices["data"]["paired"].as_array().and_then(|paired| {
            paired
                .iter()
                .find(|d| d["clientId"] == "openclaw-control-ui")
                .cloned()
        });
        if let Some(d) = found {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the Control UI did not sign in within 90 s: {devices}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(owner_device["remoteIp"].is_null(), "{owner_device}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.screenshot("control-ui").await;
    let visible = b
        .eval(
            "return [location.href, document.documentElement.outerHTML, \
             JSON.stringify(localStorage), JSON.stringify(sessionStorage), document.cookie].join('\\n');",
            vec![],
        )
        .await;
    let visible = visible.as_str().unwrap_or_default();
    assert!(visible.contains("openclaw"), "the Control UI loaded");
    assert!(
        !visible.contains(gateway_token),
        "the gateway token is visible to the browser"
    );
    // The same browser without its door cookie is an anonymous visitor.
    b.client.delete_all_cookies().await.unwrap();
    b.client.goto(gateway_url).await.unwrap();
    b.wait_for_text("main", "Sign in to the console", minute)
        .await;
    b.screenshot("control-ui-anonymous").await;
    b.goto("/console").await;
    b.wait_for_text("#instance-status", "Ready", minute).await;
}
