//! The OpenClaw gateway beside this agent: its config file, its process, its
//! output, and the supervisor that keeps it running.

pub mod config_file;
pub mod device_identity;
pub mod logs;
pub mod process;
pub mod spec;
pub mod supervisor;

pub use logs::LogSink;
pub use spec::GatewaySpec;
pub use supervisor::{GatewayState, GatewayStatus, Supervisor, SupervisorError, SupervisorOptions};
