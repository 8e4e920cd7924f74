//! The agent's own types as the contract's bodies (`clawplane_http::v1`).
//! Each conversion names every field of the type it reads, so a field added
//! to the supervisor's, the cell's or the backup store's type does not
//! compile until the contract says how it travels.

use clawplane_http::v1;

use crate::cell::{CellLimitsView, CellStatus};
use crate::gateway::supervisor::ExitInfo;
use crate::gateway::{GatewayState, GatewayStatus};

/// The supervisor's status as the gateway routes answer it (no `uptimeMs`).
pub fn gateway(status: GatewayStatus) -> v1::GatewayStatus {
    gateway_with(status, None)
}

/// The supervisor's status as `/v1/status` answers it (with `uptimeMs`).
pub fn gateway_with_uptime(status: GatewayStatus) -> v1::GatewayStatus {
    let uptime = status.uptime_ms();
    gateway_with(status, Some(uptime))
}

fn gateway_with(status: GatewayStatus, uptime_ms: Option<Option<i64>>) -> v1::GatewayStatus {
    let GatewayStatus {
        state,
        pid,
        started_at,
        ready_at,
        restarts,
        crashes,
        last_exit,
        last_error,
    } = status;
    v1::GatewayStatus {
        state: gateway_state(state),
        pid,
        uptime_ms,
        started_at,
        ready_at,
        restarts,
        crashes,
        last_exit: last_exit.map(exit_info),
        last_error,
    }
}

fn gateway_state(state: GatewayState) -> v1::GatewayState {
    match state {
        GatewayState::Stopped => v1::GatewayState::Stopped,
        GatewayState::Starting => v1::GatewayState::Starting,
        GatewayState::Running => v1::GatewayState::Running,
        GatewayState::Stopping => v1::GatewayState::Stopping,
        GatewayState::Crashed => v1::GatewayState::Crashed,
    }
}

fn exit_info(exit: ExitInfo) -> v1::ExitInfo {
    let ExitInfo { code, signal, at } = exit;
    v1::ExitInfo { code, signal, at }
}

/// A backup as the contract lists it.
pub fn backup(summary: clawplane_backup::BackupSummary) -> v1::BackupSummary {
    let clawplane_backup::BackupSummary {
        id,
        created_at,
        trigger,
        files,
        bytes,
    } = summary;
    v1::BackupSummary {
        id,
        created_at,
        trigger,
        files,
        bytes,
    }
}

/// The cell's part of `/v1/status`.
pub fn cell(status: CellStatus) -> v1::CellStatus {
    let CellStatus {
        isolation,
        uid,
        limits,
        egress,
        memory_bytes,
        cpu_usec,
        processes,
        disk_bytes,
        stopped_reason,
    } = status;
    v1::CellStatus {
        isolation: isolation.to_owned(),
        uid,
        limits: limits.map(cell_limits),
        egress: egress.map(str::to_owned),
        memory_bytes,
        cpu_usec,
        processes,
        disk_bytes,
        stopped_reason,
    }
}

fn cell_limits(limits: CellLimitsView) -> v1::CellLimits {
    let CellLimitsView {
        memory_bytes,
        cpus,
        pids,
        open_files,
        disk_quota_bytes,
    } = limits;
    v1::CellLimits {
        memory_bytes,
        cpus,
        pids,
        open_files,
        disk_quota_bytes,
    }
}
