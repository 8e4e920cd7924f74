//! Does this host run cells? `serve` and `runtime` ask before they start and
//! refuse with a sentence that says what to install or enable, so nobody
//! hosts tenants without isolation by accident.
//!
//! The check is real: it makes a cgroup beneath this process's own and runs
//! `id -u` in a cell as an unprivileged uid, with the same command line a
//! gateway gets.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use super::settings::MIN_CELL_UID;
use super::{cgroup, files, sandbox, CellSettings, Egress};
use crate::install::Installation;

/// The programs a cell is made of, and the Debian package of each.
const TOOLS: &[(&str, &str)] = &[
    ("sh", "dash"),
    ("bwrap", "bubblewrap"),
    ("setpriv", "util-linux"),
    ("prlimit", "util-linux"),
    ("nsenter", "util-linux"),
    ("ip", "iproute2"),
];

/// Checks that cells work here. `Err` says what is missing.
pub async fn run(egress: Egress) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("cells need root, to give every instance a uid of its own: run clawplane as root (it drops each gateway to an unprivileged uid), or choose --isolation none for one trusted user".into());
    }
    let mut missing: Vec<String> = Vec::new();
    let mut tools: Vec<(&str, &str)> = TOOLS.to_vec();
    if egress == Egress::Public {
        tools.push(("slirp4netns", "slirp4netns"));
    }
    for (tool, package) in tools {
        if which(tool).is_none() {
            missing.push(format!("{tool} (Debian package {package})"));
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "cells need {} on PATH: install them (`apt-get install bubblewrap slirp4netns util-linux iproute2`), or choose --isolation none for one trusted user",
            missing.join(", ")
        ));
    }
    let name = format!("check-{}", std::process::id());
    let settings = CellSettings::new(MIN_CELL_UID, &name)?;
    let probe = cgroup::CellCgroup::create(&settings)?;
    let dir = std::env::temp_dir().join(format!("clawplane-cell-{name}"));
    let result = trial(&dir, &settings, &probe).await;
    let _ = std::fs::remove_dir_all(&dir);
    drop(probe);
    result
}

async fn trial(
    dir: &Path,
    settings: &CellSettings,
    probe: &cgroup::CellCgroup,
) -> Result<(), String> {
    let installation = Installation {
        version: "check".into(),
        node: dir.join("none"),
        openclaw: dir.join("none"),
    };
    let mut layout = sandbox::Layout::new(dir.to_path_buf(), &installation);
    layout.read_only.clear();
    files::write_identity(&layout, settings.uid).map_err(|e| {
        format!(
            "cannot write a trial cell's files in {}: {e}",
            dir.display()
        )
    })?;
    let inner: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), "id -u".into()];
    let argv = sandbox::argv(&layout, settings, &probe.procs_files(), &inner);
    let output = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .map_err(|_| "a trial cell did not finish within 20 s".to_owned())?
        .map_err(|e| format!("cannot start a trial cell: {e}"))?;
    let uid = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || uid != settings.uid.to_string() {
        return Err(format!(
            "a trial cell failed ({}): {}; the kernel may forbid namespaces here (check kernel.unprivileged_userns_clone and that the host allows mount and network namespaces), or choose --isolation none for one trusted user",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// The program's path on `PATH`, if any.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
