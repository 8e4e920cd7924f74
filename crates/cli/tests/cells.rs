//! Isolated cells, attacked as a hostile tenant would: `clawplane serve` with
//! two users' instances, and tenant A's agent running shell commands through
//! its real gateway (the fake model on loopback calls OpenClaw's `exec`
//! tool, `clawplane_testkit::fake_openai`'s tool runner, and answers with
//! the command's output). A's commands run as a uid of their own and see
//! nothing of the host or of tenant B: not the encryption key, serve's
//! environment, logs or database, B's files, tokens or processes; they can
//! write neither to the control plane's files nor to B's nor to the shared
//! OpenClaw install; they cannot connect to PostgreSQL, serve, B's runtime
//! or B's gateway; they do reach the endpoints the operator allows
//! (`CLAWPLANE_CELL_ALLOW`: the fake model and a marker server). Everything
//! stays on 127.0.0.1, and the cells get no egress.
//!
//! The test runs every probe and then fails once, listing everything that
//! leaked, so one run shows every hole.

#[path = "cells/agent.rs"]
mod agent;
#[path = "cells/attack.rs"]
mod attack;
mod common;
#[path = "chat/console.rs"]
mod console;
#[path = "cells/host.rs"]
mod host;
#[path = "cells/probes.rs"]
mod probes;
#[path = "cells/scene.rs"]
mod scene;

use agent::Agent;
use probes::Findings;
use scene::{Facts, Scene, Tenants};

#[tokio::test]
async fn a_tenants_agent_reaches_nothing_outside_its_own_cell() {
    let scene = Scene::start().await;
    let tenants = Tenants::provision(&scene).await;
    let facts = Facts::gather(&scene, &tenants).await;
    let mut agent = Agent::new(tenants.a, &scene.fake).await;

    // The mechanics: a command runs, and its output comes back.
    let marker = format!("cell-probe-{}", uuid::Uuid::new_v4().simple());
    let (relayed, output) = agent.turn(&format!("echo {marker}")).await;
    assert_eq!(output.trim(), marker, "the command ran");
    assert_eq!(relayed.trim(), marker, "its output came back in the chat");

    let targets = attack::targets(&scene, &facts);
    let mut findings = Findings::default();
    for probe in attack::probes(&scene, &facts, &targets) {
        let output = agent.run(&probe.command).await;
        findings.probe(&probe, &facts.secrets, &output);
    }
    drop(targets);
    assert!(findings.is_empty(), "{}", findings.report());

    scene
        .delete_instances(&[&tenants.a_user, &tenants.b_user])
        .await;
}
