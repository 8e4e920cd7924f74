//! The runtime agent's settings, parsed and validated (the CLI builds them).

use std::path::PathBuf;
use std::time::Duration;

use clawplane_secrets::SecretString;

use crate::cell::CellSettings;
use crate::gateway::config_file::BindMode;

/// Everything `clawplane runtime` needs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The runtime's directory (`CLAWPLANE_STATE_DIR`): the gateway's state is
    /// `<state_dir>/openclaw`, its home `home/`, logs `logs/`.
    pub state_dir: PathBuf,
    /// The gateway's loopback port.
    pub gateway_port: u16,
    /// `OPENCLAW_BIND_MODE`.
    pub bind: BindMode,
    /// `OPENAGENTS_SERVICE_TOKEN`: what the control plane presents.
    pub service_token: SecretString,
    /// `OPENCLAW_GATEWAY_TOKEN`: what the agent presents to the gateway.
    pub gateway_token: SecretString,
    /// `OPENCLAW_DEV_MODE`.
    pub dev_mode: bool,
    /// The instance this runtime serves.
    pub instance_id: String,
    /// What kind of machine it runs on (reported by `/v1/status`).
    pub instance_type: String,
    /// `OPENCLAW_VERSION`.
    pub openclaw_version: String,
    /// Where `clawplane openclaw install` put Node and OpenClaw.
    pub cache_dir: PathBuf,
    /// `file:///path` or `s3://bucket/prefix`.
    pub backup_url: String,
    /// How often a scheduled backup runs (only when something changed).
    pub backup_interval: Duration,
    /// Backups kept: the last N.
    pub keep_last: usize,
    /// Backups kept: one per day for this many days.
    pub keep_daily_days: u32,
    /// Environment handed to the gateway for model providers (`NAME=value`).
    pub provider_env: Vec<(String, SecretString)>,
    /// Largest request body.
    pub body_limit: usize,
    /// SIGTERM to SIGKILL.
    pub stop_grace: Duration,
    /// Start the gateway when the agent starts.
    pub autostart: bool,
    /// The gateway's cell; `None` only with `--isolation none`.
    pub cell: Option<CellSettings>,
}

impl RuntimeConfig {
    /// Parses `OPENCLAW_PROVIDER_KEYS`, a JSON object of environment variable
    /// names (`[A-Z][A-Z0-9_]*`) to values, e.g. `{"OPENAI_API_KEY": "sk-..."}`.
    pub fn parse_provider_env(raw: &str) -> Result<Vec<(String, SecretString)>, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(raw).map_err(|_| {
                "OPENCLAW_PROVIDER_KEYS must be a JSON object of NAME: value".to_owned()
            })?;
        let mut out = Vec::new();
        for (name, value) in map {
            let valid = name.len() <= 64
                && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let reserved = name.starts_with("OPENCLAW_")
                || ["PATH", "HOME", "NODE_OPTIONS", "LD_PRELOAD"].contains(&name.as_str());
            if !valid || reserved {
                return Err(format!(
                    "OPENCLAW_PROVIDER_KEYS: '{name}' is not an allowed variable name"
                ));
            }
            let Some(text) = value.as_str() else {
                return Err(format!(
                    "OPENCLAW_PROVIDER_KEYS: the value of {name} must be a string"
                ));
            };
            out.push((name, SecretString::from(text.to_owned())));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawplane_secrets::ExposeSecret;

    #[test]
    fn provider_keys_are_checked() {
        let env = RuntimeConfig::parse_provider_env(r#"{"OPENAI_API_KEY":"sk-1"}"#).unwrap();
        assert_eq!(env[0].0, "OPENAI_API_KEY");
        assert_eq!(env[0].1.expose_secret(), "sk-1");
        for bad in [
            r#"{"PATH":"/x"}"#,
            r#"{"lower":"x"}"#,
            r#"{"OPENCLAW_STATE_DIR":"/"}"#,
            r#"{"A":1}"#,
            "[1]",
        ] {
            let err = RuntimeConfig::parse_provider_env(bad).unwrap_err();
            assert!(!err.contains("sk-"), "{err}");
        }
        assert!(RuntimeConfig::parse_provider_env("").unwrap().is_empty());
    }
}
