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
//!
//! Every file is opened through directory handles without following a symlink (`beneath`) and
//! read only if it is a regular file; one that is gone, or has become anything else (a symlink
//! swapped in after the scan), is left out of the backup with a warning, and so is one that
//! grew past the per-file limit. SQLite opens databases by path, so `vacuum_into` checks the
//! path around it.

use std::{
    collections::HashMap,
    io::{Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use futures::{stream, StreamExt, TryStreamExt};
use rustix::{
    fs::{statat, AtFlags, FileType},
    io::Errno,
};
use sha2::{Digest, Sha256};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteConnection},
    ConnectOptions, Connection,
};

use crate::{
    beneath::{split, Root},
    error::BackupError,
    manifest::{Entry, Manifest},
    scan::{Kind, Scanned, SIDECARS},
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

/// Snapshots every entry of `state_dir`, `concurrency` files at a time, in the order given.
/// Files that are gone, or no longer regular files, when they are read are left out (logged).
pub(crate) async fn snapshot(
    state_dir: &Path,
    scanned: &[Scanned],
    previous: Option<&Manifest>,
    staging: &Path,
    concurrency: usize,
    max_file_bytes: u64,
) -> Result<Vec<Prepared>, BackupError> {
    let dir = state_dir.to_path_buf();
    let root = blocking(move || Root::open(&dir).map_err(|_| BackupError::NoStateDir(dir)))
        .await
        .map(Arc::new)?;
    let reusable = previous.map(reusable_hashes).unwrap_or_default();
    // Owned items: a stream of futures that borrow from their items would not be provably
    // `Send` for every lifetime, and callers spawn these futures.
    let prepared: Vec<Option<Prepared>> = stream::iter(scanned.iter().cloned().enumerate())
        .map(|(index, item)| {
            let reused = reusable.get(item.rel.as_str()).cloned();
            let staging_file = staging.join(format!("{index:08}"));
            let root = root.clone();
            async move { prepare(root, item, reused, staging_file, max_file_bytes).await }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(prepared.into_iter().flatten().collect())
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
    root: Arc<Root>,
    item: Scanned,
    previous: Option<Entry>,
    staging_file: PathBuf,
    max_file_bytes: u64,
) -> Result<Option<Prepared>, BackupError> {
    let Scanned {
        rel,
        abs,
        kind,
        mode,
        stat,
    } = item;
    let file = |(size, sha256, sqlite), path| Entry::File {
        path,
        mode,
        size,
        sha256,
        sqlite,
        source: stat,
    };
    let (entry, staged) = match (kind, previous) {
        (Kind::Dir, _) => (Entry::Dir { path: rel, mode }, None),
        (Kind::Symlink(target), _) => (Entry::Symlink { path: rel, target }, None),
        (
            Kind::File,
            Some(Entry::File {
                size,
                sha256,
                sqlite,
                source,
                ..
            }),
        ) if source == stat => (file((size, sha256, sqlite), rel), None),
        (Kind::File, _) => match read_file(&root, &rel, &staging_file, max_file_bytes).await? {
            Ok(read) => (file(read, rel), Some(staging_file)),
            Err(why) => {
                tracing::warn!(path = %abs.display(), why, "backup: file left out");
                return Ok(None);
            }
        },
    };
    Ok(Some(Prepared { entry, staged }))
}

/// A file read into staging: size, SHA-256 and whether it is a SQLite snapshot; or why it is
/// left out.
type FileRead = Result<(u64, String, bool), &'static str>;

/// Reads `rel` into `staging_file`: a byte copy, or `VACUUM INTO` for a SQLite database.
async fn read_file(
    root: &Arc<Root>,
    rel: &str,
    staging_file: &Path,
    max_bytes: u64,
) -> Result<FileRead, BackupError> {
    let (r, name, dst) = (root.clone(), rel.to_owned(), staging_file.to_path_buf());
    Ok(
        match blocking(move || copy_unless_sqlite(&r, &name, &dst, max_bytes)).await? {
            Copied::Plain((size, sha256)) => Ok((size, sha256, false)),
            Copied::Skipped(why) => Err(why),
            Copied::Sqlite => vacuum_into(root, rel, staging_file, max_bytes)
                .await?
                .map(|(size, sha256)| (size, sha256, true)),
        },
    )
}

/// What reading a state file gave.
enum Copied {
    /// Copied into staging: size and SHA-256.
    Plain((u64, String)),
    /// A SQLite database: nothing copied, it is for `VACUUM INTO`.
    Sqlite,
    /// Not copied, and why.
    Skipped(&'static str),
}

/// Copies `rel` to `dst` while hashing it, unless it is a SQLite database. Opened through
/// `root` without following symlinks; anything but a regular file is skipped, and so is a file
/// that grew past `max_bytes`.
fn copy_unless_sqlite(
    root: &Root,
    rel: &str,
    dst: &Path,
    max_bytes: u64,
) -> Result<Copied, BackupError> {
    let src = root.path.join(rel);
    let read_err = |e| BackupError::io("read the state file", &src, e);
    let Some(input) = root.file(rel).map_err(read_err)? else {
        return Ok(Copied::Skipped(
            "it is gone, or no longer a regular file reached without a symlink",
        ));
    };
    // One byte more than allowed, to tell "at the limit" from "past it".
    let mut input = input.take(max_bytes.saturating_add(1));
    let mut buf = vec![0u8; CHUNK];
    let head = read_full(&mut input, &mut buf[..SQLITE_HEADER.len()]).map_err(read_err)?;
    if head == SQLITE_HEADER.len() && &buf[..head] == SQLITE_HEADER {
        return Ok(Copied::Sqlite);
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
        let n = input.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(|e| BackupError::io("write the staging file", dst, e))?;
        size += n as u64;
    }
    if size > max_bytes {
        drop(output);
        let _ = std::fs::remove_file(dst);
        return Ok(Copied::Skipped("it grew past the per-file limit"));
    }
    output
        .flush()
        .map_err(|e| BackupError::io("write the staging file", dst, e))?;
    Ok(Copied::Plain((size, hex::encode(hasher.finalize()))))
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

/// Size and SHA-256 of a (staging) file, read in chunks.
fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
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

/// A consistent copy of a (possibly live) SQLite database `rel` beneath `root`: `VACUUM INTO`
/// runs in one read transaction, on a read-only connection that changes nothing in the source.
///
/// SQLite opens files by path (and expands symlinks in it), so the path is checked around it.
/// Before: every directory on the way is a real directory (reached by handles) and the
/// database's `-wal`, `-shm` and `-journal` are absent or regular files. After connecting, and
/// before anything is read: the file SQLite resolved (`PRAGMA database_list`) is exactly the
/// expected path, so it did not reach the database through a symlink swapped in since the
/// scan, at any depth; SQLite opens the last component of each file with `O_NOFOLLOW` itself.
///
/// Left open: a directory on the way swapped for a symlink in the microseconds between
/// SQLite's resolution and its `open` of the database, or between the check and VACUUM's first
/// read (when SQLite opens `-wal` and `-shm`, creating them if missing). Closing that needs the
/// snapshot to run with the cell's credentials, which this crate does not have.
///
/// `Ok(Err(why))` when the database is left out.
async fn vacuum_into(
    root: &Arc<Root>,
    rel: &str,
    dest: &Path,
    max_bytes: u64,
) -> Result<Result<(u64, String), &'static str>, BackupError> {
    let db = root.path.join(rel);
    let fail = |e: sqlx::Error| BackupError::Sqlite {
        path: db.clone(),
        message: e.to_string(),
    };
    let (db_text, dest_text) = match (db.to_str(), dest.to_str()) {
        (Some(db), Some(dest)) => (db.to_owned(), dest),
        _ => return Ok(Err("its path or the staging path is not UTF-8")),
    };
    let (r, name) = (root.clone(), rel.to_owned());
    if let Err(why) = blocking(move || Ok(check_sqlite_files(&r, &name))).await? {
        return Ok(Err(why));
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(false)
        .read_only(true)
        .foreign_keys(false)
        .pragma("trusted_schema", "OFF")
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .disable_statement_logging()
        .connect()
        .await
        .map_err(fail)?;
    let result = match opened_at(&mut conn, &db_text).await {
        Ok(true) => sqlx::query("VACUUM INTO ?")
            .bind(dest_text)
            .execute(&mut conn)
            .await
            .map(|_| true),
        other => other,
    };
    let closed = conn.close().await;
    let same_file = result.map_err(fail)?;
    closed.map_err(fail)?;
    if !same_file {
        return Ok(Err("SQLite reached it through a symlink"));
    }
    let staged = dest.to_path_buf();
    let (size, sha256) = blocking(move || hash_file(&staged)).await?;
    if size > max_bytes {
        let _ = std::fs::remove_file(dest);
        return Ok(Err("its snapshot is larger than the per-file limit"));
    }
    Ok(Ok((size, sha256)))
}

/// Whether the connection's main database is the file at `path`. SQLite reports the path it
/// resolved, with every symlink on the way expanded.
async fn opened_at(conn: &mut SqliteConnection, path: &str) -> Result<bool, sqlx::Error> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as("PRAGMA database_list")
        .fetch_all(conn)
        .await?;
    Ok(rows
        .iter()
        .any(|(_, schema, file)| schema == "main" && file == path))
}

/// Whether the database's directories and side files are safe to hand to SQLite by path.
fn check_sqlite_files(root: &Root, rel: &str) -> Result<(), &'static str> {
    let (parent, name) = split(rel);
    let dir = match root.dir(parent) {
        Ok(Some(dir)) => dir,
        _ => return Err("a directory on its way is gone or no longer a directory"),
    };
    for suffix in SIDECARS {
        match statat(
            &dir,
            format!("{name}{suffix}").as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Err(Errno::NOENT) => {}
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
            _ => return Err("its -wal, -shm or -journal is not a regular file"),
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::scan::{scan, Excludes};

    const SECRET: &[u8] = b"host-secret-0d4c";

    async fn make_db(path: &Path, payload: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v BLOB)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (?)")
            .bind(payload)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }

    /// What the scan saw as files is swapped for symlinks to host files (and a directory for a
    /// symlink to a host directory holding the same names) before the snapshot reads them.
    #[tokio::test]
    async fn entries_swapped_for_symlinks_after_the_scan_are_left_out_unread() {
        let tmp = tempfile::tempdir().unwrap();
        let (state, host) = (tmp.path().join("state"), tmp.path().join("host"));
        for dir in [state.join("d"), state.join("e"), host.clone()] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(state.join("a.txt"), "mine").unwrap();
        std::fs::write(state.join("d/f"), "mine").unwrap();
        std::fs::write(state.join("kept.txt"), "mine").unwrap();
        make_db(&state.join("db.sqlite"), b"mine").await;
        make_db(&state.join("e/db.sqlite"), b"mine").await;
        std::fs::write(host.join("f"), SECRET).unwrap();
        make_db(&host.join("db.sqlite"), SECRET).await;
        let scanned = scan(&state, &Excludes::new(&[] as &[&str]), u64::MAX).unwrap();
        assert_eq!(scanned.len(), 7, "{scanned:?}");

        for (path, target) in [("a.txt", "f"), ("db.sqlite", "db.sqlite")] {
            std::fs::remove_file(state.join(path)).unwrap();
            symlink(host.join(target), state.join(path)).unwrap();
        }
        for dir in ["d", "e"] {
            std::fs::rename(state.join(dir), state.join(format!("{dir}.old"))).unwrap();
            symlink(&host, state.join(dir)).unwrap();
        }
        let staging = tmp.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let prepared = snapshot(&state, &scanned, None, &staging, 2, u64::MAX)
            .await
            .unwrap();

        let paths: Vec<&str> = prepared.iter().map(|p| p.entry.path()).collect();
        assert_eq!(
            paths,
            ["d", "e", "kept.txt"],
            "only what was not swapped is kept"
        );
        for staged in std::fs::read_dir(&staging).unwrap() {
            let bytes = std::fs::read(staged.unwrap().path()).unwrap();
            assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET));
        }
    }

    #[tokio::test]
    async fn sqlite_reports_the_path_it_resolved_so_a_symlinked_directory_shows() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real/db.sqlite");
        make_db(&real, b"x").await;
        symlink(tmp.path().join("real"), tmp.path().join("link")).unwrap();
        let via_link = tmp.path().join("link/db.sqlite");
        let mut conn = SqliteConnectOptions::new()
            .filename(&via_link)
            .read_only(true)
            .connect()
            .await
            .unwrap();
        assert!(!opened_at(&mut conn, via_link.to_str().unwrap())
            .await
            .unwrap());
        let real = std::fs::canonicalize(real).unwrap();
        assert!(opened_at(&mut conn, real.to_str().unwrap()).await.unwrap());
        conn.close().await.unwrap();
    }
}
