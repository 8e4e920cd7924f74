//! [`BackupStore`]: one instance's backups under one target, and the backup operation itself.
//!
//! Object layout under the target's prefix:
//!
//! ```text
//! <instance>/FORMAT                   "clawplane-backup 1", rewritten by `open` to prove writes work
//! <instance>/blobs/ab/abcdef...       file contents, named by their SHA-256, written once
//! <instance>/manifests/<id>.json      one per backup, written after all of its blobs
//! ```
//!
//! A backup runs in two phases: the snapshot (scan, `VACUUM INTO`, copies into a private
//! staging directory beside the state directory; bracketed by the [`Quiesce`] hook), then the
//! upload of the blobs the store lacks, then the manifest. [`BackupReport::bytes_uploaded`]
//! counts blob bytes only; the manifest's size is [`BackupReport::manifest_bytes`].
//!
//! Memory stays bounded whatever the file sizes: snapshots copy in 256 KiB chunks, and each of
//! the `concurrency` (default 4) uploads holds at most one 5 MiB object or, for larger files,
//! a 5 MiB part being filled plus two in flight: about 60 MiB in the worst case.
//!
//! Backups and prunes of one `BackupStore` (and its clones) are serialised by a lock. Two
//! processes must not back up and prune the same instance at the same time: a prune could
//! delete a blob that the other's backup has just found present.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;

pub(crate) use crate::objects::Inner;
use crate::{
    error::{BackupError, Redactor},
    manifest::{self, BackupSummary, Entry, Manifest},
    scan::{self, Excludes},
    snapshot,
    target::BackupTarget,
    valid_key_segment, Quiesce,
};

/// Tunables of a [`BackupStore`]; `Default` is what the runtime should use.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// Exclude patterns (see [`crate::DEFAULT_EXCLUDES`] for the syntax and the defaults).
    pub excludes: Vec<String>,
    /// Files snapshotted, and blobs uploaded or downloaded, at once.
    pub concurrency: usize,
    /// Where the staging directory is created; the state directory's parent when `None`
    /// (same filesystem, and not a RAM-backed `/tmp`).
    pub staging_parent: Option<PathBuf>,
    /// A regular file larger than this (default 2 GiB) is left out of the backup, with a
    /// warning: the tenant's one huge file must not cost it every other file's backup.
    pub max_file_bytes: u64,
    /// A state directory whose included files add up to more than this (default 20 GiB) is not
    /// backed up at all: the backup fails with [`BackupError::TooLarge`], since leaving out
    /// arbitrary files would make a backup that looks complete and is not.
    pub max_total_bytes: u64,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            excludes: scan::DEFAULT_EXCLUDES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            concurrency: 4,
            staging_parent: None,
            max_file_bytes: 2 << 30,
            max_total_bytes: 20 << 30,
        }
    }
}

/// The outcome of one backup.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    /// The backup that was written.
    pub backup: BackupSummary,
    /// Blob bytes uploaded (the manifest is not counted: see `manifest_bytes`).
    pub bytes_uploaded: u64,
    /// Distinct blobs uploaded.
    pub blobs_uploaded: u64,
    /// Distinct blobs the backup references that the store already had.
    pub blobs_reused: u64,
    /// Size of the manifest written.
    pub manifest_bytes: u64,
}

/// One instance's backups in one store. Cheap to clone; clones share the lock.
#[derive(Clone, Debug)]
pub struct BackupStore {
    pub(crate) inner: Arc<Inner>,
    pub(crate) options: Arc<BackupOptions>,
}

impl BackupStore {
    /// Opens the store for `instance_id` and proves it is reachable and writable by writing
    /// the small `FORMAT` object.
    pub async fn open(target: &BackupTarget, instance_id: &str) -> Result<Self, BackupError> {
        let connected = target.connect()?;
        Self::build(
            connected.store,
            target.to_string(),
            &connected.prefix,
            instance_id,
            connected.redactor,
        )
        .await
    }

    /// Opens a store over any `object_store` client (another backend, or a test double).
    /// `url` names it in messages.
    pub async fn from_object_store(
        store: Arc<dyn ObjectStore>,
        url: impl Into<String>,
        instance_id: &str,
    ) -> Result<Self, BackupError> {
        Self::build(store, url.into(), "", instance_id, Redactor::default()).await
    }

    async fn build(
        store: Arc<dyn ObjectStore>,
        url: String,
        prefix: &str,
        instance_id: &str,
        redactor: Redactor,
    ) -> Result<Self, BackupError> {
        if !valid_key_segment(instance_id) || instance_id.len() > 128 {
            return Err(BackupError::InvalidName {
                what: "instance id",
                value: instance_id.to_string(),
                rule: "1-128 letters, digits, '.', '_' or '-', and not '.' or '..'",
            });
        }
        let root = if prefix.is_empty() {
            instance_id.to_string()
        } else {
            format!("{prefix}/{instance_id}")
        };
        let this = Self {
            inner: Arc::new(Inner {
                store,
                url,
                instance: instance_id.to_string(),
                root,
                redactor,
                lock: tokio::sync::Mutex::new(()),
            }),
            options: Arc::new(BackupOptions::default()),
        };
        let marker = this.inner.key("FORMAT");
        this.inner
            .store
            .put(&marker, PutPayload::from_static(b"clawplane-backup 1\n"))
            .await
            .map_err(|e| BackupError::Unreachable {
                store: this.inner.url.clone(),
                message: this.inner.redactor.clean_error(&e),
            })?;
        Ok(this)
    }

    /// The same store with other options.
    pub fn with_options(mut self, options: BackupOptions) -> Self {
        self.options = Arc::new(options);
        self
    }

    /// Backs up `state_dir`. `trigger` says why: `manual`, `scheduled`, `before-stop`,
    /// `before-restart` (any lowercase word of letters, digits and `-` is accepted).
    pub async fn backup(
        &self,
        state_dir: &Path,
        trigger: &str,
    ) -> Result<BackupReport, BackupError> {
        self.backup_with(state_dir, trigger, None).await
    }

    /// [`backup`](Self::backup), with `quiesce` suspending the gateway for the snapshot phase
    /// only (not the upload). `resume` runs whenever `suspend` succeeded, even if the snapshot
    /// failed; do not drop this future half-way (e.g. under a timeout) or resume is skipped.
    pub async fn backup_with(
        &self,
        state_dir: &Path,
        trigger: &str,
        quiesce: Option<&dyn Quiesce>,
    ) -> Result<BackupReport, BackupError> {
        validate_trigger(trigger)?;
        let _guard = self.inner.lock.lock().await;
        let previous = match self.inner.latest_manifest().await {
            Ok(m) => m,
            // A damaged latest manifest must not block new backups: hash everything again.
            Err(e @ BackupError::Corrupt { .. }) => {
                tracing::warn!(error = %e, "backup: ignoring the damaged latest manifest");
                None
            }
            Err(e) => return Err(e),
        };
        let staging = self.staging_dir(state_dir)?;
        let started_at = chrono::Utc::now();

        if let Some(q) = quiesce {
            q.suspend().await.map_err(|message| BackupError::Quiesce {
                action: "suspended",
                message,
            })?;
        }
        let snapshot = self
            .take_snapshot(state_dir, previous.as_ref(), staging.path())
            .await;
        if let Some(q) = quiesce {
            if let Err(message) = q.resume().await {
                if let Err(e) = &snapshot {
                    tracing::error!(error = %e, "backup: snapshot failed, then resume failed too");
                }
                return Err(BackupError::Quiesce {
                    action: "resumed",
                    message,
                });
            }
        }
        let (fingerprint, prepared) = snapshot?;

        let (blobs_uploaded, bytes_uploaded) = self.upload_blobs(&prepared).await?;
        let entries: Vec<Entry> = prepared.into_iter().map(|p| p.entry).collect();
        let (files, bytes, distinct) = totals(&entries);
        let now = chrono::Utc::now();
        let manifest = Manifest {
            format: manifest::FORMAT,
            id: manifest::new_id(now, previous.as_ref().map(|m| m.id.as_str())),
            instance: self.inner.instance.clone(),
            created_at: now,
            started_at,
            trigger: trigger.to_string(),
            clawplane_version: env!("CARGO_PKG_VERSION").to_string(),
            fingerprint,
            files,
            bytes,
            entries,
        };
        let body = serde_json::to_vec(&manifest).map_err(|e| BackupError::Corrupt {
            id: manifest.id.clone(),
            reason: format!("cannot encode the manifest: {e}"),
        })?;
        let manifest_bytes = body.len() as u64;
        let key = self.inner.manifest_key(&manifest.id);
        self.inner.put(&key, Bytes::from(body)).await?;
        drop(staging);
        tracing::info!(
            instance = %self.inner.instance, id = %manifest.id, trigger, files, bytes,
            bytes_uploaded, blobs_uploaded, "backup written"
        );
        Ok(BackupReport {
            backup: manifest.summary(),
            bytes_uploaded,
            blobs_uploaded,
            blobs_reused: distinct.saturating_sub(blobs_uploaded),
            manifest_bytes,
        })
    }

    async fn take_snapshot(
        &self,
        state_dir: &Path,
        previous: Option<&Manifest>,
        staging: &Path,
    ) -> Result<(String, Vec<snapshot::Prepared>), BackupError> {
        let scanned = self.scan(state_dir).await?;
        let total: u64 = scanned.iter().map(|s| s.stat.size).sum();
        if total > self.options.max_total_bytes {
            return Err(BackupError::TooLarge {
                path: state_dir.to_path_buf(),
                bytes: total,
                limit: self.options.max_total_bytes,
            });
        }
        let prepared = snapshot::snapshot(
            state_dir,
            &scanned,
            previous,
            staging,
            self.options.concurrency,
            self.options.max_file_bytes,
        )
        .await?;
        // Entries that changed under the snapshot were left out: so are they from the
        // fingerprint, so that `has_changed` sees them again.
        let kept: std::collections::HashSet<&str> =
            prepared.iter().map(|p| p.entry.path()).collect();
        let fingerprint = manifest::fingerprint(
            scanned
                .iter()
                .filter(|s| kept.contains(s.rel.as_str()))
                .map(|s| s.fingerprint_item()),
        );
        Ok((fingerprint, prepared))
    }

    pub(crate) async fn scan(&self, state_dir: &Path) -> Result<Vec<scan::Scanned>, BackupError> {
        let excludes = Excludes::new(&self.options.excludes);
        let (dir, max_file_bytes) = (state_dir.to_path_buf(), self.options.max_file_bytes);
        snapshot::blocking(move || scan::scan(&dir, &excludes, max_file_bytes)).await
    }

    fn staging_dir(&self, state_dir: &Path) -> Result<tempfile::TempDir, BackupError> {
        let parent = match &self.options.staging_parent {
            Some(p) => p.clone(),
            None => state_dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        tempfile::Builder::new()
            .prefix(".clawplane-backup-staging-")
            .tempdir_in(&parent)
            .map_err(|e| BackupError::io("create a staging directory in", parent, e))
    }

    /// Uploads each distinct staged blob the store does not have yet.
    async fn upload_blobs(
        &self,
        prepared: &[snapshot::Prepared],
    ) -> Result<(u64, u64), BackupError> {
        // Owned items, so the futures below are `Send` for callers that spawn them.
        let mut staged: BTreeMap<String, (std::path::PathBuf, u64)> = BTreeMap::new();
        for p in prepared {
            if let (Entry::File { sha256, size, .. }, Some(file)) = (&p.entry, &p.staged) {
                staged
                    .entry(sha256.clone())
                    .or_insert((file.clone(), *size));
            }
        }
        let results: Vec<Option<u64>> = stream::iter(staged)
            .map(|(sha, (file, size))| async move {
                let key = self.inner.blob_key(&sha);
                if self.inner.exists(&key).await? {
                    return Ok(None);
                }
                self.inner.upload_file(&key, &file, size).await?;
                Ok::<_, BackupError>(Some(size))
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .try_collect()
            .await?;
        let uploaded: Vec<u64> = results.into_iter().flatten().collect();
        Ok((uploaded.len() as u64, uploaded.iter().sum()))
    }

    /// Every backup, newest first.
    pub async fn list(&self) -> Result<Vec<BackupSummary>, BackupError> {
        let ids = self.inner.manifest_ids().await?;
        let inner = &self.inner;
        stream::iter(ids.into_iter().rev())
            .map(|id| async move { Ok::<_, BackupError>(inner.manifest(&id).await?.summary()) })
            .buffered(8)
            .try_collect()
            .await
    }

    /// The newest backup, read from the store (so it survives restarts of the caller).
    pub async fn latest(&self) -> Result<Option<BackupSummary>, BackupError> {
        Ok(self.inner.latest_manifest().await?.map(|m| m.summary()))
    }

    /// Whether `state_dir` differs from the latest backup, judged by metadata only: the
    /// fingerprint of every included entry's path, kind, mode, size and mtime (and each
    /// database's `-wal` size and mtime). `true` when there is no backup yet.
    pub async fn has_changed(&self, state_dir: &Path) -> Result<bool, BackupError> {
        let Some(latest) = self.inner.latest_manifest().await? else {
            return Ok(true);
        };
        let scanned = self.scan(state_dir).await?;
        let now = manifest::fingerprint(scanned.iter().map(|s| s.fingerprint_item()));
        Ok(now != latest.fingerprint)
    }
}

/// Files, bytes and distinct blobs of a snapshot.
fn totals(entries: &[Entry]) -> (u64, u64, u64) {
    let mut distinct = std::collections::HashSet::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    for e in entries {
        if let Entry::File { size, sha256, .. } = e {
            files += 1;
            bytes += size;
            distinct.insert(sha256.as_str());
        }
    }
    (files, bytes, distinct.len() as u64)
}

fn validate_trigger(trigger: &str) -> Result<(), BackupError> {
    let ok = (1..=32).contains(&trigger.len())
        && trigger
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BackupError::InvalidName {
            what: "trigger",
            value: trigger.to_string(),
            rule:
                "manual, scheduled, before-stop, before-restart (lowercase letters, digits and '-')",
        })
    }
}
