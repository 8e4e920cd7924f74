//! HTTP tests of `clawplane serve`'s router over real stores (SQLite and PostgreSQL).

mod billing;
mod helpers;
mod runtime_client;
mod surface;
