//! Isolated cells, attacked through the second door: the Control UI's
//! terminal. The same `clawplane serve`, tenants and probes as the attack
//! suite (`cells.rs`), but tenant A's commands are typed into a terminal of
//! its own gateway, opened over the gateway's protocol as A's browser opens
//! it: the console's "Open OpenClaw" pass exchanged for the door cookie, a
//! WebSocket through serve's front door, `connect` as the Control UI (the
//! runtime signs it in as the owner), `terminal.open`, and each command's
//! output read from `terminal.data` events. The terminal's shell runs in
//! A's cell too, so it must see and reach exactly what A's agent does:
//! nothing of the host or of tenant B, only the endpoints the operator
//! allows. Everything stays on 127.0.0.1, and the cells get no egress.
//!
//! The test runs every probe and then fails once, listing everything that
//! leaked, so one run shows every hole.

// The scene modules are shared with the attack suite; not all of them is used here.
#![allow(dead_code)]

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
#[path = "cells/terminal.rs"]
mod terminal;

use std::time::Duration;

use probes::Findings;
use scene::{Facts, Scene, Tenants};
use terminal::{Door, Terminal};

/// The whole test's bound (nextest ends it at 600 s).
const WHOLE: Duration = Duration::from_secs(570);

#[tokio::test]
async fn the_control_ui_terminal_reaches_nothing_outside_its_own_cell() {
    tokio::time::timeout(WHOLE, attack_through_the_terminal())
        .await
        .unwrap_or_else(|_| panic!("the test did not end within {} s", WHOLE.as_secs()));
}

async fn attack_through_the_terminal() {
    let scene = Scene::start().await;
    let mut tenants = Tenants::provision(&scene).await;
    let facts = Facts::gather(&scene, &tenants).await;
    let door = Door::enter(&mut tenants.a).await;
    let build = door.control_ui_build().await;
    let mut terminal = Terminal::open(&door, &build).await;
    eprintln!("the terminal: {}", terminal.opened);

    // The mechanics: what is typed runs, and its output comes back (the
    // echo shows `$((6*7))`, only the shell makes it 42).
    let shown = terminal.type_line("echo M-$((6*7))", "M-42\n").await;
    assert!(shown.contains("M-42"), "{shown}");
    let uid = terminal.run("id -u").await;
    let uid: u32 = uid
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("`id -u` in the terminal printed {uid:?}"));
    assert_ne!(
        uid,
        host::own_uid(),
        "the terminal's shell runs as serve's uid"
    );

    let targets = attack::targets(&scene, &facts);
    let mut findings = Findings::default();
    for probe in attack::probes(&scene, &facts, &targets) {
        let output = terminal.run(&probe.command).await;
        findings.probe(&probe, &facts.secrets, &output);
    }
    drop(targets);
    terminal.close().await;
    assert!(findings.is_empty(), "{}", findings.report());

    scene
        .delete_instances(&[&tenants.a_user, &tenants.b_user])
        .await;
}
