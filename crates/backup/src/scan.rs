//! Walking the state directory: what is included, with metadata only (no file content is read).
//!
//! Left out:
//! - anything matching the exclude list ([`DEFAULT_EXCLUDES`]: `/tmp/` and `/cache/` at the top,
//!   `*.lock` anywhere). Patterns are a small gitignore subset: `*` and `?` wildcards; a leading
//!   `/` anchors the pattern at the state directory's top, otherwise it matches a name at any
//!   depth; a trailing `/` matches directories only.
//! - a SQLite database's `-wal`, `-shm` and `-journal` files (`X-wal` beside an `X`): the
//!   database itself is snapshotted with `VACUUM INTO`, which includes committed WAL content.
//! - sockets, FIFOs and devices (never opened, so a FIFO cannot block the walk), and names that
//!   are not UTF-8 (logged, since the manifest is JSON).
//! - regular files larger than [`crate::BackupOptions::max_file_bytes`] (logged): one huge file
//!   must not cost the instance its whole backup.
//!
//! The tree is the tenant's, so it is walked through directory handles (`beneath`):
//! each directory is opened `O_NOFOLLOW|O_DIRECTORY` from its parent's handle and its entries
//! are looked at with `fstatat(AT_SYMLINK_NOFOLLOW)`. Symlinks are recorded as links (their
//! target text, from `readlinkat`), never followed, at any depth; a symlink to a directory is
//! not walked into.

use std::{
    collections::HashSet,
    os::fd::{AsFd, BorrowedFd},
    path::{Path, PathBuf},
};

use rustix::{
    fs::{readlinkat, statat, AtFlags, Dir, FileType, Stat},
    io::Errno,
};

use crate::{
    beneath::{open_dir_at, Root},
    error::BackupError,
    manifest::{FingerprintItem, SourceStat},
};

/// The exclude list used when none is configured.
pub const DEFAULT_EXCLUDES: &[&str] = &["/tmp/", "/cache/", "*.lock"];

/// Suffixes of SQLite's side files, skipped when the main file is beside them.
pub(crate) const SIDECARS: &[&str] = &["-wal", "-shm", "-journal"];

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

/// Walks `root` and returns the included entries sorted by relative path. Regular files larger
/// than `max_file_bytes` are left out, with a warning.
pub(crate) fn scan(
    root: &Path,
    excludes: &Excludes,
    max_file_bytes: u64,
) -> Result<Vec<Scanned>, BackupError> {
    let root = Root::open(root).map_err(|_| BackupError::NoStateDir(root.into()))?;
    let mut walk = Walk {
        root: &root,
        excludes,
        max_file_bytes,
        out: Vec::new(),
    };
    walk.dir(root.fd.as_fd(), "", 0)?;
    let mut out = walk.out;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// One walk: each directory is read through a handle opened from its parent's handle, so a
/// directory swapped for a symlink is never entered. Only the current path's handles are open.
struct Walk<'a> {
    root: &'a Root,
    excludes: &'a Excludes,
    max_file_bytes: u64,
    out: Vec<Scanned>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: BorrowedFd<'_>, rel_dir: &str, depth: usize) -> Result<(), BackupError> {
        let names = self.read_dir_sorted(dir, rel_dir)?;
        let siblings: HashSet<&str> = names.iter().map(String::as_str).collect();
        for name in &names {
            if self.out.len() >= MAX_ENTRIES {
                return Err(BackupError::io(
                    "walk (too many entries in)",
                    &self.root.path,
                    std::io::Error::other(format!("more than {MAX_ENTRIES} entries")),
                ));
            }
            let rel = if rel_dir.is_empty() {
                name.clone()
            } else {
                format!("{rel_dir}/{name}")
            };
            let abs = self.root.path.join(&rel);
            let st = match statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Deleted between read_dir and stat: it is not part of the snapshot.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(BackupError::io("read the metadata of", abs, e.into())),
            };
            let file_type = FileType::from_raw_mode(st.st_mode);
            let is_dir = file_type == FileType::Directory;
            if self.excludes.matches(&rel, is_dir) || is_sidecar(name, &siblings) {
                continue;
            }
            let mode = st.st_mode & 0o7777;
            let mut stat = SourceStat::default();
            let kind = match file_type {
                FileType::Directory if depth + 1 >= MAX_DEPTH => {
                    tracing::warn!(path = %abs.display(), "backup: directory nesting too deep, skipped");
                    continue;
                }
                FileType::Directory => {
                    let Some(child) = open_dir_at(dir, name)
                        .map_err(|e| BackupError::io("open the directory", &abs, e))?
                    else {
                        tracing::warn!(path = %abs.display(), "backup: directory replaced during the scan, skipped");
                        continue;
                    };
                    self.push(rel.clone(), abs, Kind::Dir, mode, stat);
                    self.dir(child.as_fd(), &rel, depth + 1)?;
                    continue;
                }
                FileType::RegularFile => {
                    let size = u64::try_from(st.st_size).unwrap_or(0);
                    if size > self.max_file_bytes {
                        tracing::warn!(
                            path = %abs.display(), size, limit = self.max_file_bytes,
                            "backup: file larger than the per-file limit (BackupOptions::max_file_bytes), skipped"
                        );
                        continue;
                    }
                    stat = SourceStat {
                        size,
                        mtime_ns: mtime_ns(&st),
                        wal: wal_stat(dir, name),
                    };
                    Kind::File
                }
                FileType::Symlink => match readlinkat(dir, name.as_str(), Vec::new()) {
                    Ok(target) => match target.into_string() {
                        Ok(t) => Kind::Symlink(t),
                        Err(_) => {
                            tracing::warn!(path = %abs.display(), "backup: symlink target is not UTF-8, skipped");
                            continue;
                        }
                    },
                    // Deleted or replaced since the stat.
                    Err(Errno::NOENT | Errno::INVAL) => continue,
                    Err(e) => return Err(BackupError::io("read the symlink", abs, e.into())),
                },
                // Sockets, FIFOs, devices: never opened.
                _ => continue,
            };
            self.push(rel, abs, kind, mode, stat);
        }
        Ok(())
    }

    fn push(&mut self, rel: String, abs: PathBuf, kind: Kind, mode: u32, stat: SourceStat) {
        self.out.push(Scanned {
            rel,
            abs,
            kind,
            mode,
            stat,
        });
    }

    fn read_dir_sorted(
        &self,
        dir: BorrowedFd<'_>,
        rel_dir: &str,
    ) -> Result<Vec<String>, BackupError> {
        let path = self.root.path.join(rel_dir);
        let fail = |e: Errno| BackupError::io("read the directory", &path, e.into());
        let mut reader = Dir::read_from(dir).map_err(fail)?;
        let mut names = Vec::new();
        while let Some(item) = reader.read() {
            let name = item.map_err(fail)?.file_name().to_owned();
            match name.to_str() {
                Ok("." | "..") => {}
                Ok(name) => names.push(name.to_owned()),
                Err(_) => {
                    tracing::warn!(dir = %path.display(), name = ?name, "backup: file name is not UTF-8, skipped");
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

fn is_sidecar(name: &str, siblings: &HashSet<&str>) -> bool {
    SIDECARS.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|main| !main.is_empty() && siblings.contains(main))
    })
}

fn mtime_ns(st: &Stat) -> i64 {
    st.st_mtime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec as i64)
}

fn wal_stat(dir: BorrowedFd<'_>, db: &str) -> Option<(u64, i64)> {
    let st = statat(dir, format!("{db}-wal").as_str(), AtFlags::SYMLINK_NOFOLLOW).ok()?;
    (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
        .then(|| (u64::try_from(st.st_size).unwrap_or(0), mtime_ns(&st)))
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
        let names: HashSet<&str> = ["db.sqlite", "db.sqlite-wal", "my-journal"].into();
        assert!(is_sidecar("db.sqlite-wal", &names));
        assert!(!is_sidecar("my-journal", &names));
    }
}
