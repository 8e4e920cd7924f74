//! `clawplane runtime` as a process: clear failures at start, and no process
//! of the gateway surviving the agent's exit.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::clawplane;

fn runtime_cmd(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = clawplane();
    cmd.args(["runtime", "--listen", "127.0.0.1:0"])
        .env("CLAWPLANE_STATE_DIR", dir.join("state"))
        .env(
            "OPENAGENTS_SERVICE_TOKEN",
            "service-token-for-cli-tests-0123456789",
        )
        .env(
            "OPENCLAW_GATEWAY_TOKEN",
            "gateway-token-for-cli-tests-0123456789",
        );
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fails_with(cmd: &mut std::process::Command, expected: &str) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure mentioning {expected:?}"
    );
    assert!(err.contains(expected), "{expected:?} not in: {err}");
    assert!(
        err.lines().filter(|l| l.starts_with("error:")).count() == 1,
        "one readable line: {err}"
    );
}

#[test]
fn missing_tokens_are_one_readable_line() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        runtime_cmd(dir.path()).env_remove("OPENAGENTS_SERVICE_TOKEN"),
        "OPENAGENTS_SERVICE_TOKEN is not set",
    );
    fails_with(
        runtime_cmd(dir.path()).env_remove("OPENCLAW_GATEWAY_TOKEN"),
        "OPENCLAW_GATEWAY_TOKEN is not set",
    );
}

#[test]
fn openclaw_not_installed_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        runtime_cmd(dir.path())
            .env("CLAWPLANE_CACHE_DIR", dir.path().join("empty-cache"))
            .args(["--gateway-port", &free_port().to_string()]),
        "run `clawplane openclaw install",
    );
}

#[test]
fn an_unreachable_backup_store_is_fatal_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    fails_with(
        runtime_cmd(dir.path())
            .args(["--gateway-port", &free_port().to_string()])
            .env("CLAWPLANE_BACKUP_URL", "s3://bucket/prefix")
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .env("CLAWPLANE_S3_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret-value"),
        "unreachable",
    );
}

#[test]
fn a_gateway_port_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        runtime_cmd(dir.path()).args([
            "--gateway-port",
            &taken.local_addr().unwrap().port().to_string(),
        ]),
        "is in use",
    );
}

#[test]
fn no_process_of_the_gateway_survives_the_agents_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = runtime_cmd(dir.path())
        .args(["--gateway-port", &free_port().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("clawplane runtime listening on ")
        .expect("address line")
        .to_owned();
    // Wait (bounded) for the gateway to run, reading its pid from /v1/status.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let pid = loop {
        let status: serde_json::Value = client
            .get(format!("{url}/v1/status"))
            .bearer_auth("service-token-for-cli-tests-0123456789")
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default();
        if status["data"]["gateway"]["state"] == "running" {
            break status["data"]["gateway"]["pid"].as_u64().unwrap() as i32;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not start: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let tree = clawplane_runtime::gateway::process::descendants(pid as u32);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exited = child.wait().unwrap();
    assert!(exited.success(), "the agent exits cleanly on SIGTERM");
    assert!(
        !clawplane_runtime::gateway::process::is_alive(pid as u32),
        "the gateway is gone"
    );
    assert!(
        tree.iter()
            .all(|p| !clawplane_runtime::gateway::process::is_alive(*p)),
        "its workers are gone"
    );
    let backups =
        std::fs::read_dir(dir.path().join("state/backups")).map(|mut d| d.next().is_some());
    assert_eq!(
        backups.ok(),
        Some(true),
        "a protective backup was taken before the gateway stopped"
    );
}
