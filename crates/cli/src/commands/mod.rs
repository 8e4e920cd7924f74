//! One module per subcommand.

pub mod admin;
pub mod bench;
pub mod openclaw;
pub mod runtime;
pub mod serve;
