//! Fuzz targets for the parsers a stranger reaches first: money amounts,
//! ids, the ingress's host and path, the door's form and JSON bodies.
//!
//! The targets are [bolero](https://camshaft.github.io/bolero) `check!()`s
//! in `tests/`, one file per parser family, each asserting properties (a
//! parse that succeeds round-trips, a duplicated key is refused, a foreign
//! origin never passes the door, no input is answered 500), not only that
//! nothing panics. This library holds what they share:
//!
//! - [`text`]: input bytes turned into text, raw or as tokens of a
//!   dictionary, so random and mutated inputs reach past the first check;
//! - [`json_tree`]: JSON documents generated as trees, rendered to text
//!   with escapes and repeated keys, with what a strict parser must say;
//! - [`app`]: `serve` on a loopback port over a SQLite store, with a ready
//!   instance, its owner, passes and door cookies;
//! - [`wire`]: raw HTTP/1.1 requests (any `Host`, any path) and replies.
//!
//! **In CI** every target runs a fixed number of inputs (set in code with
//! `with_iterations`) through the normal test command, a few seconds each:
//!
//! ```text
//! cargo nextest run -p clawplane-fuzz
//! ```
//!
//! `BOLERO_RANDOM_ITERATIONS=<n>` (or `BOLERO_RANDOM_TEST_TIME_MS=<ms>`)
//! runs more in the same mode; `BOLERO_RANDOM_SEED=<seed>` replays the seed
//! a failure printed.
//!
//! **To fuzz for longer** with coverage guidance (libFuzzer and the
//! address sanitizer), install `cargo-bolero` and a nightly toolchain, then
//! name a target (target names are unique across the test files, and
//! cargo-bolero has no `--test`; the workspace defines no `fuzz` profile,
//! so name one):
//!
//! ```text
//! cargo install cargo-bolero
//! cargo bolero test -p clawplane-fuzz --toolchain nightly --profile release \
//!     decimal_text_parses_exactly_or_not_at_all -T 10min
//! ```
//!
//! With `cfg(fuzzing)` the iteration counts in code are ignored and `-T`
//! (or `--runs`) bounds the run. Inputs libFuzzer keeps go to
//! `tests/__fuzz__/<file>__<target>/corpus` and `crashes`; the normal test
//! command replays both before its random inputs, so a crash found once
//! stays a regression test once committed.

pub mod app;
pub mod json_tree;
pub mod text;
pub mod wire;
