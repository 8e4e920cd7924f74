//! Test helpers over real dependencies, shared by every crate's tests.
//!
//! [`TestDb`] gives each test its own database: a SQLite file in a fresh
//! temporary directory, or a fresh PostgreSQL database on the server named by
//! `CLAWPLANE_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! dropped again when the test ends, so tests run in parallel and leave
//! nothing behind. [`device`] is a device for real gateways,
//! [`fake_openai`] a model provider for them, [`fake_upstream`] an upstream
//! for `serve`'s model proxy that fails on cue.

pub mod device;
pub mod fake_openai;
pub mod fake_upstream;

use std::path::{Path, PathBuf};

use clawplane_store::{Backend, Store, StoreOptions};
use sqlx::Connection;

/// The PostgreSQL server used by tests.
pub fn postgres_admin_url() -> String {
    std::env::var("CLAWPLANE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database that exists for one test.
pub struct TestDb {
    /// The open store.
    pub store: Store,
    /// The URL the store was opened with (to reopen it, or hand to a child process).
    pub url: String,
    /// For SQLite: the data directory holding the file.
    pub dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// A fresh database on `backend`.
    pub async fn new(backend: Backend) -> TestDb {
        Self::with_options(backend, &StoreOptions::default()).await
    }

    /// A fresh database on `backend` with pool options.
    pub async fn with_options(backend: Backend, options: &StoreOptions) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("create a temporary directory");
                let store = Store::open_sqlite_dir(dir.path(), options)
                    .await
                    .expect("open the SQLite store");
                let url = format!(
                    "sqlite://{}",
                    dir.path()
                        .join(clawplane_store::connect::SQLITE_FILE_NAME)
                        .display()
                );
                TestDb {
                    store,
                    url,
                    dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let (url, name) = create_postgres_database().await;
                let store = Store::connect(&url, options)
                    .await
                    .expect("connect to the test PostgreSQL database");
                TestDb {
                    store,
                    url,
                    dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// The SQLite data directory (panics for PostgreSQL).
    pub fn data_dir(&self) -> &Path {
        self.dir.as_ref().expect("a SQLite test database").path()
    }
}

/// Creates an empty PostgreSQL database with a unique name; returns its URL and name.
pub async fn create_postgres_database() -> (String, String) {
    let admin = postgres_admin_url();
    let name = format!("clawplane_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::postgres::PgConnection::connect(&admin)
        .await
        .expect("connect to PostgreSQL at CLAWPLANE_TEST_DATABASE_URL (default 127.0.0.1:5432, database test)");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a test database");
    conn.close().await.ok();
    (replace_database(&admin, &name), name)
}

/// Drops a database made by [`create_postgres_database`].
pub async fn drop_postgres_database(name: &str) {
    if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&postgres_admin_url()).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::Executor::execute(&mut conn, sql.as_str()).await;
        conn.close().await.ok();
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs inside the test's runtime; use a thread with its own.
            let handle = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_postgres_database(&name));
                }
            });
            let _ = handle.join();
        }
    }
}

/// A directory for a test's artifacts (screenshots, logs) that outlives the
/// test: `$CLAWPLANE_TEST_ARTIFACTS/<test>` or `<workspace>/test-artifacts/<test>`.
pub fn artifacts_dir(test: &str) -> PathBuf {
    let root = std::env::var("CLAWPLANE_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-artifacts"));
    let dir = root.join(test);
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

/// Runs the body once per backend: `backend_tests!(name, |db| async move { ... })`
/// expands to `mod name { sqlite(), postgres() }` test functions.
#[macro_export]
macro_rules! backend_tests {
    ($(#[$meta:meta])* $name:ident, $body:expr) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::TestDb::new(clawplane_store::Backend::Sqlite).await;
                ($body)(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::TestDb::new(clawplane_store::Backend::Postgres).await;
                ($body)(db).await;
            }
        }
    };
}

/// A new instance record in `provisioning` for `user`, with no runtime yet
/// (for tests of provisioners and pages that need one without a store).
pub fn provisioning_instance(user: &str) -> clawplane_domain::Instance {
    let now = chrono::Utc::now();
    clawplane_domain::Instance {
        id: clawplane_domain::InstanceId::new(),
        user_id: clawplane_domain::UserId::parse(user).expect("a valid test user id"),
        status: clawplane_domain::InstanceStatus::Provisioning,
        status_reason: None,
        runtime_url: None,
        runtime_name: None,
        provisioner: None,
        instance_type: None,
        cf_account_id: None,
        cf_worker_name: None,
        cf_worker_id: None,
        cf_container_app_id: None,
        cf_container_app_name: None,
        r2_bucket_name: None,
        secrets: vec![],
        created_at: now,
        updated_at: now,
        last_ready_at: None,
    }
}
