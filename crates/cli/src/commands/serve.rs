//! `clawplane serve`: the control plane.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clawplane_secrets::SecretString;
use clawplane_server::{Application, ServerConfig};

use crate::config::{BillingArgs, KeyArgs, StoreArgs};

/// Settings of `serve`. Keys (`OA_CONTROL_KEY`, `OA_INTERNAL_KEY`,
/// `OPENCLAW_ENCRYPTION_KEY`) come from the environment only.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CLAWPLANE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub keys: KeyArgs,

    #[command(flatten)]
    pub billing: BillingArgs,

    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "CLAWPLANE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Do not run the background jobs (monthly grants, metering) in this process.
    #[arg(long, env = "CLAWPLANE_NO_JOBS", default_value_t = false)]
    pub no_jobs: bool,
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let billing = args.billing.config()?;
    let store = args.store.open().await?;
    let keys = args.keys.key_ring(&args.store, store.backend())?;
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {}: the port may be in use; choose another address with --listen or CLAWPLANE_LISTEN",
            args.listen
        )
    })?;
    let config = ServerConfig {
        control_key: secret_env("OA_CONTROL_KEY"),
        internal_key: secret_env("OA_INTERNAL_KEY"),
        billing,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        run_jobs: !args.no_jobs,
        ..Default::default()
    };
    if config.control_key.is_none() {
        tracing::warn!(
            "OA_CONTROL_KEY is not set: the /control/openclaw endpoints answer 500 until it is"
        );
    }
    let app = Application::build(config, store.clone(), keys, listener);
    let addr = app.local_addr()?;
    tracing::info!(database = store.backend().as_str(), "clawplane is ready");
    println!("clawplane listening on http://{addr}");
    app.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn secret_env(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(SecretString::from)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
