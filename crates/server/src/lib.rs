//! The control plane's HTTP server, `clawplane serve`.
//!
//! - [`startup`]: builds the application from its settings, takes a listener
//!   and a shutdown signal, runs the background jobs, shuts down gracefully;
//! - [`app`]: the application's router, where the API, the console and the
//!   ingress meet under their shared layers;
//! - [`routes`]: the API's route table and one module per resource;
//! - [`error`]: the one error type of this surface and its JSON envelope;
//! - [`extract`]: request parsing that answers bad input with the envelope
//!   (JSON bodies, user ids, idempotency keys) and the key checks;
//! - [`api_tokens`]: issuing a user's API tokens (the API's and the console's);
//! - [`instances`]: the instance service, its reconciler, and what billing
//!   may do to instances (the runtime-backed fleet);
//! - [`runtime_client`]: the typed client of each instance's runtime agent;
//! - [`provision`]: the `local` and `static` provisioners;
//! - [`metrics`]: the Prometheus registry and the request middleware;
//! - [`models`]: the model proxy's accounts (token lookup, holds in the ledger);
//! - [`tasks`]: the supervised set of long-running background tasks;
//! - [`console`]: the web console (server-rendered pages, sign-in, sessions);
//! - [`ingress`]: the front door from `<runtime_name>.<domain>` to a gateway;
//! - [`door_passes`]: the door's one-time passes and cookies, which the
//!   console issues and the ingress takes;
//! - [`peer`]: who the client is (its address behind trusted proxies) and
//!   the port its `Host` names, for every surface.

pub mod api_tokens;
pub mod app;
pub mod config;
pub mod console;
pub mod door_passes;
pub mod error;
pub mod extract;
pub mod ingress;
pub mod instances;
pub mod metrics;
pub mod models;
pub mod peer;
pub mod provision;
pub mod routes;
pub mod runtime_client;
pub mod startup;
pub mod state;
pub mod tasks;

pub use config::ServerConfig;
pub use startup::Application;
