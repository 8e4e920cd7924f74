//! Restoring a backup into a fresh directory, and swapping a restored tree in place of a state
//! directory.
//!
//! Safety rules, checked before anything is written:
//! - every path is relative and made of plain components (no `/` at the start, no `.`, `..` or
//!   empty components), appears once, and does not sit inside an entry that is a file or a
//!   symlink;
//! - every blob name is a SHA-256 in hex.
//!
//! While writing: directories are created one component at a time and must be real directories;
//! files are created with `O_CREAT|O_EXCL` (which never follows a symlink); symlinks are made
//! last, so nothing is ever written through one; each file's SHA-256 and size are checked
//! against the manifest before it counts as restored. Modes are set after the content (file
//! modes as each file completes, directory modes at the end, deepest first) so that a `0500`
//! directory does not block its own restore. A failed restore removes what it wrote.

use std::{
    collections::HashSet,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use futures::{stream, StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{
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
            Entry::Symlink { .. } => {
                leaves.insert(path);
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

/// Creates `root/rel` one component at a time, refusing anything that is not a real directory.
fn ensure_dir(root: &Path, rel: &str) -> Result<(), BackupError> {
    let mut path = root.to_path_buf();
    for component in rel.split('/').filter(|c| !c.is_empty()) {
        path.push(component);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(BackupError::io(
                    "create the directory",
                    path,
                    std::io::Error::other("a file or symlink is in the way"),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(|e| BackupError::io("create the directory", &path, e))?,
            Err(e) => return Err(BackupError::io("inspect", path, e)),
        }
    }
    Ok(())
}

async fn restore_into(
    inner: &Inner,
    m: &Manifest,
    root: &Path,
    concurrency: usize,
) -> Result<RestoreReport, BackupError> {
    // Directories first (every listed one, and every file's and symlink's parent).
    let (dirs_root, entries) = (root.to_path_buf(), m.entries.clone());
    blocking(move || {
        for e in &entries {
            match e {
                Entry::Dir { path, .. } => ensure_dir(&dirs_root, path)?,
                other => {
                    let parent = other.path().rsplit_once('/').map_or("", |(p, _)| p);
                    ensure_dir(&dirs_root, parent)?;
                }
            }
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
    stream::iter(files)
        .map(|(path, mode, size, sha)| async move {
            restore_file(inner, id, root, &path, mode, size, &sha).await
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<()>()
        .await?;

    let (links_root, entries) = (root.to_path_buf(), m.entries.clone());
    blocking(move || {
        for e in &entries {
            if let Entry::Symlink { path, target } = e {
                let at = links_root.join(path);
                std::os::unix::fs::symlink(target, &at)
                    .map_err(|e| BackupError::io("create the symlink", at, e))?;
            }
        }
        for e in entries.iter().rev() {
            if let Entry::Dir { path, mode } = e {
                let at = links_root.join(path);
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(*mode))
                    .map_err(|e| BackupError::io("set the mode of", at, e))?;
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

/// Streams one blob into a new file, checking its hash and size before setting its mode.
async fn restore_file(
    inner: &Inner,
    id: &str,
    root: &Path,
    rel: &str,
    mode: u32,
    size: u64,
    sha256: &str,
) -> Result<(), BackupError> {
    let at = root.join(rel);
    let write_err = |e| BackupError::io("write the restored file", at.clone(), e);
    let mut chunks = inner
        .get_stream(&inner.blob_key(sha256))
        .await?
        .ok_or_else(|| BackupError::Corrupt {
            id: id.to_string(),
            reason: format!("the blob {sha256} of {rel:?} is missing"),
        })?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&at)
        .await
        .map_err(write_err)?;
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
    tokio::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(write_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
