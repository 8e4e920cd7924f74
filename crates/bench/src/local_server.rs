//! The server the in-process benchmarks measure: `serve`'s application on
//! 127.0.0.1:0 over SQLite in a directory, with the `local` provisioner
//! running this binary as `clawplane runtime` (a real gateway per instance)
//! and a fresh key ring.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clawplane_secrets::{EncryptionKey, KeyRing};
use clawplane_server::provision::local::{LocalProvisioner, LocalSettings};
use clawplane_server::{Application, ServerConfig};
use clawplane_store::{Store, StoreOptions};

/// A running in-process server.
pub struct LocalServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its store.
    pub store: Store,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalServer {
    /// Starts the server over `data_dir`, runtimes from `cache_dir`'s OpenClaw,
    /// every gateway in a cell.
    pub async fn start(
        data_dir: &Path,
        cache_dir: &Path,
        options: &StoreOptions,
        start_timeout: Duration,
        config: ServerConfig,
    ) -> anyhow::Result<LocalServer> {
        Self::start_with(data_dir, cache_dir, options, start_timeout, config, true).await
    }

    /// [`LocalServer::start`], with cells or without (`--isolation none`).
    pub async fn start_with(
        data_dir: &Path,
        cache_dir: &Path,
        options: &StoreOptions,
        start_timeout: Duration,
        config: ServerConfig,
        cells: bool,
    ) -> anyhow::Result<LocalServer> {
        let store = Store::open_sqlite_dir(data_dir, options).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let provisioner = Arc::new(LocalProvisioner::new(LocalSettings {
            data_dir: data_dir.to_owned(),
            binary: std::env::current_exe()?,
            cache_dir: cache_dir.to_owned(),
            start_timeout,
            stop_timeout: Duration::from_secs(90),
            cell_uid_base: cells
                .then_some(clawplane_server::provision::local::DEFAULT_CELL_UID_BASE),
            runtime_args: Vec::new(),
        }));
        let app = Application::build(
            config,
            store.clone(),
            KeyRing::new(EncryptionKey::generate()),
            provisioner,
            listener,
        );
        let base = format!("http://{}", app.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Ok(LocalServer {
            base,
            store,
            stop,
            task,
        })
    }

    /// Shuts it down (runtimes are stopped by deleting their instances
    /// first); waits at most 30 s.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}
