//! The contract between `serve` and the runtime agent (`clawplane runtime`):
//! the routes of its `/v1` API ([`paths`]), every header the two exchange
//! ([`headers`]), and a typed body for every request and answer
//! ([`status`], [`devices`], [`storage`], [`gateway`]), and the models
//! `serve` offers the runtime's gateway ([`models`]).
//!
//! The runtime's handlers build these types and `serve`'s runtime client
//! parses them, so a field renamed on one side fails to compile on the
//! other. The field names are the wire's (`serve`'s API passes several of
//! these bodies through to its users unchanged): change one and both sides
//! and `serve`'s API change with it. What is OpenClaw's own JSON (its device
//! records, its usage report) stays a [`serde_json::Value`] inside a typed
//! wrapper: the gateway decides its shape, not this contract.
//!
//! Every answer travels in the envelope of the crate root
//! (`{"ok": true, "data": ...}`); these are the `data` parts.

pub mod devices;
pub mod gateway;
pub mod headers;
pub mod models;
pub mod paths;
mod present;
pub mod status;
pub mod storage;

pub use devices::{DeviceDecision, DeviceList};
pub use gateway::{GatewayAction, GatewayReply};
pub use models::{ModelOffer, OfferedModel};
pub use status::{
    CellLimits, CellStatus, ExitInfo, GatewayState, GatewayStatus, Health, Logs, Status, Usage,
    Versions,
};
pub use storage::{BackupList, BackupSummary, BackupTaken, RestoreReply, RestoreRequest, Restored};

#[cfg(test)]
mod tests;
