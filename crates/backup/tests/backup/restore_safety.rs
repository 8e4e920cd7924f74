//! Restore refuses manifests that would write outside the target, and damaged blobs.

use clawplane_backup::BackupError;
use serde_json::json;

use crate::helpers::{objects, populate_state, TestDirs};

const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Writes a hand-made manifest with the given entries straight into the local store.
fn plant_manifest(dirs: &TestDirs, instance: &str, id: &str, entries: serde_json::Value) {
    let manifest = json!({
        "format": 1, "id": id, "instance": instance,
        "created_at": "2099-01-01T00:00:00Z", "started_at": "2099-01-01T00:00:00Z",
        "trigger": "manual", "clawplane_version": "0.0.0", "fingerprint": "x",
        "files": 1, "bytes": 0, "entries": entries,
    });
    let path = dirs
        .store_dir()
        .join(instance)
        .join("manifests")
        .join(format!("{id}.json"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

fn file(path: &str) -> serde_json::Value {
    json!({"kind": "file", "path": path, "mode": "0600", "size": 0, "sha256": EMPTY_SHA,
           "source": {"size": 0, "mtime_ns": 0}})
}

#[tokio::test]
async fn restore_refuses_paths_that_escape_the_target() {
    let dirs = TestDirs::new();
    let store = dirs.local_store("inst-evil").await;
    let cases = [
        ("20990101T000000.001Z-00000001", json!([file("../escape")])),
        (
            "20990101T000000.002Z-00000002",
            json!([file("/etc/clawplane-escape")]),
        ),
        (
            "20990101T000000.003Z-00000003",
            json!([file("a/../../escape")]),
        ),
        (
            "20990101T000000.004Z-00000004",
            json!([{"kind": "symlink", "path": "link", "target": "/tmp"}, file("link/escape")]),
        ),
        (
            "20990101T000000.005Z-00000005",
            json!([file("twice"), file("twice")]),
        ),
    ];
    for (id, entries) in cases {
        plant_manifest(&dirs, "inst-evil", id, entries);
        let target = dirs.path(&format!("restore-{id}"));
        let err = store.restore(Some(id), &target).await.unwrap_err();
        assert!(matches!(err, BackupError::UnsafePath { .. }), "{id}: {err}");
        assert!(!target.exists(), "nothing was written for {id}");
    }
    assert!(!dirs.tmp.path().parent().unwrap().join("escape").exists());
}

#[tokio::test]
async fn restore_refuses_a_blob_whose_content_does_not_match_its_hash() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let store = dirs.local_store("inst-rot").await;
    store.backup(&state, "manual").await.unwrap();

    let (blob, _) = objects(&dirs.store_dir())
        .into_iter()
        .find(|(k, size)| k.contains("/blobs/") && *size > 0)
        .unwrap();
    std::fs::write(dirs.store_dir().join(&blob), b"bit rot").unwrap();

    let target = dirs.path("restored");
    let err = store.restore(None, &target).await.unwrap_err();
    assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("does not match its SHA-256"),
        "{err}"
    );
    assert!(!target.exists(), "a failed restore removes what it wrote");

    // An empty, pre-existing target is emptied again rather than removed.
    std::fs::create_dir(&target).unwrap();
    store.restore(None, &target).await.unwrap_err();
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

#[tokio::test]
async fn restore_hands_out_permission_bits_only_never_setuid_setgid_or_sticky() {
    use std::os::unix::fs::PermissionsExt;

    let dirs = TestDirs::new();
    let store = dirs.local_store("inst-suid").await;
    let blob = dirs.store_dir().join("inst-suid/blobs/e3").join(EMPTY_SHA);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, b"").unwrap();
    let id = "20990101T000000.001Z-00000001";
    let mut suid = file("d/run");
    suid["mode"] = json!("4755");
    plant_manifest(
        &dirs,
        "inst-suid",
        id,
        json!([{"kind": "dir", "path": "d", "mode": "3777"}, suid]),
    );

    let target = dirs.path("restored");
    store.restore(Some(id), &target).await.unwrap();
    let mode = |p: &str| {
        std::fs::metadata(target.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("d/run"), 0o755);
    assert_eq!(mode("d"), 0o777);
}
