//! Auth and bad input on every route (no gateway needed: it stays stopped).

use reqwest::Method;

use crate::helpers::{send, spawn_agent, Options, SERVICE_TOKEN};

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/status"),
    ("POST", "/v1/gateway/restart"),
    ("POST", "/v1/gateway/stop"),
    ("POST", "/v1/gateway/start"),
    ("POST", "/v1/storage/backup"),
    ("GET", "/v1/storage/backups"),
    ("POST", "/v1/storage/restore"),
    ("GET", "/v1/devices"),
    (
        "POST",
        "/v1/devices/0f8fad5b-d9cb-469f-a165-70867728950e/approve",
    ),
    (
        "POST",
        "/v1/devices/0f8fad5b-d9cb-469f-a165-70867728950e/reject",
    ),
    ("GET", "/v1/logs?lines=5"),
    ("GET", "/v1/usage"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_requires_the_service_token_and_answers_bad_input_with_4xx() {
    let agent = spawn_agent(Options {
        autostart: false,
        ..Default::default()
    })
    .await;
    for (m, path) in ROUTES {
        let method: Method = m.parse().unwrap();
        let url = format!("{}{path}", agent.url);
        let (status, _) = send(agent.client.request(method.clone(), &url)).await;
        assert_eq!(status, 401, "{m} {path} without a token");
        for wrong in [
            "",
            "wrong",
            &SERVICE_TOKEN[1..],
            &format!("{SERVICE_TOKEN}x"),
        ] {
            let (status, _) = send(
                agent
                    .client
                    .request(method.clone(), &url)
                    .header("x-openagents-service-token", wrong),
            )
            .await;
            assert_eq!(status, 401, "{m} {path} with a wrong token");
            let (status, _) = send(
                agent
                    .client
                    .request(method.clone(), &url)
                    .bearer_auth(wrong),
            )
            .await;
            assert_eq!(status, 401, "{m} {path} with a wrong bearer");
        }
    }
    // Both ways of presenting the token work.
    let (status, _) = send(
        agent
            .client
            .get(format!("{}/v1/status", agent.url))
            .bearer_auth(SERVICE_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = agent.call(Method::GET, "/v1/status").await;
    assert_eq!(status, 200);

    // The gateway is stopped: its calls say so.
    for path in ["/v1/devices", "/v1/usage"] {
        let (status, body) = agent.call(Method::GET, path).await;
        assert_eq!(status, 409, "{path}: {body}");
        assert_eq!(body["error"]["code"], "gateway_not_running");
    }

    // Bad input.
    let restore = || agent.v1(Method::POST, "/v1/storage/restore");
    let (status, _) = send(
        restore()
            .header("content-type", "application/json")
            .body("{nope"),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) =
        send(restore().json(&serde_json::json!({"backupId": "../../etc/passwd"}))).await;
    assert_eq!(status, 400);
    let (status, _) = send(restore().json(&serde_json::json!({"backupId": 7}))).await;
    assert_eq!(status, 400);
    let (status, _) = send(restore().body(vec![b'{'; 70 * 1024])).await;
    assert_eq!(status, 413);
    for (query, expected) in [
        ("lines=0", 400),
        ("lines=abc", 400),
        ("lines=5000", 400),
        ("lines=3", 200),
    ] {
        let (status, _) = agent.call(Method::GET, &format!("/v1/logs?{query}")).await;
        assert_eq!(status, expected, "{query}");
    }
    for path in ["/v1/nope", "/nope", "/v1/devices/x/y/z"] {
        let (status, _) = agent.call(Method::GET, path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = agent.call(Method::DELETE, "/v1/status").await;
    assert_eq!(status, 405);
    let (status, body) = send(agent.client.get(format!("{}/healthz", agent.url))).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("live"))
    );
    agent.stop().await;
}
