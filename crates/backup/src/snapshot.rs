//! Taking a consistent snapshot of the scanned entries into a private staging directory.
//!
//! - A SQLite database (detected by its 16-byte header `SQLite format 3\0`, whatever its name)
//!   is copied with `VACUUM INTO '<staging file>'` through sqlx: one read transaction, so the
//!   copy is a consistent database even while the gateway writes to it in WAL mode. Its
//!   `-wal`/`-shm`/`-journal` files are never copied.
//! - Any other file is copied byte for byte into staging while it is hashed, so the blob that is
//!   uploaded later is exactly the content that was hashed even if the file changes meanwhile.
//! - A file whose size and mtime (and its `-wal`'s) equal those recorded by the previous backup
//!   is not read at all: the previous content hash is reused. That keeps a backup of an
//!   unchanged state cheap and makes it upload nothing (a `VACUUM INTO` of an unchanged database
//!   is byte-identical in practice, but this does not depend on it). Files modified less than
//!   [`RACY_WINDOW`] before the previous scan started are read again, because a change within
//!   the filesystem's timestamp granularity would keep the same mtime (git's "racy clean").
//!
//! Only this phase reads the state directory, so it is what a [`crate::Quiesce`] hook brackets;
//! uploads then read the staging copies.

use std::{
    collections::HashMap,
    io::{Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use futures::{stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions, Connection};

use crate::{
    error::BackupError,
    manifest::{Entry, Manifest},
    scan::{Kind, Scanned},
};

/// The header every SQLite 3 database file starts with.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Files modified this close to (or after) the previous scan's start are re-read.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Read/write buffer for copies and hashing: bounded memory per file.
pub(crate) const CHUNK: usize = 256 * 1024;

/// How long `VACUUM INTO` waits for a lock held by the gateway.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// One snapshot entry, plus the staging copy of its content when it was read this time.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) entry: Entry,
    pub(crate) staged: Option<PathBuf>,
}

/// Snapshots every entry, `concurrency` files at a time, in the order given.
pub(crate) async fn snapshot(
    scanned: Vec<Scanned>,
    previous: Option<&Manifest>,
    staging: &Path,
    concurrency: usize,
) -> Result<Vec<Prepared>, BackupError> {
    let reusable = previous.map(reusable_hashes).unwrap_or_default();
    stream::iter(scanned.into_iter().enumerate())
        .map(|(index, item)| {
            let reused = reusable.get(item.rel.as_str()).cloned();
            let staging_file = staging.join(format!("{index:08}"));
            async move { prepare(item, reused, staging_file).await }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// Files of the previous manifest whose hash may be reused, keyed by path.
fn reusable_hashes(previous: &Manifest) -> HashMap<&str, Entry> {
    let racy_after = previous
        .started_at
        .timestamp_nanos_opt()
        .unwrap_or(i64::MAX)
        - RACY_WINDOW.as_nanos() as i64;
    previous
        .entries
        .iter()
        .filter(|e| match e {
            Entry::File { source, .. } => {
                source.mtime_ns < racy_after && source.wal.is_none_or(|(_, m)| m < racy_after)
            }
            _ => false,
        })
        .map(|e| (e.path(), e.clone()))
        .collect()
}

async fn prepare(
    item: Scanned,
    previous: Option<Entry>,
    staging_file: PathBuf,
) -> Result<Prepared, BackupError> {
    let Scanned {
        rel,
        abs,
        kind,
        mode,
        stat,
    } = item;
    match kind {
        Kind::Dir => Ok(Prepared {
            entry: Entry::Dir { path: rel, mode },
            staged: None,
        }),
        Kind::Symlink(target) => Ok(Prepared {
            entry: Entry::Symlink { path: rel, target },
            staged: None,
        }),
        Kind::File => {
            if let Some(Entry::File {
                size,
                sha256,
                sqlite,
                source,
                ..
            }) = previous
            {
                if source == stat {
                    return Ok(Prepared {
                        entry: Entry::File {
                            path: rel,
                            mode,
                            size,
                            sha256,
                            sqlite,
                            source: stat,
                        },
                        staged: None,
                    });
                }
            }
            let (src, dst) = (abs.clone(), staging_file.clone());
            let copied = blocking(move || copy_unless_sqlite(&src, &dst)).await?;
            let (sqlite, (size, sha256)) = match copied {
                Some(done) => (false, done),
                None => {
                    vacuum_into(&abs, &staging_file).await?;
                    let dst = staging_file.clone();
                    (true, blocking(move || hash_file(&dst)).await?)
                }
            };
            Ok(Prepared {
                entry: Entry::File {
                    path: rel,
                    mode,
                    size,
                    sha256,
                    sqlite,
                    source: stat,
                },
                staged: Some(staging_file),
            })
        }
    }
}

/// Copies `src` to `dst` while hashing it, unless `src` is a SQLite database (then `None`).
fn copy_unless_sqlite(src: &Path, dst: &Path) -> Result<Option<(u64, String)>, BackupError> {
    let mut input =
        std::fs::File::open(src).map_err(|e| BackupError::io("read the state file", src, e))?;
    let mut buf = vec![0u8; CHUNK];
    let head = read_full(&mut input, &mut buf[..SQLITE_HEADER.len()])
        .map_err(|e| BackupError::io("read the state file", src, e))?;
    if head == SQLITE_HEADER.len() && &buf[..head] == SQLITE_HEADER {
        return Ok(None);
    }
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| BackupError::io("write the staging file", dst, e))?;
    let mut hasher = Sha256::new();
    hasher.update(&buf[..head]);
    output
        .write_all(&buf[..head])
        .map_err(|e| BackupError::io("write the staging file", dst, e))?;
    let mut size = head as u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| BackupError::io("read the state file", src, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(|e| BackupError::io("write the staging file", dst, e))?;
        size += n as u64;
    }
    output
        .flush()
        .map_err(|e| BackupError::io("write the staging file", dst, e))?;
    Ok(Some((size, hex::encode(hasher.finalize()))))
}

/// Reads until `buf` is full or the file ends; returns how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Size and SHA-256 of a file, read in chunks.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
    let mut input =
        std::fs::File::open(path).map_err(|e| BackupError::io("read the staging file", path, e))?;
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| BackupError::io("read the staging file", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// A consistent copy of a (possibly live) SQLite database: `VACUUM INTO` runs in one read
/// transaction. The connection never changes the journal mode or anything else in the source.
pub(crate) async fn vacuum_into(db: &Path, dest: &Path) -> Result<(), BackupError> {
    let fail = |e: sqlx::Error| BackupError::Sqlite {
        path: db.to_path_buf(),
        message: e.to_string(),
    };
    let dest_text = dest.to_str().ok_or_else(|| BackupError::Sqlite {
        path: db.to_path_buf(),
        message: format!("the staging path {} is not UTF-8", dest.display()),
    })?;
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(false)
        .foreign_keys(false)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .disable_statement_logging()
        .connect()
        .await
        .map_err(fail)?;
    let result = sqlx::query("VACUUM INTO ?")
        .bind(dest_text)
        .execute(&mut conn)
        .await;
    let closed = conn.close().await;
    result.map_err(fail)?;
    closed.map_err(fail)
}

/// Runs blocking file work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        BackupError::io(
            "run a file task for",
            PathBuf::new(),
            std::io::Error::other(e.to_string()),
        )
    })?
}
