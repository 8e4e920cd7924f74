//! Pruning keeps the right backups and deletes only blobs no kept backup references.

use clawplane_backup::Retention;

use crate::helpers::{objects, populate_state, tree, write, TestDirs};

#[tokio::test]
async fn prune_keeps_the_newest_and_deletes_only_unreferenced_blobs() {
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let store = dirs.local_store("inst-prune").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        write(
            &state.join("workspace/notes.md"),
            format!("version {i}").as_bytes(),
            0o644,
        );
        ids.push(store.backup(&state, "scheduled").await.unwrap().backup.id);
    }
    let last_tree = tree(&state);
    let blobs_before = blob_count(&dirs);

    let report = store
        .prune(&Retention {
            keep_last: 2,
            keep_daily_days: 0,
        })
        .await
        .unwrap();
    assert_eq!(report.kept, [ids[4].clone(), ids[3].clone()]);
    assert_eq!(
        report.deleted,
        [ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(
        report.blobs_deleted, 3,
        "versions 0-2 of notes.md; shared blobs stay"
    );
    assert_eq!(blob_count(&dirs), blobs_before - 3);
    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(listed, [ids[4].clone(), ids[3].clone()]);

    // Everything the kept backups need is still there.
    for (n, id) in [(4, &ids[4]), (3, &ids[3])] {
        let out = dirs.path(&format!("restored-{n}"));
        store.restore(Some(id), &out).await.unwrap();
        let notes = std::fs::read_to_string(out.join("workspace/notes.md")).unwrap();
        assert_eq!(notes, format!("version {n}"));
    }
    assert_eq!(tree(&dirs.path("restored-4")), last_tree);

    // One per day for today is the newest backup; with keep_last 1 only it is left.
    let report = store
        .prune(&Retention {
            keep_last: 1,
            keep_daily_days: 1,
        })
        .await
        .unwrap();
    assert_eq!(report.kept, [ids[4].clone()]);
    assert_eq!(report.blobs_deleted, 1);
    let again = store.prune(&Retention::default()).await.unwrap();
    assert_eq!((again.deleted.len(), again.blobs_deleted), (0, 0));
}

fn blob_count(dirs: &TestDirs) -> usize {
    objects(&dirs.store_dir())
        .keys()
        .filter(|k| k.contains("/blobs/"))
        .count()
}
