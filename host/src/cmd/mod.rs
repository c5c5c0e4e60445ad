//! One module per subcommand.

pub mod demo;
pub mod eval;
pub mod logs;
pub mod models;
