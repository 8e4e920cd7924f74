//! The attack, probe by probe: who A's commands run as; the host's and B's
//! secrets in environments, files and logs; B's and the host's processes;
//! writing where A has no business; connecting to what runs on the host's
//! loopback; and, the other way round, reaching what the operator allows.

use crate::host::{own_uid, Removed};
use crate::probes::{connect, connect_unix, touch, Check, Probe};
use crate::scene::{Facts, Scene};

/// The files A tries to make: in serve's data directory, in B's state and
/// in the OpenClaw install every gateway runs (removed when dropped).
pub fn targets(scene: &Scene, facts: &Facts) -> Removed {
    let openclaw = clawplane_runtime::install::find(
        &clawplane_runtime::install::default_cache_dir(),
        clawplane_runtime::install::DEFAULT_OPENCLAW_VERSION,
    )
    .expect("OpenClaw is installed");
    let unique = format!("written-by-tenant-a-{}", uuid::Uuid::new_v4().simple());
    Removed(vec![
        scene.data_dir.join(&unique),
        facts.b_dir.join("openclaw").join(&unique),
        openclaw.openclaw.with_file_name(&unique),
    ])
}

/// Every probe, in the order it runs.
pub fn probes(scene: &Scene, facts: &Facts, targets: &Removed) -> Vec<Probe> {
    let data = scene.data_dir.display();
    let b_dir = facts.b_dir.display();
    let db = clawplane_store::connect::SQLITE_FILE_NAME;
    let serve_pid = facts.serve_pid;
    let serve_log = scene.server.stderr_path.clone();
    let closed = |what: &str| Check::Closed { what: what.into() };
    let unwritten = |what: &str, at: usize| {
        Probe::new(touch(&targets.0[at])).check(Check::Unwritten {
            what: what.into(),
            path: targets.0[at].clone(),
        })
    };
    vec![
        Probe::new("id -u").check(Check::NotUid {
            what: "A's commands run as serve's uid".into(),
            uid: own_uid(),
        }),
        // Secrets in environments.
        Probe::new("env"),
        Probe::new(
            "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' \
             | grep -aE '^(OA_|OPENCLAW_|OPENAGENTS_|CLAWPLANE_|DATABASE_URL)' | sort -u",
        ),
        Probe::new(format!(
            "tr '\\0' '\\n' < /proc/{serve_pid}/environ 2>&1 | head -c 20000"
        )),
        // The control plane's files.
        Probe::new(format!("ls -la {data} 2>&1")).absent("the control plane's data directory", db),
        Probe::new(format!("cat {data}/encryption.key 2>&1")),
        Probe::new(format!(
            "cat {data}/{db}* 2>&1 | grep -aoE 'SQLite format [0-9]|tenant-b-[0-9a-f]+' | sort -u"
        ))
        .absent("the control plane's database", "SQLite format 3"),
        // B's files.
        Probe::new(format!("ls {data}/instances 2>&1")),
        Probe::new(format!(
            "cat {b_dir}/openclaw/openclaw.json 2>&1 | head -c 20000"
        ))
        .absent("B's openclaw.json", "trustedProxies")
        .absent(
            "B's openclaw.json",
            format!("\"port\": {}", facts.b_gateway_port),
        ),
        // Logs.
        Probe::new(format!("tail -c 6000 {b_dir}/logs/runtime.log 2>&1")).check(Check::NoLineOf {
            what: "B's runtime log".into(),
            path: facts.b_dir.join("logs/runtime.log"),
        }),
        Probe::new(format!("tail -c 6000 {} 2>&1", serve_log.display())).check(Check::NoLineOf {
            what: "serve's log".into(),
            path: serve_log.clone(),
        }),
        Probe::new(format!("tail -c 6000 /proc/{serve_pid}/fd/2 2>&1")).check(Check::NoLineOf {
            what: "serve's log (through its stderr)".into(),
            path: serve_log,
        }),
        // Processes.
        listing(facts, "ps -eo pid=,args= 2>&1 | cut -c1-160"),
        listing(
            facts,
            "for p in /proc/[0-9]*; do \
             echo \"${p#/proc/} $(tr '\\0' ' ' < $p/cmdline 2>/dev/null | cut -c1-160)\"; done",
        ),
        signals(facts),
        // Writing.
        unwritten("serve's data directory is writable", 0),
        unwritten("B's state directory is writable", 1),
        unwritten("the OpenClaw install every gateway runs is writable", 2),
        // The host's loopback.
        Probe::new(connect(5432)).check(closed("PostgreSQL on 127.0.0.1:5432")),
        Probe::new(connect_unix("/run/postgresql/.s.PGSQL.5432"))
            .check(closed("PostgreSQL's Unix socket")),
        Probe::new(connect(facts.serve_port)).check(closed("serve's port")),
        Probe::new(connect(facts.b_runtime_port)).check(closed("B's runtime agent's port")),
        Probe::new(connect(facts.b_gateway_port)).check(closed("B's gateway's port")),
        Probe::new(connect(facts.a_runtime_port)).check(closed("A's own runtime agent's port")),
        // What the operator allows.
        Probe::new(format!(
            "curl -s -m 5 http://{}/ 2>&1",
            scene.allowed.address
        ))
        .check(Check::Reaches {
            what: "the allowed endpoint (CLAWPLANE_CELL_ALLOW)".into(),
            marker: scene.allowed.marker.clone(),
        }),
    ]
}

/// A process listing, which must show none of serve's or B's processes.
fn listing(facts: &Facts, command: &str) -> Probe {
    facts
        .processes
        .iter()
        .map(|(check, _)| check.clone())
        .fold(Probe::new(command), Probe::check)
}

/// `kill -0` (permission to signal, nothing sent) on serve's and B's processes.
fn signals(facts: &Facts) -> Probe {
    let pids: Vec<String> = facts
        .processes
        .iter()
        .map(|(_, pid)| pid.to_string())
        .collect();
    let command = format!(
        "for p in {}; do kill -0 $p 2>/dev/null && echo \"signalled $p\"; done; echo tried",
        pids.join(" ")
    );
    facts
        .processes
        .iter()
        .fold(Probe::new(command), |probe, (check, pid)| match check {
            Check::NoProcess { what, .. } => probe.absent(
                format!("the right to signal {what}"),
                format!("signalled {pid}\n"),
            ),
            _ => probe,
        })
}
