//! Does this host run cells? `serve` and `runtime` ask before they start and
//! refuse with a sentence that says what to install or enable, so nobody
//! hosts tenants without isolation by accident.
//!
//! The check is real: it makes a cgroup beneath this process's own and runs
//! `id -u` in a cell as an unprivileged uid, with the same command line a
//! gateway gets.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
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

/// What the check needs from the host's environment, passed in by the CLI.
#[derive(Debug, Clone)]
pub struct HostCheck {
    /// Where the cell's programs are looked for (the caller's `PATH`; `/usr/sbin`
    /// and `/sbin` are searched after it).
    pub search_path: OsString,
    /// Where the trial cell's files are written (the caller's temporary directory).
    pub scratch_dir: PathBuf,
    /// How long the trial cell may take (default 20 s).
    pub timeout: Duration,
}

impl HostCheck {
    /// The default time a trial cell may take.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
}

/// Checks that cells work here. `Err` says what is missing.
pub async fn run(egress: Egress, host: &HostCheck) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("cells need root, to give every instance a uid of its own: run clawplane as root (it drops each gateway to an unprivileged uid), or choose --isolation none for one trusted user".into());
    }
    let mut missing: Vec<String> = Vec::new();
    let mut tools: Vec<(&str, &str)> = TOOLS.to_vec();
    if egress == Egress::Public {
        tools.push(("slirp4netns", "slirp4netns"));
    }
    for (tool, package) in tools {
        if which(tool, &host.search_path).is_none() {
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
    let dir = host.scratch_dir.join(format!("clawplane-cell-{name}"));
    let result = trial(&dir, &settings, &probe, host.timeout).await;
    let _ = std::fs::remove_dir_all(&dir);
    drop(probe);
    result
}

async fn trial(
    dir: &Path,
    settings: &CellSettings,
    probe: &cgroup::CellCgroup,
    timeout: Duration,
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
    let output = tokio::time::timeout(timeout, output)
        .await
        .map_err(|_| {
            format!(
                "a trial cell did not finish within {} s (a slow host may need a longer --cell-check-timeout-secs)",
                timeout.as_secs_f64()
            )
        })?
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

/// The program's path on `search_path` (a `PATH`; `/usr/bin:/bin` when
/// empty), then `/usr/sbin` and `/sbin`, if any.
pub fn which(program: &str, search_path: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = if search_path.is_empty() {
        std::ffi::OsStr::new("/usr/bin:/bin")
    } else {
        search_path
    };
    std::env::split_paths(path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
