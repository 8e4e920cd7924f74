//! The cell's cgroup: memory, CPU and process limits, and their readings.
//!
//! A cell's cgroup is always made beneath the cgroup this agent itself runs
//! in (read from `/proc/self/cgroup`), never elsewhere in the tree, and only
//! the cell's own processes are ever put in it (the sandbox joins it before
//! it execs anything). cgroup v1 (one hierarchy per controller, as on the
//! machines this was built on) and v2 (one unified hierarchy, where the
//! controllers must be delegated to the agent's cgroup) are both read.

use std::path::{Path, PathBuf};

use super::CellSettings;

const ROOT: &str = "/sys/fs/cgroup";

/// What the cgroup measured.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Memory in use, bytes.
    pub memory_bytes: Option<u64>,
    /// CPU time, microseconds.
    pub cpu_usec: Option<u64>,
    /// Processes.
    pub processes: Option<u64>,
}

#[derive(Debug)]
enum Kind {
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
    },
    V2(PathBuf),
}

/// One cell's cgroup (removed when dropped, once empty).
#[derive(Debug)]
pub struct CellCgroup {
    kind: Kind,
}

impl CellCgroup {
    /// Makes the cell's cgroup beneath this process's own and sets its
    /// limits. Fails with a sentence saying what the host lacks.
    pub fn create(settings: &CellSettings) -> Result<CellCgroup, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let leaf = format!("clawplane-cell-{}", settings.name);
        let kind = if Path::new(ROOT).join("cgroup.controllers").exists() {
            let path = v2_path(&own).ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
            v2(
                &Path::new(ROOT).join(path.trim_start_matches('/')),
                &leaf,
                settings,
            )?
        } else {
            v1(&own, &leaf, settings)?
        };
        Ok(CellCgroup { kind })
    }

    /// The `cgroup.procs` files a process writes its pid into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().iter().map(|d| d.join("cgroup.procs")).collect()
    }

    fn dirs(&self) -> Vec<PathBuf> {
        match &self.kind {
            Kind::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
            } => [Some(memory), Some(pids), cpu.as_ref(), cpuacct.as_ref()]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            Kind::V2(dir) => vec![dir.clone()],
        }
    }

    /// The current readings (each `None` when the host does not say).
    pub fn usage(&self) -> Usage {
        match &self.kind {
            Kind::V1 {
                memory,
                pids,
                cpuacct,
                ..
            } => Usage {
                memory_bytes: read_u64(&memory.join("memory.usage_in_bytes")),
                cpu_usec: cpuacct
                    .as_ref()
                    .and_then(|d| read_u64(&d.join("cpuacct.usage")))
                    .map(|ns| ns / 1000),
                processes: read_u64(&pids.join("pids.current")),
            },
            Kind::V2(dir) => Usage {
                memory_bytes: read_u64(&dir.join("memory.current")),
                cpu_usec: std::fs::read_to_string(dir.join("cpu.stat"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("usage_usec "))
                            .and_then(|v| v.trim().parse().ok())
                    }),
                processes: read_u64(&dir.join("pids.current")),
            },
        }
    }
}

impl Drop for CellCgroup {
    fn drop(&mut self) {
        for dir in self.dirs() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn v2_path(own: &str) -> Option<&str> {
    own.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The path of this process in the v1 hierarchy of `controller`.
fn v1_path<'a>(own: &'a str, controller: &str) -> Option<&'a str> {
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let names = parts.next()?;
        let path = parts.next()?;
        names.split(',').any(|n| n == controller).then_some(path)
    })
}

fn make(parent: &Path, leaf: &str) -> Result<PathBuf, String> {
    let dir = parent.join(leaf);
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(format!("cannot create the cgroup {}: {e}", dir.display())),
    }
}

fn set(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| format!("cannot set {} in {}: {e}", file, dir.display()))
}

fn v1(own: &str, leaf: &str, settings: &CellSettings) -> Result<Kind, String> {
    let place = |controller: &str| -> Result<Option<PathBuf>, String> {
        let Some(path) = v1_path(own, controller) else {
            return Ok(None);
        };
        let mount = Path::new(ROOT).join(controller);
        if !mount.is_dir() {
            return Ok(None);
        }
        make(&mount.join(path.trim_start_matches('/')), leaf).map(Some)
    };
    let missing = |c: &str| {
        format!("the cgroup v1 '{c}' controller is not mounted at {ROOT}/{c}: cells need it to limit a tenant")
    };
    let memory = place("memory")?.ok_or_else(|| missing("memory"))?;
    let pids = place("pids")?.ok_or_else(|| missing("pids"))?;
    let cpu = place("cpu")?;
    let cpuacct = place("cpuacct")?;
    let bytes = settings.memory_bytes.to_string();
    set(&memory, "memory.limit_in_bytes", &bytes)?;
    // Swap counts too where the host accounts for it.
    let _ = std::fs::write(memory.join("memory.memsw.limit_in_bytes"), &bytes);
    set(&pids, "pids.max", &settings.pids.to_string())?;
    if let Some(cpu) = &cpu {
        let period = 100_000u64;
        let quota = (settings.cpus * period as f64) as u64;
        set(cpu, "cpu.cfs_period_us", &period.to_string())?;
        set(cpu, "cpu.cfs_quota_us", &quota.to_string())?;
    } else {
        tracing::warn!("no cgroup v1 cpu controller: the cell's CPU is not limited");
    }
    Ok(Kind::V1 {
        memory,
        pids,
        cpu,
        cpuacct,
    })
}

fn v2(base: &Path, leaf: &str, settings: &CellSettings) -> Result<Kind, String> {
    let enabled = std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
    let has = |c: &str| enabled.split_whitespace().any(|e| e == c);
    if !(has("memory") && has("pids")) {
        // Possible only when the agent's cgroup holds no process itself.
        let _ = std::fs::write(base.join("cgroup.subtree_control"), "+memory +pids +cpu");
        let enabled =
            std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
        let has = |c: &str| enabled.split_whitespace().any(|e| e == c);
        if !(has("memory") && has("pids")) {
            return Err(format!(
                "the cgroup v2 controllers memory and pids are not delegated to {}: run clawplane in a cgroup of its own with them delegated (systemd: Delegate=memory pids cpu)",
                base.display()
            ));
        }
    }
    let dir = make(base, leaf)?;
    set(&dir, "memory.max", &settings.memory_bytes.to_string())?;
    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
    set(&dir, "pids.max", &settings.pids.to_string())?;
    let period = 100_000u64;
    let quota = (settings.cpus * period as f64) as u64;
    if std::fs::write(dir.join("cpu.max"), format!("{quota} {period}")).is_err() {
        tracing::warn!(
            "the cgroup v2 cpu controller is not delegated: the cell's CPU is not limited"
        );
    }
    Ok(Kind::V2(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_places_are_read_from_proc_self_cgroup() {
        let own = "9:name=systemd:/\n8:pids:/\n4:memory:/api/abc\n2:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(v1_path(own, "memory"), Some("/api/abc"));
        assert_eq!(v1_path(own, "cpuacct"), Some("/x"));
        assert_eq!(v1_path(own, "blkio"), None);
        assert_eq!(
            v2_path("0::/user.slice/u.service\n"),
            Some("/user.slice/u.service")
        );
    }
}
