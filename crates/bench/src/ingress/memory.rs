//! Resident memory (`VmRSS`) of `serve`, the runtime agent and the
//! gateway's processes, read from `/proc`.

use std::path::PathBuf;

use clawplane_runtime::gateway::process::mentioning as processes_under;

/// The processes whose memory is read.
pub(super) struct Pids {
    pub(super) serve: u32,
    pub(super) runtime: u32,
    pub(super) data: PathBuf,
}

/// Resident memory in KiB: serve, the runtime agent, and the gateway's
/// processes (everything else under the data directory) with their count.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Memory {
    pub(super) serve: u64,
    pub(super) runtime: u64,
    pub(super) gateway: u64,
    pub(super) gateway_processes: usize,
}

pub(super) fn memory(pids: &Pids) -> Memory {
    let others: Vec<i32> = processes_under(&pids.data)
        .into_iter()
        .filter(|p| *p != pids.serve as i32 && *p != pids.runtime as i32)
        .collect();
    Memory {
        serve: rss_kib(pids.serve).unwrap_or(0),
        runtime: rss_kib(pids.runtime).unwrap_or(0),
        gateway: others.iter().filter_map(|p| rss_kib(*p as u32)).sum(),
        gateway_processes: others.len(),
    }
}

/// Resident memory of a process, in KiB.
pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

pub(super) fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_proc_status() {
        let status = "Name:\tclawplane\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads: 4\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
