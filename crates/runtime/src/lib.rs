//! The runtime agent, `clawplane runtime`: one per instance, beside a real
//! OpenClaw gateway that it installs, configures, starts, watches and backs
//! up, answering `/v1/*` for the control plane.
//!
//! - [`install`]: `clawplane openclaw install`, pinned Node and OpenClaw from npm;
//! - [`cell`]: the sandbox every gateway runs in (uid, namespaces, limits);
//! - [`gateway`]: the gateway's config file, process tree, output and supervisor;
//! - [`rpc`]: the gateway's admin HTTP RPC on loopback;
//! - [`backups`]: protective and scheduled snapshots (storage is `clawplane-backup`);
//! - [`shared`]: the state the handlers and the backup schedule share;
//! - [`api`]: the `/v1` surface (its contract is `clawplane_http::v1`);
//! - [`agent`]: wiring and the run loop.

pub mod agent;
pub mod api;
pub mod backups;
pub mod cell;
pub mod config;
pub mod gateway;
pub mod install;
pub mod rpc;
pub mod shared;

pub use agent::{Agent, AgentError};
pub use config::RuntimeConfig;
pub use shared::Shared;
