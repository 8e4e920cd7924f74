//! Measures a full, an unchanged and a one-file backup of a state directory, and a restore.
//!
//! ```sh
//! cargo run -p clawplane-backup --example measure -- STATE_DIR [TARGET_URL]
//! ```
//!
//! `TARGET_URL` defaults to a fresh local directory; for S3, the settings come from the
//! environment (see `scripts/s3-test-server run`). The state directory's `workspace/` gets one
//! file rewritten for the one-file measurement.

use std::time::Instant;

use clawplane_backup::{BackupStore, BackupTarget, S3Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let state = std::path::PathBuf::from(args.next().ok_or("usage: measure STATE_DIR [URL]")?);
    let scratch = tempfile::tempdir()?;
    let url = args
        .next()
        .unwrap_or_else(|| format!("file://{}", scratch.path().join("store").display()));
    let target = BackupTarget::parse(&url, &S3Settings::from_lookup(|n| std::env::var(n).ok()))?;
    let store = BackupStore::open(&target, &format!("measure-{}", std::process::id())).await?;
    println!("target {target}");

    let t = Instant::now();
    let full = store.backup(&state, "manual").await?;
    println!(
        "full backup      {:>8.2} s  files {} bytes {}  uploaded {} B in {} blobs, manifest {} B",
        t.elapsed().as_secs_f64(),
        full.backup.files,
        full.backup.bytes,
        full.bytes_uploaded,
        full.blobs_uploaded,
        full.manifest_bytes
    );
    // Past the racy window, as a scheduled backup would be.
    tokio::time::sleep(clawplane_backup::RACY_WINDOW).await;

    let t = Instant::now();
    let changed = store.has_changed(&state).await?;
    println!(
        "has_changed      {:>8.3} s  -> {changed}",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let same = store.backup(&state, "scheduled").await?;
    println!(
        "unchanged backup {:>8.2} s  uploaded {} B in {} blobs, {} reused",
        t.elapsed().as_secs_f64(),
        same.bytes_uploaded,
        same.blobs_uploaded,
        same.blobs_reused
    );

    std::fs::write(
        state.join("workspace/measure-note.md"),
        format!("{:?}", Instant::now()),
    )?;
    let t = Instant::now();
    let one = store.backup(&state, "manual").await?;
    println!(
        "one-file backup  {:>8.2} s  uploaded {} B in {} blobs",
        t.elapsed().as_secs_f64(),
        one.bytes_uploaded,
        one.blobs_uploaded
    );

    let out = scratch.path().join("restored");
    let t = Instant::now();
    let restored = store.restore(None, &out).await?;
    println!(
        "restore          {:>8.2} s  files {} bytes {}",
        t.elapsed().as_secs_f64(),
        restored.files,
        restored.bytes
    );
    Ok(())
}
