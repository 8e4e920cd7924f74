//! Opening a store: URL parsing, pools, SQLite pragmas and migrations.
//!
//! SQLite allows one writer at a time. Rather than let concurrent write
//! transactions fail with `SQLITE_BUSY`, the SQLite store serialises writes
//! through a pool of one connection and reads through a separate pool; WAL
//! lets readers proceed while the writer commits. `synchronous=NORMAL` in WAL
//! mode keeps every committed transaction across a crash of the process
//! (`kill -9`); only a power loss can roll back the last commits.
//!
//! PostgreSQL uses one pool for both.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::ledger::group_commit::GroupCommit;
use crate::StoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The SQLite file's name inside the data directory.
pub const SQLITE_FILE_NAME: &str = "clawplane.sqlite";

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend's name, for logs and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections to PostgreSQL, or SQLite readers.
    pub max_connections: u32,
    /// How long to wait for a free connection before failing.
    pub acquire_timeout: Duration,
    /// How long a user's instance read may be answered from memory. This
    /// process's own writes clear it at once; the TTL bounds how late a write
    /// of another process shows. Zero turns the cache off.
    pub read_cache_ttl: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            read_cache_ttl: Duration::from_secs(1),
        }
    }
}

/// The store: cheap to clone, shared by every part of the process.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) backend: Backend,
    /// Reads. For PostgreSQL the same pool as `write`.
    pub(crate) read: AnyPool,
    /// Writes and transactions. One connection for SQLite.
    pub(crate) write: AnyPool,
    /// SQLite only: the ledger's group-commit writer.
    pub(crate) group_commit: Option<GroupCommit>,
    /// Users' current instances, cleared by every instance write.
    pub(crate) instance_cache: Option<InstanceCache>,
}

/// A short-lived cache of `current_instance_for_user`.
pub(crate) type InstanceCache = moka::future::Cache<String, Option<clawplane_domain::Instance>>;

fn instance_cache(ttl: Duration) -> Option<InstanceCache> {
    (!ttl.is_zero()).then(|| {
        moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(ttl)
            .build()
    })
}

impl Store {
    /// Forgets every cached instance read (after any instance write).
    pub(crate) fn instances_changed(&self) {
        if let Some(cache) = &self.instance_cache {
            cache.invalidate_all();
        }
    }

    /// Opens (creating if needed) the SQLite file `clawplane.sqlite` in `dir`.
    pub async fn open_sqlite_dir(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        create_private_dir(dir).map_err(|e| {
            StoreError::Corrupt(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(SQLITE_FILE_NAME);
        Self::connect(&format!("sqlite://{}", path.display()), options).await
    }

    /// Connects to `sqlite://PATH` or `postgres://...` and runs pending migrations.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let store = match backend {
            Backend::Sqlite => {
                let url = with_sqlite_create_mode(url);
                let write = sqlite_pool(&url, 1, options).await?;
                // The writer creates the file and switches it to WAL first.
                SQLITE_MIGRATIONS.run(&write).await?;
                let read = sqlite_pool(&url, options.max_connections.max(1), options).await?;
                let group_commit = Some(GroupCommit::start(write.clone()));
                Store {
                    backend,
                    read,
                    write,
                    group_commit,
                    instance_cache: instance_cache(options.read_cache_ttl),
                }
            }
            Backend::Postgres => {
                let connect = AnyConnectOptions::from_str(url)?
                    .log_statements(log::LevelFilter::Trace)
                    .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1));
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                Store {
                    backend,
                    read: pool.clone(),
                    write: pool,
                    group_commit: None,
                    instance_cache: instance_cache(options.read_cache_ttl),
                }
            }
        };
        Ok(store)
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Creates the data directory readable by its owner only (0700); an existing
/// directory is left as the operator made it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn with_sqlite_create_mode(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

async fn sqlite_pool(
    url: &str,
    max_connections: u32,
    options: &StoreOptions,
) -> Result<AnyPool, StoreError> {
    let connect = AnyConnectOptions::from_str(url)?
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1));
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(options.acquire_timeout)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 10000; \
                     PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
        .connect_with(connect)
        .await?;
    Ok(pool)
}
