//! The object store seen as this crate uses it: keys under `<prefix>/<instance>/`, reads and
//! writes with errors that name the store and key (redacted), listings bounded in count, and
//! uploads that stream a file as one PUT or as a multipart upload in fixed-size parts.

use std::path::Path;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{path::Path as Key, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::{
    error::{BackupError, Redactor},
    manifest::{self, Manifest},
    snapshot::CHUNK,
};

/// Objects up to this size are written with one PUT; larger ones as multipart uploads of
/// parts this size (S3's minimum part is 5 MiB).
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Refuse to list more manifests than this (a bound on every listing loop).
const MAX_MANIFESTS: usize = 100_000;

/// The client, where this instance's objects live, and how to name them in messages.
pub(crate) struct Inner {
    pub(crate) store: std::sync::Arc<dyn ObjectStore>,
    pub(crate) url: String,
    pub(crate) instance: String,
    pub(crate) root: String,
    pub(crate) redactor: Redactor,
    pub(crate) lock: tokio::sync::Mutex<()>,
}

/// Names the store and instance only: the client's own `Debug` is long and holds settings.
impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupStore")
            .field("url", &self.url)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn key(&self, rest: &str) -> Key {
        Key::from(format!("{}/{rest}", self.root))
    }

    pub(crate) fn blob_key(&self, sha256: &str) -> Key {
        self.key(&format!("blobs/{}/{sha256}", &sha256[..2]))
    }

    pub(crate) fn manifest_key(&self, id: &str) -> Key {
        self.key(&format!("manifests/{id}.json"))
    }

    fn fail(&self, op: &'static str, key: &Key, e: object_store::Error) -> BackupError {
        self.fail_with(op, key, self.redactor.clean_error(&e))
    }

    fn fail_with(&self, op: &'static str, key: &Key, message: String) -> BackupError {
        BackupError::Store {
            store: self.url.clone(),
            op,
            key: key.to_string(),
            message,
        }
    }

    pub(crate) async fn put(&self, key: &Key, body: Bytes) -> Result<(), BackupError> {
        self.store
            .put(key, PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(|e| self.fail("write", key, e))
    }

    pub(crate) async fn exists(&self, key: &Key) -> Result<bool, BackupError> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail("read", key, e)),
        }
    }

    pub(crate) async fn delete(&self, key: &Key) -> Result<(), BackupError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail("delete", key, e)),
        }
    }

    /// The object's content as a stream of chunks (bounded memory); `None` if it is absent.
    pub(crate) async fn get_stream(
        &self,
        key: &Key,
    ) -> Result<Option<futures::stream::BoxStream<'static, Result<Bytes, BackupError>>>, BackupError>
    {
        let result = match self.store.get(key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail("read", key, e)),
        };
        let (url, key_text, redactor) = (self.url.clone(), key.to_string(), self.redactor.clone());
        Ok(Some(
            result
                .into_stream()
                .map_err(move |e| BackupError::Store {
                    store: url.clone(),
                    op: "read",
                    key: key_text.clone(),
                    message: redactor.clean_error(&e),
                })
                .boxed(),
        ))
    }

    /// Lists keys under `rest/` with their sizes, at most `limit` of them.
    pub(crate) async fn list(
        &self,
        rest: &str,
        limit: usize,
    ) -> Result<Vec<(Key, u64)>, BackupError> {
        let prefix = self.key(rest);
        let mut listing = self.store.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.fail("list", &prefix, e))?;
            out.push((meta.location, meta.size));
            if out.len() > limit {
                return Err(self.fail_with("list", &prefix, format!("more than {limit} objects")));
            }
        }
        Ok(out)
    }

    /// All backup ids, oldest first.
    pub(crate) async fn manifest_ids(&self) -> Result<Vec<String>, BackupError> {
        let mut ids: Vec<String> = self
            .list("manifests", MAX_MANIFESTS)
            .await?
            .into_iter()
            .filter_map(|(key, _)| {
                let name = key.filename()?.strip_suffix(".json")?.to_string();
                manifest::valid_id(&name).then_some(name)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub(crate) async fn manifest(&self, id: &str) -> Result<Manifest, BackupError> {
        let key = self.manifest_key(id);
        let body = match self.store.get(&key).await {
            Ok(r) => r.bytes().await.map_err(|e| self.fail("read", &key, e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BackupError::NotFound {
                    store: self.url.clone(),
                    id: id.to_string(),
                })
            }
            Err(e) => return Err(self.fail("read", &key, e)),
        };
        let corrupt = |reason: String| BackupError::Corrupt {
            id: id.to_string(),
            reason,
        };
        let m: Manifest = serde_json::from_slice(&body)
            .map_err(|e| corrupt(format!("its manifest is not valid JSON: {e}")))?;
        if m.format != manifest::FORMAT {
            return Err(corrupt(format!("unknown manifest format {}", m.format)));
        }
        if m.id != id || m.instance != self.instance {
            return Err(corrupt(format!(
                "the manifest names backup {} of instance {}",
                m.id, m.instance
            )));
        }
        Ok(m)
    }

    pub(crate) async fn latest_manifest(&self) -> Result<Option<Manifest>, BackupError> {
        match self.manifest_ids().await?.last() {
            Some(id) => self.manifest(id).await.map(Some),
            None => Ok(None),
        }
    }

    /// Uploads a staged file: one PUT when small, a multipart upload in parts otherwise.
    pub(crate) async fn upload_file(
        &self,
        key: &Key,
        file: &Path,
        size: u64,
    ) -> Result<(), BackupError> {
        let mut input = tokio::fs::File::open(file)
            .await
            .map_err(|e| BackupError::io("read the staging file", file, e))?;
        if size <= PART_SIZE as u64 {
            let mut body = Vec::with_capacity(size as usize);
            input
                .read_to_end(&mut body)
                .await
                .map_err(|e| BackupError::io("read the staging file", file, e))?;
            return self.put(key, Bytes::from(body)).await;
        }
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| self.fail("write", key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; CHUNK];
        let result: Result<(), BackupError> = async {
            loop {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.fail("write", key, e))?;
                let n = input
                    .read(&mut buf)
                    .await
                    .map_err(|e| BackupError::io("read the staging file", file, e))?;
                if n == 0 {
                    return Ok(());
                }
                writer.write(&buf[..n]);
            }
        }
        .await;
        match result {
            Ok(()) => writer
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.fail("write", key, e)),
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %self.redactor.clean_error(&abort), "backup: aborting a multipart upload failed");
                }
                Err(e)
            }
        }
    }
}
