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
//!
//! The file is the tenant's too (its gateway and agent write the state
//! directory), and this agent runs outside the tenant's cell with more rights,
//! so it is read as hostile input: opened `O_NOFOLLOW|O_NONBLOCK`, kept only
//! if `fstat` says it is a regular file of at most [`MAX_CONFIG_BYTES`].
//! Anything else (a symlink, a FIFO, a directory, a huge file, JSON5) is moved
//! aside with `rename`, which moves a link itself and never its target, and
//! a clean file is written. The new file is made under a fresh name with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, then renamed over the old name: nothing is
//! ever written through a link. The state directory's parent is the
//! operator's, so the directory itself is trusted.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::libc;
use serde_json::{json, Map, Value};

/// A larger `openclaw.json` is set aside unread, like one that is not JSON.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

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

/// The models `serve` includes: written as the gateway's `clawplane`
/// provider, the proxy's address and the instance's model token (the
/// tenant's own credential: it can buy only its own credits' worth).
#[derive(Clone)]
pub struct IncludedModels {
    /// What `serve` offers.
    pub offer: clawplane_http::v1::ModelOffer,
    /// The instance's model token.
    pub token: clawplane_secrets::SecretString,
}

impl std::fmt::Debug for IncludedModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncludedModels")
            .field("offer", &self.offer)
            .finish_non_exhaustive()
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
    /// The included models, if any.
    pub models: Option<IncludedModels>,
}

/// Writes the managed keys into `path`, keeping every other key.
pub fn write(path: &Path, managed: &ManagedConfig) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let mut root = match read_existing(path)? {
        Existing::Missing => json!({}),
        Existing::Object(root) => root,
        Existing::Unusable(why) => {
            // JSON5, a broken file or not a file at all: keep it aside, start from a clean one.
            let aside = path.with_extension(format!(
                "json.unreadable-{}",
                chrono::Utc::now().timestamp()
            ));
            fs::rename(path, &aside)?;
            tracing::warn!(kept = %aside.display(), why, "openclaw.json was unusable; rewrote it");
            json!({})
        }
    };
    apply(&mut root, managed);
    let text = serde_json::to_string_pretty(&root).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".openclaw.json.{}", uuid::Uuid::new_v4().simple()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// What is at the config path now.
#[derive(Debug)]
enum Existing {
    Missing,
    /// A JSON object.
    Object(Value),
    /// Something to set aside, and why.
    Unusable(&'static str),
}

/// Reads the config without following a symlink, opening a FIFO's other end
/// or reading more than [`MAX_CONFIG_BYTES`].
fn read_existing(path: &Path) -> std::io::Result<Existing> {
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Existing::Unusable("it is a symlink"))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Ok(Existing::Unusable("it is a socket"))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Existing::Unusable("it is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Ok(Existing::Unusable("it is larger than 4 MiB"));
    }
    Ok(match serde_json::from_slice::<Value>(&bytes) {
        Ok(root @ Value::Object(_)) => Existing::Object(root),
        _ => Existing::Unusable("it is not plain JSON"),
    })
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
    apply_models(root, m.models.as_ref());
}

/// The `clawplane` provider, and its default model as the agent's unless
/// the user chose another; without included models, neither.
fn apply_models(root: &mut Value, models: Option<&IncludedModels>) {
    use clawplane_http::v1::models::PROVIDER;
    use clawplane_secrets::ExposeSecret;
    let ours = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.starts_with(&format!("{PROVIDER}/")))
    };
    let primary = &["agents", "defaults", "model", "primary"];
    let chosen = root.pointer("/agents/defaults/model/primary").cloned();
    let Some(included) = models else {
        // Only what is there is removed: no empty object is left behind.
        if let Some(Value::Object(providers)) = root.pointer_mut("/models/providers") {
            providers.remove(PROVIDER);
        }
        if chosen.as_ref().is_some_and(ours) {
            if let Some(Value::Object(model)) = root.pointer_mut("/agents/defaults/model") {
                model.remove("primary");
            }
        }
        return;
    };
    // Prices are micro-USD per million tokens; the gateway counts USD per
    // million (its own estimate: what is billed is what `serve` metered).
    let usd = |micro: u64| micro as f64 / 1_000_000.0;
    let list: Vec<Value> = included
        .offer
        .models
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "name": m.id, "reasoning": false, "input": ["text"],
                "cost": {
                    "input": usd(m.input_per_million), "output": usd(m.output_per_million),
                    "cacheRead": usd(m.cached_per_million), "cacheWrite": 0
                },
                "contextWindow": m.context_window, "maxTokens": m.max_output_tokens
            })
        })
        .collect();
    if root.pointer("/models/mode").is_none() {
        set(root, &["models", "mode"], json!("merge"));
    }
    set(
        root,
        &["models", "providers", PROVIDER],
        json!({
            "baseUrl": included.offer.base_url,
            "apiKey": included.token.expose_secret(),
            "api": "openai-completions",
            "models": list,
        }),
    );
    let user_chose_another = chosen.as_ref().is_some_and(|v| !v.is_null() && !ours(v));
    if !user_chose_another {
        set(
            root,
            primary,
            json!(format!("{PROVIDER}/{}", included.offer.default)),
        );
    }
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
            models: None,
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

    fn names_in(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn assert_rewritten(path: &Path) {
        let meta = fs::symlink_metadata(path).unwrap();
        assert!(meta.is_file(), "a regular file is at the config path now");
        let v: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(v["gateway"]["port"], 19000);
        assert!(
            v.get("secret").is_none(),
            "nothing of the old content is kept"
        );
    }

    #[test]
    fn a_symlink_to_a_host_file_is_set_aside_and_the_host_file_never_read_or_written() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.json");
        let secret = r#"{"secret":"host-only"}"#;
        fs::write(&host, secret).unwrap();
        fs::create_dir(dir.path().join("state")).unwrap();
        let path = dir.path().join("state/openclaw.json");
        std::os::unix::fs::symlink(&host, &path).unwrap();

        write(&path, &managed()).unwrap();

        assert_rewritten(&path);
        assert_eq!(
            fs::read_to_string(&host).unwrap(),
            secret,
            "the host file is untouched"
        );
        let names = names_in(&dir.path().join("state"));
        assert!(names.iter().any(|n| n.contains("unreadable")), "{names:?}");
    }

    #[test]
    fn a_file_over_the_size_limit_is_set_aside_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw.json");
        let mut big = br#"{"secret":""#.to_vec();
        big.resize(MAX_CONFIG_BYTES as usize + 10, b'x');
        big.extend_from_slice(br#""}"#);
        fs::write(&path, &big).unwrap();
        write(&path, &managed()).unwrap();
        assert_rewritten(&path);
        assert!(names_in(dir.path())
            .iter()
            .any(|n| n.contains("unreadable")));
    }

    #[test]
    fn a_fifo_or_a_directory_at_the_config_path_is_set_aside_without_blocking() {
        for make in ["fifo", "dir"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("openclaw.json");
            if make == "fifo" {
                let made = std::process::Command::new("mkfifo").arg(&path).status();
                assert!(made.unwrap().success());
            } else {
                fs::create_dir(&path).unwrap();
            }
            let (done, finished) = std::sync::mpsc::channel();
            let at = path.clone();
            std::thread::spawn(move || done.send(write(&at, &managed()).is_ok()).unwrap());
            let written = finished
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("a FIFO must not block the write");
            assert!(written, "{make}");
            assert_rewritten(&path);
        }
    }

    fn offer() -> IncludedModels {
        IncludedModels {
            offer: clawplane_http::v1::ModelOffer {
                base_url: "http://127.0.0.1:8081/v1".into(),
                default: "mini".into(),
                models: vec![clawplane_http::v1::OfferedModel {
                    id: "mini".into(),
                    context_window: 128_000,
                    max_output_tokens: 4096,
                    input_per_million: 150_000,
                    output_per_million: 600_000,
                    cached_per_million: 75_000,
                }],
            },
            token: clawplane_secrets::SecretString::from("model-token-for-tests".to_owned()),
        }
    }

    #[test]
    fn included_models_become_the_clawplane_provider_and_the_default_unless_the_user_chose() {
        let mut root = json!({});
        apply_models(&mut root, Some(&offer()));
        let provider = &root["models"]["providers"]["clawplane"];
        assert_eq!(provider["baseUrl"], "http://127.0.0.1:8081/v1");
        assert_eq!(provider["apiKey"], "model-token-for-tests");
        assert_eq!(provider["models"][0]["id"], "mini");
        assert_eq!(provider["models"][0]["cost"]["output"], 0.6);
        assert_eq!(
            root["agents"]["defaults"]["model"]["primary"],
            "clawplane/mini"
        );

        // The user's own choice is kept.
        let mut chose = json!({"agents": {"defaults": {"model": {"primary": "openai/gpt-5"}}}});
        apply_models(&mut chose, Some(&offer()));
        assert_eq!(
            chose["agents"]["defaults"]["model"]["primary"],
            "openai/gpt-5"
        );

        // Without included models both go, and nothing empty is left behind.
        apply_models(&mut root, None);
        assert!(root["models"]["providers"].get("clawplane").is_none());
        assert!(root["agents"]["defaults"]["model"].get("primary").is_none());
        let mut untouched = json!({"models": {"mode": "merge"}});
        apply_models(&mut untouched, None);
        assert_eq!(untouched, json!({"models": {"mode": "merge"}}));
        apply_models(&mut chose, None);
        assert_eq!(
            chose["agents"]["defaults"]["model"]["primary"],
            "openai/gpt-5"
        );
    }

    #[test]
    fn bind_modes_parse() {
        assert_eq!(BindMode::parse(" LAN ").unwrap(), BindMode::Lan);
        assert_eq!(BindMode::parse("").unwrap(), BindMode::Loopback);
        assert!(BindMode::parse("0.0.0.0").is_err());
    }
}
