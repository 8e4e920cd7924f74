//! `POST /v1/gateway/{start,stop,restart}`.

use serde::{Deserialize, Serialize};

use super::paths;
use super::present::present;
use super::status::GatewayStatus;
use super::storage::BackupSummary;

/// What to do with a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayAction {
    /// Start it.
    Start,
    /// Stop it (after a protective backup).
    Stop,
    /// Restart it (after a protective backup).
    Restart,
}

impl GatewayAction {
    /// `start`, `stop` or `restart`.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayAction::Start => "start",
            GatewayAction::Stop => "stop",
            GatewayAction::Restart => "restart",
        }
    }

    /// Its route.
    pub fn path(self) -> &'static str {
        match self {
            GatewayAction::Start => paths::GATEWAY_START,
            GatewayAction::Stop => paths::GATEWAY_STOP,
            GatewayAction::Restart => paths::GATEWAY_RESTART,
        }
    }
}

/// The answer of the three gateway routes: the gateway after the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayReply {
    /// The gateway's supervisor (without `uptimeMs`).
    pub gateway: GatewayStatus,
    /// The protective backup taken first. Stop and restart have the field
    /// (`Some`; `null` when the gateway was not running, so none was
    /// taken); a start has none (`None`, left out).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub backup: Option<Option<BackupSummary>>,
}
