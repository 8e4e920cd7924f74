//! The control plane's HTTP server, `clawplane serve`.
//!
//! - [`startup`]: builds the application from its settings, takes a listener
//!   and a shutdown signal, runs the background jobs, shuts down gracefully;
//! - [`routes`]: the route table and one module per resource;
//! - [`error`]: the one error type of this surface and its JSON envelope;
//! - [`extract`]: request parsing that answers bad input with the envelope
//!   (JSON bodies, user ids, idempotency keys) and the key checks;
//! - [`instances`]: the instance service, its reconciler, and what billing
//!   may do to instances (the runtime-backed fleet);
//! - [`runtime_client`]: the typed client of each instance's runtime agent;
//! - [`provision`]: the `local` and `static` provisioners;
//! - [`metrics`]: the Prometheus registry and the request middleware;
//! - [`tasks`]: the supervised set of long-running background tasks;
//! - [`console`]: the web console (server-rendered pages, sign-in, sessions);
//! - [`ingress`]: the front door from `<runtime_name>.<domain>` to a gateway.

pub mod config;
pub mod console;
pub mod error;
pub mod extract;
pub mod ingress;
pub mod instances;
pub mod metrics;
pub mod provision;
pub mod routes;
pub mod runtime_client;
pub mod startup;
pub mod state;
pub mod tasks;

pub use config::ServerConfig;
pub use startup::Application;
