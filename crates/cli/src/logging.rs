//! Structured logs to stderr: text for people, JSON for collectors. The level
//! comes from `CLAWPLANE_LOG` (or `RUST_LOG`), default `info`; the config
//! layer reads them ([`crate::config::log_filter`]).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(format: &str) {
    let filter = crate::config::log_filter()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
