//! The runtime agent against a real OpenClaw gateway, installed by
//! `clawplane openclaw install` (run `./scripts/test`, which installs it).

mod api;
mod backups;
mod cell;
mod devices;
mod helpers;
mod lifecycle;
