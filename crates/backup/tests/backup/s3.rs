//! The S3 target against a real S3-compatible server (moto's server mode, installed by
//! `scripts/s3-test-server install`) listening on 127.0.0.1 only.
//!
//! The test fails when the server cannot be found or started, unless
//! `CLAWPLANE_SKIP_S3_TESTS=1`. `CLAWPLANE_S3_TEST_SERVER` may name the `moto_server` binary.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clawplane_backup::{BackupError, BackupStore, BackupTarget, Retention, S3Settings};
use secrecy::SecretString;

use crate::helpers::{
    check_restored_db, insert_rows, open_wal_db, populate_state, tree, write, TestDirs,
};

const BUCKET: &str = "clawplane-test";
const SECRET: &str = "never-print-this-secret-key";

/// A running S3 server on a free loopback port, killed on drop.
struct S3Server {
    child: Child,
    endpoint: String,
    _log_dir: tempfile::TempDir,
}

impl S3Server {
    /// `None` only when the S3 tests are explicitly skipped.
    async fn start() -> Option<Self> {
        if std::env::var("CLAWPLANE_SKIP_S3_TESTS").as_deref() == Ok("1") {
            eprintln!("CLAWPLANE_SKIP_S3_TESTS=1: skipping the S3 test");
            return None;
        }
        let binary = server_binary();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("s3-server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the S3 test server {}: {e}", binary.display())
            });
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _log_dir: log_dir,
        };
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "the S3 test server exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if client.get(&server.endpoint).send().await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the S3 test server did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = client
            .put(format!("{}/{BUCKET}", server.endpoint))
            .send()
            .await
            .unwrap();
        assert!(
            created.status().is_success(),
            "creating the bucket: {}",
            created.status()
        );
        Some(server)
    }

    fn settings(&self) -> S3Settings {
        S3Settings {
            access_key_id: Some("testing".into()),
            secret_access_key: Some(SecretString::from(SECRET)),
            region: Some("us-east-1".into()),
            endpoint: Some(self.endpoint.clone()),
            allow_http: true,
            ..S3Settings::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CLAWPLANE_S3_TEST_SERVER") {
        return PathBuf::from(path);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3-test-server");
    let out = Command::new(&script)
        .arg("path")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    if !out.status.success() {
        panic!(
            "the S3 test server is not installed: run scripts/s3-test-server install \
             (or set CLAWPLANE_SKIP_S3_TESTS=1 to skip this test)"
        );
    }
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[tokio::test]
async fn s3_target_backs_up_restores_and_prunes_through_a_real_s3_server() {
    let Some(server) = S3Server::start().await else {
        return;
    };
    let dirs = TestDirs::new();
    let state = dirs.state();
    populate_state(&state);
    let db = state.join("state/openclaw.sqlite");
    let pool = open_wal_db(&db).await;
    let committed = insert_rows(&pool, 5_000).await;
    // Larger than one part: goes up as a multipart upload.
    let big: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write(&state.join("media/outbound/video.bin"), &big, 0o600);

    let target =
        BackupTarget::parse(&format!("s3://{BUCKET}/ci/backups"), &server.settings()).unwrap();
    assert_eq!(target.to_string(), "s3://clawplane-test/ci/backups");
    let store = BackupStore::open(&target, "inst-s3").await.unwrap();
    assert!(!format!("{store:?} {target:?}").contains(SECRET));

    let first = store.backup(&state, "manual").await.unwrap();
    assert!(first.bytes_uploaded > big.len() as u64);
    let second = store.backup(&state, "scheduled").await.unwrap();
    assert_eq!((second.bytes_uploaded, second.blobs_uploaded), (0, 0));
    assert!(!store.has_changed(&state).await.unwrap());
    assert_eq!(store.latest().await.unwrap().unwrap().id, second.backup.id);
    pool.close().await;

    let restored = dirs.path("restored");
    store.restore(None, &restored).await.unwrap();
    assert_eq!(tree(&restored), tree(&state));
    check_restored_db(&restored.join("state/openclaw.sqlite"), committed).await;

    write(&state.join("openclaw.json"), b"{}", 0o600);
    let third = store.backup(&state, "manual").await.unwrap();
    assert_eq!((third.blobs_uploaded, third.bytes_uploaded), (1, 2));
    let pruned = store
        .prune(&Retention {
            keep_last: 1,
            keep_daily_days: 0,
        })
        .await
        .unwrap();
    assert_eq!(pruned.kept, vec![third.backup.id.clone()]);
    assert_eq!(pruned.blobs_deleted, 1, "only the old openclaw.json");
    let again = dirs.path("restored-again");
    store.restore_and_swap(None, &again).await.unwrap();
    assert_eq!(tree(&again), tree(&state));

    // A bucket that does not exist: a clear error naming the store, and no secret anywhere.
    let missing = BackupTarget::parse("s3://no-such-bucket/p", &server.settings()).unwrap();
    let err = BackupStore::open(&missing, "inst-s3").await.unwrap_err();
    assert!(matches!(err, BackupError::Unreachable { .. }), "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("s3://no-such-bucket/p"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[tokio::test]
async fn an_s3_endpoint_that_does_not_answer_fails_open_quickly_and_clearly() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = S3Settings {
        access_key_id: Some("testing".into()),
        secret_access_key: Some(SecretString::from(SECRET)),
        region: None,
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        allow_http: true,
        ..S3Settings::default()
    };
    let target = BackupTarget::parse("s3://bucket/p", &settings).unwrap();
    let started = Instant::now();
    let err = BackupStore::open(&target, "inst").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded by the retry settings"
    );
    let text = format!("{err} {err:?}");
    assert!(text.contains("s3://bucket/p is unreachable"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}
