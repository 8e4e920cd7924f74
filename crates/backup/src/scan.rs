//! Walking the state directory: what is included, with metadata only (no file content is read).
//!
//! Left out:
//! - anything matching the exclude list ([`DEFAULT_EXCLUDES`]: `/tmp/` and `/cache/` at the top,
//!   `*.lock` anywhere). Patterns are a small gitignore subset: `*` and `?` wildcards; a leading
//!   `/` anchors the pattern at the state directory's top, otherwise it matches a name at any
//!   depth; a trailing `/` matches directories only.
//! - a SQLite database's `-wal`, `-shm` and `-journal` files (`X-wal` beside an `X`): the
//!   database itself is snapshotted with `VACUUM INTO`, which includes committed WAL content.
//! - sockets, FIFOs and devices, and names that are not UTF-8 (logged, since the manifest is JSON).
//!
//! Symlinks are recorded as links (their target text), never followed.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use crate::{
    error::BackupError,
    manifest::{FingerprintItem, SourceStat},
};

/// The exclude list used when none is configured.
pub const DEFAULT_EXCLUDES: &[&str] = &["/tmp/", "/cache/", "*.lock"];

/// Suffixes of SQLite's side files, skipped when the main file is beside them.
const SIDECARS: &[&str] = &["-wal", "-shm", "-journal"];

/// Bounds on the walk, so a pathological tree cannot run it forever.
const MAX_DEPTH: usize = 64;
const MAX_ENTRIES: usize = 2_000_000;

/// One included item, as found on disk.
#[derive(Clone, Debug)]
pub(crate) struct Scanned {
    pub(crate) rel: String,
    pub(crate) abs: PathBuf,
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) stat: SourceStat,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink(String),
}

impl Scanned {
    pub(crate) fn fingerprint_item(&self) -> FingerprintItem<'_> {
        let (kind, target) = match &self.kind {
            Kind::Dir => ("dir", None),
            Kind::File => ("file", None),
            Kind::Symlink(t) => ("symlink", Some(t.as_str())),
        };
        FingerprintItem {
            path: &self.rel,
            kind,
            mode: self.mode,
            source: self.stat,
            target,
        }
    }
}

/// A compiled exclude list.
#[derive(Clone, Debug)]
pub(crate) struct Excludes {
    patterns: Vec<Pattern>,
}

#[derive(Clone, Debug)]
struct Pattern {
    glob: String,
    anchored: bool,
    dir_only: bool,
}

impl Excludes {
    pub(crate) fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let patterns = patterns
            .iter()
            .map(|p| {
                let p = p.as_ref();
                let dir_only = p.ends_with('/');
                let p = p.trim_end_matches('/');
                let anchored = p.starts_with('/') || p.contains('/');
                Pattern {
                    glob: p.trim_start_matches('/').to_string(),
                    anchored,
                    dir_only,
                }
            })
            .filter(|p| !p.glob.is_empty())
            .collect();
        Self { patterns }
    }

    fn matches(&self, rel: &str, is_dir: bool) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        self.patterns
            .iter()
            .any(|p| (!p.dir_only || is_dir) && glob(&p.glob, if p.anchored { rel } else { name }))
    }
}

/// `*` matches any run of characters except `/`, `?` any one character except `/`.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matcher with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == t[ti] || (p[pi] == '?' && t[ti] != '/')) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star.filter(|_| t[mark] != '/') {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Walks `root` and returns the included entries sorted by relative path.
pub(crate) fn scan(root: &Path, excludes: &Excludes) -> Result<Vec<Scanned>, BackupError> {
    let meta = std::fs::metadata(root).map_err(|_| BackupError::NoStateDir(root.into()))?;
    if !meta.is_dir() {
        return Err(BackupError::NoStateDir(root.into()));
    }
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel_dir, depth)) = stack.pop() {
        let mut children = read_dir_sorted(&dir)?;
        let names: std::collections::HashSet<String> =
            children.iter().map(|(name, _)| name.clone()).collect();
        for (name, abs) in children.drain(..) {
            if out.len() >= MAX_ENTRIES {
                return Err(BackupError::io(
                    "walk (too many entries in)",
                    root,
                    std::io::Error::other(format!("more than {MAX_ENTRIES} entries")),
                ));
            }
            let rel = if rel_dir.is_empty() {
                name.clone()
            } else {
                format!("{rel_dir}/{name}")
            };
            let meta = match std::fs::symlink_metadata(&abs) {
                Ok(m) => m,
                // Deleted between read_dir and stat: it is not part of the snapshot.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BackupError::io("read the metadata of", abs, e)),
            };
            let ft = meta.file_type();
            if excludes.matches(&rel, ft.is_dir()) || is_sidecar(&name, &names) {
                continue;
            }
            let mode = meta.permissions().mode() & 0o7777;
            let kind = if ft.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    tracing::warn!(path = %abs.display(), "backup: directory nesting too deep, skipped");
                    continue;
                }
                stack.push((abs.clone(), rel.clone(), depth + 1));
                Kind::Dir
            } else if ft.is_file() {
                Kind::File
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&abs)
                    .map_err(|e| BackupError::io("read the symlink", &abs, e))?;
                match target.to_str() {
                    Some(t) => Kind::Symlink(t.to_string()),
                    None => {
                        tracing::warn!(path = %abs.display(), "backup: symlink target is not UTF-8, skipped");
                        continue;
                    }
                }
            } else {
                continue;
            };
            let stat = match kind {
                Kind::File => SourceStat {
                    size: meta.len(),
                    mtime_ns: mtime_ns(&meta),
                    wal: wal_stat(&abs),
                },
                _ => SourceStat::default(),
            };
            out.push(Scanned {
                rel,
                abs,
                kind,
                mode,
                stat,
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(String, PathBuf)>, BackupError> {
    let mut children = Vec::new();
    let reader =
        std::fs::read_dir(dir).map_err(|e| BackupError::io("read the directory", dir, e))?;
    for item in reader {
        let item = item.map_err(|e| BackupError::io("read the directory", dir, e))?;
        match item.file_name().into_string() {
            Ok(name) => children.push((name, item.path())),
            Err(_) => {
                tracing::warn!(path = %item.path().display(), "backup: file name is not UTF-8, skipped");
            }
        }
    }
    children.sort();
    Ok(children)
}

fn is_sidecar(name: &str, siblings: &std::collections::HashSet<String>) -> bool {
    SIDECARS.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|main| !main.is_empty() && siblings.contains(main))
    })
}

pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

fn wal_stat(db: &Path) -> Option<(u64, i64)> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let meta = std::fs::symlink_metadata(PathBuf::from(wal)).ok()?;
    meta.is_file().then(|| (meta.len(), mtime_ns(&meta)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell_within_one_path_segment() {
        assert!(glob("*.lock", "gateway.abc.lock"));
        assert!(!glob("*.lock", "gateway.lock.sqlite"));
        assert!(glob("tmp", "tmp"));
        assert!(!glob("a*", "a/b"));
        assert!(glob("a/*/c", "a/b/c"));
        assert!(glob("?x", "ax"));
        assert!(glob("*", ""));
    }

    #[test]
    fn default_excludes_are_anchored_or_by_name() {
        let ex = Excludes::new(DEFAULT_EXCLUDES);
        assert!(ex.matches("tmp", true));
        assert!(!ex.matches("tmp", false));
        assert!(!ex.matches("workspace/tmp", true));
        assert!(ex.matches("cache", true));
        assert!(ex.matches("workspace/x.lock", false));
        assert!(!ex.matches("state/openclaw.sqlite", false));
    }

    #[test]
    fn sidecars_are_skipped_only_beside_their_main_file() {
        let names: std::collections::HashSet<String> = ["db.sqlite", "db.sqlite-wal", "my-journal"]
            .map(String::from)
            .into();
        assert!(is_sidecar("db.sqlite-wal", &names));
        assert!(!is_sidecar("my-journal", &names));
    }
}
