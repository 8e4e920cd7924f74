//! HTTP tests of `clawplane serve`'s router over real stores (SQLite and PostgreSQL).

mod accounts;
mod auth;
mod bad_input;
mod billing;
mod capacity;
mod console;
mod console_hardening;
mod console_more;
mod control;
mod control_status;
mod door_app;
mod door_origin;
mod door_sweep;
mod hashing;
mod helpers;
mod models;
mod openapi;
mod rules;
mod runtime_client;
mod sessions;
mod surface;
mod tokens;
