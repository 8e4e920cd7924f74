//! Shared test helpers: a state directory that looks like an OpenClaw one, a local store, a tree
//! comparison that ignores what backups leave out, and a live SQLite writer.

use std::{
    collections::BTreeMap,
    os::unix::fs::{symlink, PermissionsExt},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use clawplane_backup::{BackupStore, BackupTarget, S3Settings};
use sha2::{Digest, Sha256};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    SqlitePool,
};

/// A temporary directory holding a state directory and a local backup store.
pub struct TestDirs {
    pub tmp: tempfile::TempDir,
}

impl TestDirs {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.tmp.path().join("instance").join("state")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.tmp.path().join("backups")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub async fn local_store(&self, instance: &str) -> BackupStore {
        let url = format!("file://{}", self.store_dir().display());
        let target = BackupTarget::parse(&url, &S3Settings::default()).expect("target");
        BackupStore::open(&target, instance)
            .await
            .expect("open store")
    }
}

pub fn write(path: &Path, content: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Files shaped like a gateway's state dir (without the databases), including the volatile
/// parts a backup must leave out.
pub fn populate_state(state: &Path) {
    mkdir(state, 0o700);
    write(
        &state.join("openclaw.json"),
        br#"{"gateway":{"mode":"local"}}"#,
        0o600,
    );
    write(&state.join(".env"), b"OPENAI_API_KEY=sk-test\n", 0o600);
    write(
        &state.join("config-journal-fingerprint.key"),
        &[7u8; 32],
        0o400,
    );
    mkdir(&state.join("state"), 0o700);
    mkdir(&state.join("credentials"), 0o700);
    mkdir(&state.join("media/outbound"), 0o755);
    write(&state.join("workspace/AGENTS.md"), b"# Agents\n", 0o644);
    write(
        &state.join("workspace/bin/run.sh"),
        b"#!/bin/sh\necho hi\n",
        0o755,
    );
    write(
        &state.join("agents/main/agent/openclaw-agent.sqlite.generation-lock.sqlite"),
        b"",
        0o644,
    );
    symlink("AGENTS.md", state.join("workspace/current")).unwrap();
    // Volatile: left out of every backup.
    write(&state.join("tmp/openclaw-0/gateway.abc.lock"), b"", 0o600);
    write(&state.join("tmp/agent-cli/scratch"), b"scratch", 0o600);
    write(
        &state.join("cache/control-ui-assets/x/app.js"),
        b"console.log(1)",
        0o644,
    );
    write(&state.join("workspace/build.lock"), b"", 0o644);
}

/// What a restored tree must equal. SQLite files are compared by name and mode only (their
/// bytes change through `VACUUM INTO`); excluded paths and SQLite side files are left out.
#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    Dir(u32),
    File(u32, String),
    Sqlite(u32),
    Symlink(String),
}

pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        if rel == "tmp" || rel == "cache" || rel.ends_with(".lock") {
            continue;
        }
        if ["-wal", "-shm", "-journal"]
            .iter()
            .any(|s| rel.ends_with(s))
        {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let node = if meta.file_type().is_symlink() {
            Node::Symlink(std::fs::read_link(&path).unwrap().to_str().unwrap().into())
        } else if meta.is_dir() {
            walk(root, &path, out);
            Node::Dir(mode)
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.starts_with(b"SQLite format 3\0") {
                Node::Sqlite(mode)
            } else {
                Node::File(mode, hex::encode(Sha256::digest(&bytes)))
            }
        };
        out.insert(rel, node);
    }
}

/// Opens (creating) a SQLite database in WAL mode, as the gateway runs its databases.
pub async fn open_wal_db(path: &Path) -> SqlitePool {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

pub async fn insert_rows(pool: &SqlitePool, n: usize) -> i64 {
    let mut tx = pool.begin().await.unwrap();
    let mut last = 0;
    for i in 0..n {
        last = sqlx::query("INSERT INTO events (payload) VALUES (?)")
            .bind(format!("{i:06}-{}", "x".repeat(200)))
            .execute(&mut *tx)
            .await
            .unwrap()
            .last_insert_rowid();
    }
    tx.commit().await.unwrap();
    last
}

/// A task committing one row at a time until stopped (bounded in rows and time); `committed`
/// always holds the id of the last committed row.
pub struct LiveWriter {
    pub committed: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl LiveWriter {
    pub fn start(pool: SqlitePool) -> Self {
        let committed = Arc::new(AtomicI64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (committed.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut rows = 0u64;
            while !s.load(Ordering::SeqCst) && rows < 1_000_000 && Instant::now() < deadline {
                let id = sqlx::query("INSERT INTO events (payload) VALUES (?)")
                    .bind(format!("live-{rows}"))
                    .execute(&pool)
                    .await
                    .unwrap()
                    .last_insert_rowid();
                c.store(id, Ordering::SeqCst);
                rows += 1;
            }
            pool.close().await;
            rows
        });
        Self {
            committed,
            stop,
            task,
        }
    }

    /// Waits until at least `n` more rows are committed (bounded), so the writer is running.
    pub async fn wait_for_rows(&self, n: i64) {
        let start = self.committed.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.committed.load(Ordering::SeqCst) < start + n {
            assert!(
                Instant::now() < deadline,
                "the live writer made no progress"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// Opens a restored database and checks it: integrity, and every id up to `committed`.
pub async fn check_restored_db(path: &Path, committed: i64) {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let (integrity,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let (present,): (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE id <= ?")
        .bind(committed)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        present, committed,
        "rows committed before the backup are missing"
    );
    // The gateway reopens it in WAL mode.
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode=WAL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    pool.close().await;
}

/// Every object under `dir` (a local store), relative path -> size.
pub fn objects(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                out.insert(rel, std::fs::metadata(&path).unwrap().len());
            }
        }
    }
    out
}
