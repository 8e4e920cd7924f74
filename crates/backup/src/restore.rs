//! Restoring a backup into a fresh directory, and swapping a restored tree in place of a state
//! directory.
//!
//! Safety rules, checked before anything is written:
//! - every path is relative and made of plain components (no `/` at the start, no `.`, `..` or
//!   empty components), appears once, and does not sit inside an entry that is a file or a
//!   symlink;
//! - every blob name is a SHA-256 in hex; every symlink target is non-empty plain text.
//!
//! While writing, everything goes through directory handles, starting from the restore
//! directory opened `O_NOFOLLOW`: each directory is created with `mkdirat` and entered with
//! `openat(O_DIRECTORY|O_NOFOLLOW)`, so a symlink in the way (one in the target, or a race) is
//! refused rather than followed; files are created with `O_CREAT|O_EXCL|O_NOFOLLOW` (never
//! through a symlink, never over anything); symlinks are made last with `symlinkat`, as links,
//! so nothing is ever written through one; modes are set with `fchmod` on the open handle, and
//! are permission bits only (a restore runs as root: no setuid, setgid or sticky bit comes
//! back). Only directories, regular files and symlinks are ever created. Each file's SHA-256
//! and size are checked against the manifest before it counts as restored. Modes are set
//! after the content (file modes as each file completes, directory modes at the end, deepest
//! first) so that a `0500` directory does not block its own restore. A failed restore removes
//! what it wrote.
//!
//! [`BackupStore::restore_and_swap`] restores into a new directory beside the state directory
//! (in its parent, which is not the tenant's), so no process of the tenant can reach the tree
//! being written; the old tree is removed with `remove_dir_all`, which does not follow links.

use std::{
    collections::HashSet,
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::fs::{DirBuilderExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use futures::{stream, StreamExt, TryStreamExt};
use rustix::{
    fs::{fchmod, mkdirat, openat, symlinkat, Mode, OFlags},
    io::Errno,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{
    beneath::{open_dir_at, split, Root},
    error::BackupError,
    manifest::{self, Entry, Manifest},
    snapshot::blocking,
    store::{BackupStore, Inner},
};

/// The outcome of a restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// The backup that was restored.
    pub backup_id: String,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl BackupStore {
    /// Restores backup `backup_id` (the latest when `None`) into `target_dir`, which must not
    /// exist or be empty. The directory is created `0700`.
    pub async fn restore(
        &self,
        backup_id: Option<&str>,
        target_dir: &Path,
    ) -> Result<RestoreReport, BackupError> {
        let manifest = self.resolve(backup_id).await?;
        check_entries(&manifest)?;
        let created = prepare_target(target_dir)?;
        let result =
            restore_into(&self.inner, &manifest, target_dir, self.options.concurrency).await;
        if result.is_err() {
            clean_up(target_dir, created);
        }
        result
    }

    /// Restores into a fresh sibling of `state_dir`, then swaps it in with two renames
    /// (`state_dir` -> `.<name>.replaced-*`, fresh -> `state_dir`) and only then removes the old
    /// tree. If the second rename fails the first is undone. The gateway must be stopped.
    pub async fn restore_and_swap(
        &self,
        backup_id: Option<&str>,
        state_dir: &Path,
    ) -> Result<RestoreReport, BackupError> {
        let (parent, name) = match (state_dir.parent(), state_dir.file_name()) {
            (Some(p), Some(n)) if !p.as_os_str().is_empty() => (p, n.to_string_lossy()),
            _ => {
                return Err(BackupError::io(
                    "restore over",
                    state_dir,
                    std::io::Error::other("the state directory needs a parent directory"),
                ))
            }
        };
        let suffix = format!("{:08x}", rand::random::<u32>());
        let fresh = parent.join(format!(".{name}.restore-{suffix}"));
        let report = self.restore(backup_id, &fresh).await?;
        let swap = || -> Result<Option<PathBuf>, BackupError> {
            if std::fs::symlink_metadata(state_dir).is_err() {
                std::fs::rename(&fresh, state_dir)
                    .map_err(|e| BackupError::io("move the restored tree to", state_dir, e))?;
                return Ok(None);
            }
            let old = parent.join(format!(".{name}.replaced-{suffix}"));
            std::fs::rename(state_dir, &old)
                .map_err(|e| BackupError::io("move aside", state_dir, e))?;
            if let Err(e) = std::fs::rename(&fresh, state_dir) {
                if let Err(undo) = std::fs::rename(&old, state_dir) {
                    tracing::error!(error = %undo, old = %old.display(), "restore: could not move the old state back");
                }
                return Err(BackupError::io("move the restored tree to", state_dir, e));
            }
            Ok(Some(old))
        };
        let old = match swap() {
            Ok(old) => old,
            Err(e) => {
                clean_up(&fresh, true);
                return Err(e);
            }
        };
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
        if let Some(old) = old {
            if let Err(e) = std::fs::remove_dir_all(&old) {
                tracing::warn!(error = %e, path = %old.display(), "restore: could not remove the replaced state");
            }
        }
        Ok(report)
    }

    async fn resolve(&self, backup_id: Option<&str>) -> Result<Manifest, BackupError> {
        match backup_id {
            Some(id) if manifest::valid_id(id) => self.inner.manifest(id).await,
            Some(id) => Err(BackupError::InvalidName {
                what: "backup id",
                value: id.to_string(),
                rule: "an id as `list` shows it, e.g. 20261124T061500.123Z-1a2b3c4d",
            }),
            None => self
                .inner
                .latest_manifest()
                .await?
                .ok_or_else(|| BackupError::NoBackups {
                    store: self.inner.url.clone(),
                    instance: self.inner.instance.clone(),
                }),
        }
    }
}

/// Refuses manifests whose entries could write outside the restore directory.
pub(crate) fn check_entries(m: &Manifest) -> Result<(), BackupError> {
    let unsafe_path = |path: &str, reason| BackupError::UnsafePath {
        id: m.id.clone(),
        path: path.to_string(),
        reason,
    };
    let mut seen = HashSet::new();
    let mut leaves = HashSet::new();
    for e in &m.entries {
        let path = e.path();
        if let Err(reason) = safe_relative(path) {
            return Err(unsafe_path(path, reason));
        }
        if !seen.insert(path) {
            return Err(unsafe_path(path, "listed twice"));
        }
        match e {
            Entry::Dir { .. } => {}
            Entry::File { sha256, .. } => {
                leaves.insert(path);
                if sha256.len() != 64
                    || !sha256
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                {
                    return Err(BackupError::Corrupt {
                        id: m.id.clone(),
                        reason: format!("{path:?} names the invalid blob {sha256:?}"),
                    });
                }
            }
            Entry::Symlink { target, .. } => {
                leaves.insert(path);
                if target.is_empty() || target.len() > 4096 || target.contains('\0') {
                    return Err(unsafe_path(path, "invalid symlink target"));
                }
            }
        }
    }
    for e in &m.entries {
        let path = e.path();
        let mut ancestors = path.match_indices('/').map(|(i, _)| &path[..i]);
        if ancestors.any(|a| leaves.contains(a)) {
            return Err(unsafe_path(path, "it lies inside a file or symlink entry"));
        }
    }
    Ok(())
}

fn safe_relative(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.len() > 4096 || path.contains('\0') || path.contains('\\') {
        return Err("invalid characters or length");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("empty path component"),
            "." | ".." => return Err("'.' or '..' component"),
            c if c.len() > 255 => return Err("path component too long"),
            _ => {}
        }
    }
    Ok(())
}

/// Makes sure `dir` is a new or empty directory; returns whether it was created.
fn prepare_target(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mut children =
                std::fs::read_dir(dir).map_err(|e| BackupError::io("read", dir, e))?;
            match children.next() {
                None => Ok(false),
                Some(_) => Err(BackupError::TargetNotEmpty(dir.to_path_buf())),
            }
        }
        Ok(_) => Err(BackupError::TargetNotEmpty(dir.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| BackupError::io("create the restore directory", dir, e))?;
            Ok(true)
        }
        Err(e) => Err(BackupError::io("inspect the restore directory", dir, e)),
    }
}

fn clean_up(dir: &Path, created: bool) {
    let result = if created {
        std::fs::remove_dir_all(dir)
    } else {
        std::fs::read_dir(dir).and_then(|children| {
            children.into_iter().try_for_each(|c| {
                let path = c?.path();
                match std::fs::symlink_metadata(&path)?.is_dir() {
                    true => std::fs::remove_dir_all(&path),
                    false => std::fs::remove_file(&path),
                }
            })
        })
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, path = %dir.display(), "restore: could not clean up after a failed restore");
    }
}

/// Opens `root/rel` as a directory, creating what is missing one component at a time and
/// refusing anything that is not a real directory (a symlink included).
fn ensure_dir(root: &Root, rel: &str) -> Result<OwnedFd, BackupError> {
    let in_the_way = |at: PathBuf| {
        BackupError::io(
            "create the directory",
            at,
            std::io::Error::other("a file or symlink is in the way"),
        )
    };
    let mut dir = root
        .dir("")
        .map_err(|e| BackupError::io("open", &root.path, e))?
        .ok_or_else(|| in_the_way(root.path.clone()))?;
    let mut at = root.path.clone();
    for name in rel.split('/').filter(|c| !c.is_empty()) {
        at.push(name);
        let fail = |e: std::io::Error| BackupError::io("create the directory", &at, e);
        if let Err(e) = mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
            if e != Errno::EXIST {
                return Err(fail(e.into()));
            }
        }
        dir = open_dir_at(dir.as_fd(), name)
            .map_err(fail)?
            .ok_or_else(|| in_the_way(at.clone()))?;
    }
    Ok(dir)
}

/// The directory `rel` of the restore, which `ensure_dir` made.
fn restored_dir(root: &Root, rel: &str) -> Result<OwnedFd, BackupError> {
    root.dir(rel)
        .map_err(|e| BackupError::io("open", root.path.join(rel), e))?
        .ok_or_else(|| {
            BackupError::io(
                "open",
                root.path.join(rel),
                std::io::Error::other("the restored directory was replaced"),
            )
        })
}

/// Permission bits only: a restore runs as root, and must not hand out setuid files.
fn permission_bits(mode: u32) -> Mode {
    Mode::from_raw_mode(mode & 0o777)
}

async fn restore_into(
    inner: &Inner,
    m: &Manifest,
    target: &Path,
    concurrency: usize,
) -> Result<RestoreReport, BackupError> {
    let dir = target.to_path_buf();
    let root = blocking(move || Root::open(&dir).map_err(|e| BackupError::io("open", dir, e)))
        .await
        .map(Arc::new)?;

    // Directories first (every listed one, and every file's and symlink's parent).
    let (dirs_root, entries) = (root.clone(), m.entries.clone());
    blocking(move || {
        for e in &entries {
            match e {
                Entry::Dir { path, .. } => ensure_dir(&dirs_root, path)?,
                other => ensure_dir(&dirs_root, split(other.path()).0)?,
            };
        }
        Ok(())
    })
    .await?;

    // Owned items: a stream of futures that borrow from their items would not
    // be provably `Send` for every lifetime, and callers spawn these futures.
    let files: Vec<(String, u32, u64, String)> = m
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::File {
                path,
                mode,
                size,
                sha256,
                ..
            } => Some((path.clone(), *mode, *size, sha256.clone())),
            _ => None,
        })
        .collect();
    let (count, bytes) = (files.len() as u64, files.iter().map(|f| f.2).sum());
    let id = m.id.as_str();
    let root_ref = &root;
    stream::iter(files)
        .map(|(path, mode, size, sha)| async move {
            restore_file(inner, id, root_ref, &path, mode, size, &sha).await
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<()>()
        .await?;

    let (links_root, entries) = (root.clone(), m.entries.clone());
    blocking(move || {
        for e in &entries {
            if let Entry::Symlink { path, target } = e {
                let (parent, name) = split(path);
                let dir = restored_dir(&links_root, parent)?;
                symlinkat(target.as_str(), &dir, name).map_err(|e| {
                    BackupError::io("create the symlink", links_root.path.join(path), e.into())
                })?;
            }
        }
        for e in entries.iter().rev() {
            if let Entry::Dir { path, mode } = e {
                let dir = restored_dir(&links_root, path)?;
                fchmod(&dir, permission_bits(*mode)).map_err(|e| {
                    BackupError::io("set the mode of", links_root.path.join(path), e.into())
                })?;
            }
        }
        Ok(())
    })
    .await?;
    Ok(RestoreReport {
        backup_id: m.id.clone(),
        files: count,
        bytes,
    })
}

/// Creates the new, empty file `rel` (`O_EXCL|O_NOFOLLOW`, in a directory reached by handles).
fn create_file(root: &Root, rel: &str) -> Result<std::fs::File, BackupError> {
    let (parent, name) = split(rel);
    let dir = restored_dir(root, parent)?;
    create_file_at(dir.as_fd(), name)
        .map_err(|e| BackupError::io("write the restored file", root.path.join(rel), e))
}

fn create_file_at(dir: BorrowedFd<'_>, name: &str) -> std::io::Result<std::fs::File> {
    let flags = OFlags::WRONLY
        .union(OFlags::CREATE)
        .union(OFlags::EXCL)
        .union(OFlags::NOFOLLOW)
        .union(OFlags::CLOEXEC);
    Ok(openat(dir, name, flags, Mode::from_raw_mode(0o600))?.into())
}

/// Streams one blob into a new file, checking its hash and size before setting its mode.
async fn restore_file(
    inner: &Inner,
    id: &str,
    root: &Arc<Root>,
    rel: &str,
    mode: u32,
    size: u64,
    sha256: &str,
) -> Result<(), BackupError> {
    let at = root.path.join(rel);
    let write_err = |e| BackupError::io("write the restored file", at.clone(), e);
    let mut chunks = inner
        .get_stream(&inner.blob_key(sha256))
        .await?
        .ok_or_else(|| BackupError::Corrupt {
            id: id.to_string(),
            reason: format!("the blob {sha256} of {rel:?} is missing"),
        })?;
    let (r, name) = (root.clone(), rel.to_owned());
    let mut file = tokio::fs::File::from_std(blocking(move || create_file(&r, &name)).await?);
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        if written > size {
            break;
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(write_err)?;
    }
    if written != size || hex::encode(hasher.finalize()) != sha256 {
        return Err(BackupError::Corrupt {
            id: id.to_string(),
            reason: format!("the content of {rel:?} does not match its SHA-256 {sha256}"),
        });
    }
    file.sync_all().await.map_err(write_err)?;
    // `fchmod` on the open handle, never a path.
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
        .await
        .map_err(write_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// Symlinks already in the restore directory (planted, or a race) are never written through.
    #[test]
    fn directories_and_files_are_never_created_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let (target, host) = (tmp.path().join("target"), tmp.path().join("host"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("f"), "host").unwrap();
        symlink(&host, target.join("d")).unwrap();
        symlink(host.join("f"), target.join("f")).unwrap();
        symlink(host.join("new"), target.join("dangling")).unwrap();
        let root = Root::open(&target).unwrap();

        let err = ensure_dir(&root, "d/sub").unwrap_err();
        assert!(err.to_string().contains("in the way"), "{err}");
        assert!(create_file(&root, "d/x").is_err());
        for name in ["f", "dangling"] {
            let dir = root.dir("").unwrap().unwrap();
            assert!(create_file_at(dir.as_fd(), name).is_err(), "{name}");
        }
        assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "host");
        let host_names = std::fs::read_dir(&host).unwrap().count();
        assert_eq!(host_names, 1, "nothing was created in the host directory");
    }

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert!(safe_relative("state/openclaw.sqlite").is_ok());
        assert!(safe_relative("..hidden").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../escape",
            "a/../../b",
            "a//b",
            "./a",
            "a/",
            "a\\..\\b",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }
}
