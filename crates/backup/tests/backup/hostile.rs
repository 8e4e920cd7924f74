//! The state directory is the tenant's: planted symlinks, special files and huge files must not
//! put a host file into its backup, hang the backup, or let a restore write outside the tree.

use std::{
    os::unix::fs::{symlink, PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use clawplane_backup::{BackupError, BackupOptions, Entry, Manifest};

use crate::helpers::{insert_rows, objects, open_wal_db, populate_state, tree, write, TestDirs};

const SECRET: &str = "host-secret-6b1f0c9a2e";

/// A host file, as it is before the backup: content, mode and mtime.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot(Vec<u8>, u32, SystemTime);

fn look(path: &Path) -> Snapshot {
    let meta = std::fs::metadata(path).unwrap();
    Snapshot(
        std::fs::read(path).unwrap(),
        meta.permissions().mode(),
        meta.modified().unwrap(),
    )
}

/// Whether any object of the local store (blobs and manifests) holds `needle`.
fn store_holds(dirs: &TestDirs, needle: &[u8]) -> bool {
    objects(&dirs.store_dir()).keys().any(|key| {
        let bytes = std::fs::read(dirs.store_dir().join(key)).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

/// Every regular file under `root` (not through symlinks) whose content holds `needle`.
fn files_holding(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

async fn latest_manifest(dirs: &TestDirs, instance: &str) -> Manifest {
    let manifests = dirs.store_dir().join(instance).join("manifests");
    let mut names: Vec<_> = std::fs::read_dir(&manifests)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    serde_json::from_slice(&std::fs::read(names.last().unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn planted_symlinks_to_host_files_are_kept_as_links_and_never_read_or_written() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    // On the host, outside the state directory: a file, a database and a directory.
    let host = dirs.path("host");
    write(&host.join("secret.txt"), SECRET.as_bytes(), 0o600);
    write(&host.join("dir/inner.txt"), SECRET.as_bytes(), 0o600);
    let host_db = host.join("host.sqlite");
    let pool = open_wal_db(&host_db).await;
    sqlx::query("INSERT INTO events (payload) VALUES (?)")
        .bind(SECRET)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let before = [
        look(&host.join("secret.txt")),
        look(&host.join("dir/inner.txt")),
        look(&host_db),
    ];
    // The tenant's links, at the top and deeper, to each of them.
    symlink(host.join("secret.txt"), state.join("leak.txt")).unwrap();
    symlink(host.join("secret.txt"), state.join("workspace/bin/leak")).unwrap();
    symlink(&host_db, state.join("state/openclaw.sqlite")).unwrap();
    symlink(host.join("dir"), state.join("workspace/hostdir")).unwrap();
    let store = dirs.local_store("inst-links").await;

    store.backup(&state, "manual").await.unwrap();

    assert!(
        !store_holds(&dirs, SECRET.as_bytes()),
        "no blob or manifest holds the host files' content"
    );
    let manifest = latest_manifest(&dirs, "inst-links").await;
    let link = |path: &str| {
        manifest
            .entries
            .iter()
            .find(|e| e.path() == path)
            .cloned()
            .unwrap_or_else(|| panic!("{path} is in the backup"))
    };
    for (path, target) in [
        ("leak.txt", host.join("secret.txt")),
        ("workspace/bin/leak", host.join("secret.txt")),
        ("state/openclaw.sqlite", host_db.clone()),
        ("workspace/hostdir", host.join("dir")),
    ] {
        let target = target.to_str().unwrap().to_owned();
        assert_eq!(
            link(path),
            Entry::Symlink {
                path: path.into(),
                target
            },
            "{path}"
        );
    }
    assert!(
        !manifest
            .entries
            .iter()
            .any(|e| e.path().starts_with("workspace/hostdir/")),
        "a symlinked directory is not walked into"
    );

    let expected = tree(&state);
    store.restore_and_swap(None, &state).await.unwrap();
    assert_eq!(tree(&state), expected, "the links come back as links");
    assert!(std::fs::symlink_metadata(state.join("leak.txt"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        files_holding(&state, SECRET.as_bytes()),
        Vec::<PathBuf>::new(),
        "no restored file holds the host content"
    );
    let after = [
        look(&host.join("secret.txt")),
        look(&host.join("dir/inner.txt")),
        look(&host_db),
    ];
    assert_eq!(after, before, "the host files are untouched");
    let host_names: Vec<_> = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        host_names.len(),
        3,
        "nothing was created beside them: {host_names:?}"
    );
}

#[tokio::test]
async fn a_fifo_and_a_socket_in_the_state_dir_are_skipped_without_blocking_the_backup() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let fifo = state.join("workspace/pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let _socket = std::os::unix::net::UnixListener::bind(state.join("state/gateway.sock")).unwrap();
    let store = dirs.local_store("inst-fifo").await;

    // Spawned, as the runtime does: the backup's future must be `Send`.
    let (spawned_store, spawned_state) = (store.clone(), state.clone());
    let backup = tokio::spawn(async move { spawned_store.backup(&spawned_state, "manual").await });
    let report = tokio::time::timeout(Duration::from_secs(60), backup)
        .await
        .expect("a FIFO must not block the backup")
        .unwrap()
        .unwrap();

    let manifest = latest_manifest(&dirs, "inst-fifo").await;
    assert_eq!(manifest.id, report.backup.id);
    for special in ["workspace/pipe", "state/gateway.sock"] {
        assert!(
            manifest.entries.iter().all(|e| e.path() != special),
            "{special} is not in the backup"
        );
    }
    let restored = dirs.path("restored");
    store.restore(None, &restored).await.unwrap();
    assert!(!restored.join("workspace/pipe").exists());
    assert!(restored.join("workspace/AGENTS.md").is_file());
}

#[tokio::test]
async fn a_file_over_the_per_file_limit_is_left_out_and_a_state_over_the_total_limit_is_refused() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    write(
        &state.join("workspace/huge.bin"),
        &vec![1u8; 64 * 1024],
        0o644,
    );
    let db = state.join("state/openclaw.sqlite");
    let pool = open_wal_db(&db).await;
    insert_rows(&pool, 2_000).await;
    pool.close().await;
    let small = |max_file_bytes, max_total_bytes| BackupOptions {
        max_file_bytes,
        max_total_bytes,
        ..Default::default()
    };

    // The database is far bigger than 32 KiB too: it is left out like any other file.
    let store = dirs
        .local_store("inst-big")
        .await
        .with_options(small(32 * 1024, 1 << 30));
    store.backup(&state, "manual").await.unwrap();
    let manifest = latest_manifest(&dirs, "inst-big").await;
    let paths: Vec<&str> = manifest.entries.iter().map(|e| e.path()).collect();
    assert!(!paths.contains(&"workspace/huge.bin"), "{paths:?}");
    assert!(!paths.contains(&"state/openclaw.sqlite"), "{paths:?}");
    assert!(paths.contains(&"workspace/AGENTS.md"), "{paths:?}");

    let store = store.with_options(small(1 << 30, 32 * 1024));
    let err = store.backup(&state, "manual").await.unwrap_err();
    assert!(matches!(err, BackupError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("max_total_bytes"), "{err}");
}

#[tokio::test]
async fn restore_and_swap_removes_the_old_tree_without_following_its_links() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let store = dirs.local_store("inst-old-links").await;
    store.backup(&state, "manual").await.unwrap();

    let host = dirs.path("host");
    write(&host.join("dir/keep.txt"), SECRET.as_bytes(), 0o600);
    let before = look(&host.join("dir/keep.txt"));
    symlink(host.join("dir"), state.join("workspace/hostdir")).unwrap();
    symlink(host.join("dir/keep.txt"), state.join("keep-link")).unwrap();

    store.restore_and_swap(None, &state).await.unwrap();
    assert!(!state.join("workspace/hostdir").exists());
    assert_eq!(
        look(&host.join("dir/keep.txt")),
        before,
        "the host tree is untouched"
    );
}
