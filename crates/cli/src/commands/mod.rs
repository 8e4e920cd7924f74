//! One module per subcommand.

pub mod admin;
pub mod bench;
pub mod serve;
