//! Everything needed to run one gateway: where its files live, its port and
//! its environment. The environment is built from scratch (never inherited),
//! so nothing of the agent's own environment, its service token included,
//! reaches the gateway. With a cell, the same command runs inside it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clawplane_secrets::{ExposeSecret, SecretString};
use tokio::process::Command;

use crate::cell::Cell;
use crate::install::Installation;

/// One gateway's layout and settings.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// Node and OpenClaw.
    pub installation: Installation,
    /// The runtime's directory: holds `openclaw/`, `home/`, `logs/`.
    pub root: PathBuf,
    /// Loopback port of the gateway.
    pub port: u16,
    /// The gateway token (`OPENCLAW_GATEWAY_TOKEN`).
    pub token: SecretString,
    /// Extra environment for the gateway (model provider keys).
    pub extra_env: Vec<(String, SecretString)>,
    /// The cell the gateway runs in (`None`: `--isolation none`).
    pub cell: Option<Arc<Cell>>,
}

impl GatewaySpec {
    /// `OPENCLAW_STATE_DIR`: everything the gateway keeps, and what is backed up.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("openclaw")
    }

    /// The gateway's config file.
    pub fn config_path(&self) -> PathBuf {
        self.state_dir().join("openclaw.json")
    }

    /// `HOME` of the gateway (kept out of backups).
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Logs of the runtime and the gateway.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The gateway's own JSON log (`logging.file`), in its home: the
    /// agent's `logs/` is out of a cell's reach.
    pub fn gateway_json_log(&self) -> PathBuf {
        self.home().join("logs").join("openclaw.log")
    }

    /// The pid of the running gateway, for finding a leftover after a crash of the agent.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("gateway.pid")
    }

    /// `node openclaw.mjs <args>` with the gateway's environment. In a cell
    /// the cell's chain ties it to this agent; without one, `setpriv
    /// --pdeathsig KILL` (when the host has it) does, so a gateway never
    /// outlives an agent killed hard.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut inner: Vec<OsString> = vec![
            self.installation.node.clone().into(),
            self.installation.openclaw.clone().into(),
        ];
        inner.extend(args.iter().map(OsString::from));
        let argv = match &self.cell {
            Some(cell) => cell.wrap(&inner),
            None => match setpriv() {
                Some(setpriv) => [setpriv, "--pdeathsig".into(), "KILL".into(), "--".into()]
                    .into_iter()
                    .chain(inner)
                    .collect(),
                None => inner,
            },
        };
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).env_clear();
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            self.installation.node_bin_dir().display()
        );
        let vars: [(&str, &Path); 3] = [
            ("HOME", &self.home()),
            ("OPENCLAW_STATE_DIR", &self.state_dir()),
            ("OPENCLAW_CONFIG_PATH", &self.config_path()),
        ];
        for (k, v) in vars {
            command.env(k, v);
        }
        command
            .env("PATH", path)
            .env("LANG", "C.UTF-8")
            .env("OPENCLAW_GATEWAY_TOKEN", self.token.expose_secret())
            .env("OPENCLAW_GATEWAY_PORT", self.port.to_string())
            .env("OPENCLAW_SKIP_CHANNELS", "1")
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("OPENCLAW_NO_RESPAWN", "1")
            .env("OPENCLAW_SUPERVISOR_MODE", "external");
        for (k, v) in &self.extra_env {
            command.env(k, v.expose_secret());
        }
        command
    }
}

/// `setpriv` from util-linux, where Debian and most distributions put it.
fn setpriv() -> Option<OsString> {
    ["/usr/bin/setpriv", "/bin/setpriv", "/usr/local/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(OsString::from)
}
