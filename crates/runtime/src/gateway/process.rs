//! Processes: starting the gateway in its own process group and making sure
//! none of its processes outlive a stop.
//!
//! The gateway spawns workers, and one of them (the spawn broker) moves to a
//! session and process group of its own, so signalling the gateway's group is
//! not enough. The agent makes itself a child subreaper, so orphaned workers
//! are re-parented to it rather than to init, and a stop signals every
//! descendant found under `/proc` as well as the group.

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// Makes this process the reaper of its orphaned descendants (Linux).
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "cannot become a child subreaper; orphaned gateway workers may escape a stop");
    }
}

/// Every process whose parent chain leads to `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            parents.push((pid, ppid));
        }
    }
    let mut found: HashSet<u32> = HashSet::from([root]);
    // Bounded: a process tree is at most as deep as there are processes.
    for _ in 0..parents.len().max(1) {
        let before = found.len();
        for (pid, ppid) in &parents {
            if found.contains(ppid) {
                found.insert(*pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    found.remove(&root);
    found.into_iter().collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Whether a process exists (and is not a zombie).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().next().map(|s| s != "Z"))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Sends `signal` to the process group `pgid` and to every listed process.
pub fn signal_all(pgid: u32, others: &[u32], signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid as i32), signal);
    for pid in others {
        let _ = kill(Pid::from_raw(*pid as i32), signal);
    }
}

/// Whether `pid` is bubblewrap (a cell's sandbox): it is never sent
/// SIGTERM, because it would end at once and take the cell with it
/// (`--die-with-parent`), cutting the gateway's graceful stop short; it ends
/// by itself when the process it runs does.
fn is_sandbox(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "bwrap")
}

/// SIGTERM to the group and every descendant (but a cell's sandbox, see
/// [`is_sandbox`]), up to `grace` for them to exit, then SIGKILL to whatever
/// is left. Returns whether SIGKILL was needed.
pub async fn terminate_tree(pid: u32, grace: Duration) -> bool {
    let mut tree = descendants(pid);
    let gentle: Vec<u32> = tree.iter().copied().filter(|p| !is_sandbox(*p)).collect();
    if is_sandbox(pid) {
        for p in &gentle {
            let _ = kill(Pid::from_raw(*p as i32), Signal::SIGTERM);
        }
    } else {
        signal_all(pid, &gentle, Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        tree.extend(descendants(pid));
        if !is_alive(pid) && tree.iter().all(|p| !is_alive(*p)) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tree.extend(descendants(pid));
    signal_all(pid, &tree, Signal::SIGKILL);
    true
}

/// Kills (SIGKILL) every remaining process of a tree, after the main one
/// exited: its group and every process still descending from this agent
/// that belonged to it.
pub fn kill_leftovers(pgid: u32, known: &[u32]) {
    let alive: Vec<u32> = known.iter().copied().filter(|p| is_alive(*p)).collect();
    signal_all(pgid, &alive, Signal::SIGKILL);
}

/// Live processes (not this one, not zombies) whose command line or
/// environment names `dir`: what a data directory's runtimes and gateways
/// look like from outside, for cleanup after tests and benchmarks.
pub fn mentioning(dir: &std::path::Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rfind(')')
            .is_some_and(|i| stat.get(i + 2..).is_some_and(|s| s.starts_with('Z')))
        {
            continue;
        }
        let mut text = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        text.extend(std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default());
        if String::from_utf8_lossy(&text).contains(&needle) {
            out.push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tree_is_found_and_terminated() {
        // sh -> sleep, in its own process group; sh ignores SIGTERM so the
        // SIGKILL path runs too.
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30 & sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut kids = Vec::new();
        for _ in 0..50 {
            kids = descendants(pid);
            if kids.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(kids.len() >= 2, "found the sleeps: {kids:?}");
        let killed = terminate_tree(pid, Duration::from_millis(300)).await;
        let _ = child.wait().await;
        assert!(killed || !is_alive(pid));
        for _ in 0..50 {
            if kids.iter().all(|k| !is_alive(*k)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            kids.iter().all(|k| !is_alive(*k)),
            "no process of the tree survives"
        );
    }
}
