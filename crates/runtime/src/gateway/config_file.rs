//! The gateway's `openclaw.json`: clawplane manages a few keys and keeps the
//! rest, because the gateway (and its user, through the Control UI) writes
//! the same file.
//!
//! Managed: local mode, port, bind, token auth (the token itself is passed in
//! `OPENCLAW_GATEWAY_TOKEN`, never written to disk), trusted proxies, the
//! admin HTTP RPC plugin, the OpenAI-compatible `POST /v1/responses`
//! endpoint (the console's chat page talks to the agent through it), a
//! per-instance log file, and every switch that would make the gateway reach
//! the internet on its own (update checks, mDNS, the remote model catalog).
//! The file is written atomically, mode 0600, in a 0700 directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// `OPENCLAW_BIND_MODE`: where the gateway listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// 127.0.0.1 only (the default: the runtime is its only client).
    Loopback,
    /// Every interface of the host's LAN.
    Lan,
    /// The tailnet interface.
    Tailnet,
    /// The gateway's own choice.
    Auto,
}

impl BindMode {
    /// Parses `OPENCLAW_BIND_MODE` (trimmed, case-insensitive).
    pub fn parse(input: &str) -> Result<Self, String> {
        match input.trim().to_ascii_lowercase().as_str() {
            "" | "loopback" => Ok(BindMode::Loopback),
            "lan" => Ok(BindMode::Lan),
            "tailnet" => Ok(BindMode::Tailnet),
            "auto" => Ok(BindMode::Auto),
            other => Err(format!(
                "OPENCLAW_BIND_MODE '{other}' is not one of loopback, lan, tailnet, auto"
            )),
        }
    }

    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            BindMode::Loopback => "loopback",
            BindMode::Lan => "lan",
            BindMode::Tailnet => "tailnet",
            BindMode::Auto => "auto",
        }
    }
}

/// The managed settings.
#[derive(Debug, Clone)]
pub struct ManagedConfig {
    /// Gateway port on loopback.
    pub port: u16,
    /// Bind mode.
    pub bind: BindMode,
    /// Addresses whose `X-Forwarded-For` the gateway trusts (the runtime's).
    pub trusted_proxies: Vec<String>,
    /// The gateway's own JSON log file.
    pub log_file: PathBuf,
}

/// Writes the managed keys into `path`, keeping every other key.
pub fn write(path: &Path, managed: &ManagedConfig) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let mut root = match fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                // JSON5 or a broken file: keep it aside, start from a clean one.
                let aside = path.with_extension(format!(
                    "json.unreadable-{}",
                    chrono::Utc::now().timestamp()
                ));
                fs::rename(path, &aside)?;
                tracing::warn!(kept = %aside.display(), "openclaw.json was not plain JSON; rewrote it");
                json!({})
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(e),
    };
    apply(&mut root, managed);
    let text = serde_json::to_string_pretty(&root).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".openclaw.json.{}", uuid::Uuid::new_v4().simple()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

fn apply(root: &mut Value, m: &ManagedConfig) {
    set(root, &["gateway", "mode"], json!("local"));
    set(root, &["gateway", "port"], json!(m.port));
    set(root, &["gateway", "bind"], json!(m.bind.as_str()));
    set(root, &["gateway", "auth", "mode"], json!("token"));
    remove(root, &["gateway", "auth", "token"]);
    set(
        root,
        &["gateway", "trustedProxies"],
        json!(m.trusted_proxies),
    );
    set(
        root,
        &["plugins", "entries", "admin-http-rpc", "enabled"],
        json!(true),
    );
    set(
        root,
        &["gateway", "http", "endpoints", "responses", "enabled"],
        json!(true),
    );
    set(
        root,
        &["logging", "file"],
        json!(m.log_file.display().to_string()),
    );
    set(root, &["update", "checkOnStart"], json!(false));
    set(root, &["discovery", "mdns", "mode"], json!("off"));
    set(root, &["models", "catalogRefresh", "enabled"], json!(false));
}

fn object_at<'a>(root: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut node = root;
    for key in path {
        if !node.is_object() {
            *node = json!({});
        }
        let map = match node {
            Value::Object(map) => map,
            _ => unreachable!("made an object above"),
        };
        node = map.entry((*key).to_owned()).or_insert_with(|| json!({}));
    }
    if !node.is_object() {
        *node = json!({});
    }
    match node {
        Value::Object(map) => map,
        _ => unreachable!("made an object above"),
    }
}

fn set(root: &mut Value, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    object_at(root, parents).insert((*last).to_owned(), value);
}

fn remove(root: &mut Value, path: &[&str]) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    object_at(root, parents).remove(*last);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managed() -> ManagedConfig {
        ManagedConfig {
            port: 19000,
            bind: BindMode::Loopback,
            trusted_proxies: vec!["127.0.0.1".into()],
            log_file: "/tmp/x/openclaw.log".into(),
        }
    }

    #[test]
    fn managed_keys_are_set_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/openclaw.json");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, r#"{"agents":{"defaults":{"model":{"primary":"x/y"}}},"gateway":{"port":1,"auth":{"mode":"password","token":"leak"}}}"#).unwrap();
        write(&path, &managed()).unwrap();
        let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["gateway"]["port"], 19000);
        assert_eq!(v["gateway"]["mode"], "local");
        assert_eq!(v["gateway"]["auth"]["mode"], "token");
        assert!(
            v["gateway"]["auth"].get("token").is_none(),
            "the token is never on disk"
        );
        assert_eq!(
            v["agents"]["defaults"]["model"]["primary"], "x/y",
            "other keys are kept"
        );
        assert_eq!(v["plugins"]["entries"]["admin-http-rpc"]["enabled"], true);
        assert_eq!(v["models"]["catalogRefresh"]["enabled"], false);
        assert_eq!(
            v["gateway"]["http"]["endpoints"]["responses"]["enabled"], true,
            "the console's chat page needs /v1/responses"
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn an_unreadable_file_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw.json");
        fs::write(&path, "{ json5: 'comments' // here\n}").unwrap();
        write(&path, &managed()).unwrap();
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.contains("unreadable")), "{names:?}");
    }

    #[test]
    fn bind_modes_parse() {
        assert_eq!(BindMode::parse(" LAN ").unwrap(), BindMode::Lan);
        assert_eq!(BindMode::parse("").unwrap(), BindMode::Loopback);
        assert!(BindMode::parse("0.0.0.0").is_err());
    }
}
