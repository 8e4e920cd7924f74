//! Integration tests of clawplane-backup over real parts: the local filesystem store, real
//! SQLite databases written to while they are backed up, and a real S3-compatible server.

mod crash;
mod helpers;
mod hostile;
mod local;
mod restore_safety;
mod retention;
mod s3;
