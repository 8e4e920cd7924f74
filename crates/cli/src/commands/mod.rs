//! One module per subcommand.

pub mod admin;
pub mod openclaw;
pub mod runtime;
pub mod serve;
