//! Backup and restore against a local directory store.

use std::{
    os::unix::fs::PermissionsExt,
    sync::{atomic::Ordering, Mutex},
};

use clawplane_backup::{BackupError, Quiesce};

use crate::helpers::{
    check_restored_db, insert_rows, open_wal_db, populate_state, tree, write, LiveWriter, TestDirs,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_live_state_restores_files_modes_and_a_consistent_database() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let db = state.join("state/openclaw.sqlite");
    let pool = open_wal_db(&db).await;
    insert_rows(&pool, 20_000).await;
    let store = dirs.local_store("inst-live").await;

    let writer = LiveWriter::start(pool);
    writer.wait_for_rows(50).await;
    let committed_before = writer.committed.load(Ordering::SeqCst);
    let report = store.backup(&state, "manual").await.unwrap();
    let committed_after = writer.committed.load(Ordering::SeqCst);
    assert!(
        committed_after > committed_before,
        "rows were committed during the backup"
    );
    assert!(
        std::fs::metadata(state.join("state/openclaw.sqlite-wal")).is_ok(),
        "the database really is in WAL mode"
    );
    let written = writer.stop().await;
    assert!(written > 50, "the writer kept writing during the backup");

    let before = tree(&state);
    std::fs::remove_dir_all(&state).unwrap();
    let restored = store.restore(None, &state).await.unwrap();
    assert_eq!(restored.backup_id, report.backup.id);
    assert_eq!(restored.files, report.backup.files);

    assert_eq!(tree(&state), before, "files, modes and symlinks come back");
    for left_out in [
        "tmp",
        "cache",
        "workspace/build.lock",
        "state/openclaw.sqlite-wal",
    ] {
        assert!(
            !state.join(left_out).exists(),
            "{left_out} is not backed up"
        );
    }
    check_restored_db(&db, committed_before).await;
}

#[tokio::test]
async fn an_unchanged_state_uploads_no_blob_and_a_one_file_change_uploads_only_that_file() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let pool = open_wal_db(&state.join("agents/main/agent/openclaw-agent.sqlite")).await;
    insert_rows(&pool, 2_000).await;
    pool.close().await;
    let store = dirs.local_store("inst-dedup").await;

    let first = store.backup(&state, "scheduled").await.unwrap();
    assert!(first.bytes_uploaded > 0);
    assert_eq!(first.blobs_reused, 0);

    // Everything was just written, so within the racy window: the second backup re-reads every
    // file and re-runs VACUUM INTO, whose output must hash identically to upload nothing.
    let second = store.backup(&state, "scheduled").await.unwrap();
    assert_eq!((second.bytes_uploaded, second.blobs_uploaded), (0, 0));
    assert!(second.manifest_bytes > 0);
    assert!(second.backup.id > first.backup.id);

    let changed = b"# Agents, changed\n";
    write(&state.join("workspace/AGENTS.md"), changed, 0o644);
    let third = store.backup(&state, "manual").await.unwrap();
    assert_eq!(third.blobs_uploaded, 1);
    assert_eq!(third.bytes_uploaded, changed.len() as u64);
    assert_eq!(store.latest().await.unwrap().unwrap().id, third.backup.id);
    let ids: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ids, [third.backup.id, second.backup.id, first.backup.id]);
}

#[tokio::test]
async fn has_changed_is_false_right_after_a_backup_and_true_after_a_file_changes() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let store = dirs.local_store("inst-changed").await;
    assert!(
        store.has_changed(&state).await.unwrap(),
        "true with no backup"
    );

    store.backup(&state, "manual").await.unwrap();
    assert!(!store.has_changed(&state).await.unwrap());

    write(&state.join("tmp/agent-cli/other"), b"volatile", 0o600);
    assert!(
        !store.has_changed(&state).await.unwrap(),
        "excluded paths do not count"
    );

    write(
        &state.join("openclaw.json"),
        br#"{"gateway":{"mode":"remote"}}"#,
        0o600,
    );
    assert!(store.has_changed(&state).await.unwrap());
    store.backup(&state, "manual").await.unwrap();
    assert!(!store.has_changed(&state).await.unwrap());

    std::fs::set_permissions(state.join(".env"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(
        store.has_changed(&state).await.unwrap(),
        "a mode change counts"
    );
}

#[tokio::test]
async fn a_database_written_after_a_backup_is_seen_as_changed_through_its_wal() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let db = state.join("state/openclaw.sqlite");
    let pool = open_wal_db(&db).await;
    insert_rows(&pool, 100).await;
    let store = dirs.local_store("inst-wal").await;
    store.backup(&state, "manual").await.unwrap();
    assert!(!store.has_changed(&state).await.unwrap());

    let last = insert_rows(&pool, 10).await;
    assert!(store.has_changed(&state).await.unwrap());
    let report = store.backup(&state, "manual").await.unwrap();
    assert_eq!(report.blobs_uploaded, 1, "only the database changed");
    pool.close().await;

    let restored = dirs.path("restored");
    store.restore(None, &restored).await.unwrap();
    check_restored_db(&restored.join("state/openclaw.sqlite"), last).await;
}

/// Records the calls it gets.
#[derive(Default)]
struct RecordingQuiesce {
    calls: Mutex<Vec<&'static str>>,
}

#[async_trait::async_trait]
impl Quiesce for RecordingQuiesce {
    async fn suspend(&self) -> Result<(), String> {
        self.calls.lock().unwrap().push("suspend");
        Ok(())
    }
    async fn resume(&self) -> Result<(), String> {
        self.calls.lock().unwrap().push("resume");
        Ok(())
    }
}

#[tokio::test]
async fn the_quiesce_hook_brackets_the_snapshot_and_resume_runs_even_when_it_fails() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let store = dirs.local_store("inst-quiesce").await;

    let hook = RecordingQuiesce::default();
    store
        .backup_with(&state, "before-stop", Some(&hook))
        .await
        .unwrap();
    assert_eq!(*hook.calls.lock().unwrap(), ["suspend", "resume"]);

    // A state dir that is gone makes the snapshot fail inside the quiesced window.
    let hook = RecordingQuiesce::default();
    let err = store
        .backup_with(&dirs.path("missing"), "before-stop", Some(&hook))
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::NoStateDir(_)), "{err}");
    assert_eq!(*hook.calls.lock().unwrap(), ["suspend", "resume"]);
}

#[tokio::test]
async fn restore_and_swap_replaces_the_state_dir_and_restore_refuses_a_non_empty_one() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let store = dirs.local_store("inst-swap").await;
    let backup = store.backup(&state, "before-restart").await.unwrap();
    let before = tree(&state);

    write(&state.join("workspace/AGENTS.md"), b"damaged", 0o644);
    write(&state.join("stray.txt"), b"not in the backup", 0o644);
    let err = store.restore(None, &state).await.unwrap_err();
    assert!(matches!(err, BackupError::TargetNotEmpty(_)), "{err}");

    let report = store
        .restore_and_swap(Some(&backup.backup.id), &state)
        .await
        .unwrap();
    assert_eq!(report.backup_id, backup.backup.id);
    assert_eq!(tree(&state), before);
    let parent = state.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "state")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no restore, staging or replaced dirs left: {leftovers:?}"
    );
}

#[tokio::test]
async fn open_checks_the_instance_id_and_errors_name_the_store() {
    let dirs = TestDirs::new();
    let url = format!("file://{}", dirs.store_dir().display());
    let target = clawplane_backup::BackupTarget::parse(&url, &Default::default()).unwrap();
    for bad in ["", "..", "a/b", "x y"] {
        let err = clawplane_backup::BackupStore::open(&target, bad)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackupError::InvalidName { .. }),
            "{bad}: {err}"
        );
    }
    let store = dirs.local_store("inst-empty").await;
    assert!(store.latest().await.unwrap().is_none());
    let err = store.restore(None, &dirs.path("r")).await.unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
    let err = store
        .backup(&dirs.path("nope"), "manual")
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::NoStateDir(_)), "{err}");
}
