//! A cell's limits hold against its own tenant: tenant A's agent runs a
//! memory hog (3 GiB against the cell's 2 GiB) and a fork bomb (thousands of
//! processes against its 512) through its real gateway, while a watcher asks
//! tenant B's runtime and `serve` for their status every half second. The
//! hog is stopped by the cell's memory limit (the cgroup's peak stays at the
//! limit), the bomb stops short of the process limit, B and `serve` answer
//! throughout, and A's gateway runs again afterwards (the agent restarts it
//! if the kernel chose it). Everything stays on 127.0.0.1.

// The scene modules are shared with the attack suite; not all of them is used here.
#![allow(dead_code)]

#[path = "cells/agent.rs"]
mod agent;
mod common;
#[path = "chat/console.rs"]
mod console;
#[path = "cells/host.rs"]
mod host;
#[path = "cells/probes.rs"]
mod probes;
#[path = "cells/scene.rs"]
mod scene;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawplane_testkit::fake_openai::RUN_PREFIX;
use scene::{wait_running, Scene, Tenants};

/// 3 GiB in one allocation, touched page by page.
const HOG: &str =
    "python3 -c 'b = b\"x\" * (3 << 30); print(\"allocated\", len(b))'; echo \"hog exit $?\"";

/// Forks until the cell refuses (or 3000 times); the children close their
/// output and sleep, so the command's output ends when the parent does.
const BOMB: &str = r#"python3 -c 'exec("import os, time\nn = 0\nerr = None\ntry:\n  while n < 3000:\n    if os.fork() == 0:\n      os.close(1); os.close(2); time.sleep(15); os._exit(0)\n    n += 1\nexcept OSError as e:\n  err = e.errno\nprint(\"forks\", n, \"refused\", err)")'"#;

#[tokio::test]
async fn a_memory_hog_and_a_fork_bomb_stay_inside_their_cell() {
    let scene = Scene::start().await;
    let tenants = Tenants::provision(&scene).await;
    let a_api = scene.api(&tenants.a_user);
    let b_api = scene.api(&tenants.b_user);
    wait_running(&b_api).await;
    let a_status = wait_running(&a_api).await;
    let limit = a_status["cell"]["limits"]["memoryBytes"]
        .as_u64()
        .expect("A's cell has a memory limit");
    let pids = a_status["cell"]["limits"]["pids"].as_u64().expect("pids");

    // The watcher: B's runtime and serve, every half second, bounded.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let client = scene.client.clone();
        let base = scene.server.address.clone();
        let b_user = tenants.b_user.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut asked = 0u32;
            while !stop.load(Ordering::Relaxed) && asked < 2000 {
                asked += 1;
                let b = client
                    .get(format!("{base}/api/openclaw/runtime/status"))
                    .header("x-oa-internal-key", scene::INTERNAL_KEY)
                    .header("x-oa-user-id", &b_user)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match b {
                    Ok(r) if r.status().is_success() => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        if body["data"]["gateway"]["state"] != "running" {
                            failures.push(format!("B's gateway: {body}"));
                        }
                    }
                    other => failures.push(format!("B's status: {other:?}")),
                }
                let health = client
                    .get(format!("{base}/healthz"))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                if !matches!(&health, Ok(r) if r.status().is_success()) {
                    failures.push(format!("serve's /healthz: {health:?}"));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (asked, failures)
        })
    };

    let mut a = agent::Agent::new(tenants.a, &scene.fake).await;
    // The hog: either the kernel kills it inside the cell (the command
    // says so) or, if it chose the gateway, the turn fails and the agent
    // brings the gateway back.
    let hog = try_turn(&mut a, HOG).await;
    eprintln!("the hog: {hog:?}");
    if hog.is_none() {
        let status = wait_running(&a_api).await;
        assert!(
            status["gateway"]["crashes"].as_u64() > Some(0),
            "no output from the hog, yet A's gateway did not crash: {status}"
        );
    }
    if let Some(output) = &hog {
        assert!(
            !output.contains("allocated"),
            "3 GiB were allocated in a 2 GiB cell: {output}"
        );
        assert!(
            output.contains("hog exit 137")
                || output.contains("MemoryError")
                || output.contains("Killed"),
            "the hog was stopped: {output}"
        );
    }
    let peak = cgroup_peak(&tenants.a_id).expect("A's cell's memory cgroup");
    assert!(
        peak <= limit,
        "the cell's memory peaked at {peak} bytes, over its limit of {limit}"
    );
    wait_running(&a_api).await;

    let mut a = agent::Agent::new(a.visitor, &scene.fake).await;
    let bomb = try_turn(&mut a, BOMB).await;
    eprintln!("the bomb: {bomb:?}");
    // A fork bomb must not take the gateway down: its own processes are
    // what the limit refuses.
    let output = bomb.expect("the bomb's command came back");
    {
        let forks: u64 = output
            .split_whitespace()
            .skip_while(|w| *w != "forks")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the bomb said how far it got: {output}"));
        let output = &output;
        assert!(
            forks < pids,
            "{forks} processes were forked in a cell of {pids}: {output}"
        );
        assert!(
            output.contains("refused 11"),
            "fork was refused (EAGAIN): {output}"
        );
    }
    let after = wait_running(&a_api).await;
    assert!(
        after["cell"]["processes"].as_u64().unwrap_or(0) <= pids,
        "{after}"
    );

    stop.store(true, Ordering::Relaxed);
    let (asked, failures) = watcher.await.unwrap();
    assert!(asked > 4, "the watcher asked throughout ({asked} times)");
    assert!(
        failures.is_empty(),
        "B or serve stopped answering while A's cell was under pressure: {failures:#?}"
    );
    scene
        .delete_instances(&[&tenants.a_user, &tenants.b_user])
        .await;
}

/// The command's output as the model got it, or `None` when the turn did
/// not come back (the gateway itself was killed).
async fn try_turn(a: &mut agent::Agent<'_>, command: &str) -> Option<String> {
    let (status, page) = a.visitor.get("/console/chat").await;
    assert_eq!(status, 200, "{page}");
    let token = console::csrf(&page);
    let message = format!("{RUN_PREFIX}{command}");
    let started = Instant::now();
    let r = a
        .visitor
        .post(
            "/console/chat",
            &[("csrf", &token), ("message", &message)],
            Some("text/event-stream"),
        )
        .await;
    let _ = r.text().await;
    eprintln!(
        "`{}` took {:?}",
        &command[..20.min(command.len())],
        started.elapsed()
    );
    a.model.tool_result(command)
}

/// The peak memory of instance `id`'s cell (cgroup v1's
/// `memory.max_usage_in_bytes`, or v2's `memory.peak`), beneath this test's
/// own cgroup, where serve and its runtimes run.
fn cgroup_peak(id: &str) -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let leaf = format!("clawplane-cell-{id}");
    let v1 = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
        names
            .split(',')
            .any(|n| n == "memory")
            .then(|| path.to_owned())
    });
    let candidates = match v1 {
        Some(path) => vec![std::path::Path::new("/sys/fs/cgroup/memory")
            .join(path.trim_start_matches('/'))
            .join(&leaf)
            .join("memory.max_usage_in_bytes")],
        None => {
            let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
            vec![std::path::Path::new("/sys/fs/cgroup")
                .join(path.trim_start_matches('/'))
                .join(&leaf)
                .join("memory.peak")]
        }
    };
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.trim().parse().ok())
}
