//! The runtime agent's settings, parsed and validated (the CLI builds them).

use std::path::PathBuf;
use std::time::Duration;

use clawplane_domain::ProviderKeyName;
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
    /// Credentials and endpoint of an `s3://` backup target (the CLI reads
    /// them from the environment; never part of the URL).
    pub s3: clawplane_backup::S3Settings,
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
    /// The models `serve` includes, with the instance's model token; `None`
    /// when the operator configured none.
    pub models: Option<crate::gateway::config_file::IncludedModels>,
}

impl RuntimeConfig {
    /// Parses `OPENCLAW_PROVIDER_KEYS`, a JSON object of environment variable
    /// names to values, e.g. `{"OPENAI_API_KEY": "sk-..."}`. Names follow
    /// the one rule `serve` applies when they are stored
    /// ([`ProviderKeyName`]), so what `serve` accepted starts here.
    pub fn parse_provider_env(raw: &str) -> Result<Vec<(String, SecretString)>, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        let shape = "OPENCLAW_PROVIDER_KEYS must be a JSON object of NAME: value, each name once";
        let map: serde_json::Map<String, serde_json::Value> =
            clawplane_http::json::from_str(raw).map_err(|_| shape.to_owned())?;
        let mut out = Vec::new();
        for (name, value) in map {
            // The refusal names a reserved name, never a malformed one (it
            // may be a pasted value).
            let name = ProviderKeyName::parse(&name)
                .map_err(|refused| format!("OPENCLAW_PROVIDER_KEYS: {refused}"))?
                .into_string();
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

    /// The names `serve` once stored and this refused at start (the
    /// gateway down while the instance said `ready`) are refused by the one
    /// shared rule, with the reserved names listed.
    #[test]
    fn provider_key_names_follow_the_rule_serve_applies() {
        for name in [
            "NODE_OPTIONS",
            "NODE_PATH",
            "LD_LIBRARY_PATH",
            "HTTPS_PROXY",
        ] {
            let raw = format!(r#"{{"{name}":"sk-never"}}"#);
            let err = RuntimeConfig::parse_provider_env(&raw).unwrap_err();
            assert!(err.contains(&format!("{name} is reserved")), "{err}");
            assert!(
                err.contains("HTTPS_PROXY, ") && err.contains("LD_") && !err.contains("sk-never"),
                "{err}"
            );
            assert!(
                ProviderKeyName::parse(name).is_err(),
                "serve refuses {name} too"
            );
        }
        for name in ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY"] {
            assert!(ProviderKeyName::parse(name).is_ok());
            let raw = format!(r#"{{"{name}":"sk-1"}}"#);
            assert_eq!(RuntimeConfig::parse_provider_env(&raw).unwrap()[0].0, name);
        }
        let twice = r#"{"OPENAI_API_KEY":"sk-1","OPENAI_API_KEY":"sk-2"}"#;
        let err = RuntimeConfig::parse_provider_env(twice).unwrap_err();
        assert!(
            err.contains("each name once") && !err.contains("sk-"),
            "{err}"
        );
    }
}
