//! A backup that dies half-way must leave the previous backup as the latest.

use std::{
    fmt,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use clawplane_backup::{
    object_store::{
        local::LocalFileSystem, path::Path, CopyOptions, GetOptions, GetResult, ListResult,
        MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
        PutResult, Result,
    },
    BackupStore,
};
use futures::stream::BoxStream;

use crate::helpers::{populate_state, tree, write, TestDirs};

/// A fake store: the real local filesystem store, except that every write after the first
/// `n` fails, as if the process had been killed or the network had gone away.
#[derive(Debug)]
struct FailingAfterNPuts {
    inner: Arc<dyn ObjectStore>,
    remaining: AtomicUsize,
}

impl FailingAfterNPuts {
    fn new(inner: Arc<dyn ObjectStore>, n: usize) -> Self {
        Self {
            inner,
            remaining: AtomicUsize::new(n),
        }
    }

    fn take(&self) -> Result<()> {
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map(|_| ())
            .map_err(|_| clawplane_backup::object_store::Error::Generic {
                store: "FailingAfterNPuts",
                source: "injected failure: the backup was killed".into(),
            })
    }
}

impl fmt::Display for FailingAfterNPuts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingAfterNPuts({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FailingAfterNPuts {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.take()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.take()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_backup_killed_half_way_leaves_the_previous_one_as_latest() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let store = dirs.local_store("inst-crash").await;
    let first = store.backup(&state, "scheduled").await.unwrap();
    let first_tree = tree(&state);

    for i in 0..5 {
        write(
            &state.join(format!("workspace/new-{i}.md")),
            format!("note {i}").as_bytes(),
            0o644,
        );
    }
    std::fs::create_dir_all(dirs.store_dir()).unwrap();
    let local: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dirs.store_dir()).unwrap());
    // One write for the FORMAT marker at open, then two of the five new blobs.
    let failing = Arc::new(FailingAfterNPuts::new(local, 3));
    let crashing = BackupStore::from_object_store(failing.clone(), "fake://failing", "inst-crash")
        .await
        .unwrap();
    let err = crashing.backup(&state, "scheduled").await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(
        failing.remaining.load(Ordering::SeqCst),
        0,
        "some blobs were uploaded"
    );

    assert_eq!(store.latest().await.unwrap().unwrap().id, first.backup.id);
    assert_eq!(
        crashing.latest().await.unwrap().unwrap().id,
        first.backup.id
    );
    assert_eq!(store.list().await.unwrap().len(), 1);

    let second = store.backup(&state, "scheduled").await.unwrap();
    assert_eq!(
        second.blobs_uploaded, 3,
        "the two blobs uploaded before the crash are reused"
    );
    assert_eq!(store.latest().await.unwrap().unwrap().id, second.backup.id);

    let restored = dirs.path("restored");
    store
        .restore(Some(&first.backup.id), &restored)
        .await
        .unwrap();
    assert_eq!(tree(&restored), first_tree);
}
