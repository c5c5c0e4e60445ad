//! One module per subcommand.

pub mod bench;
pub mod demo;
pub mod enrol;
pub mod eval;
pub mod keys;
pub mod logs;
pub mod models;
pub mod push;
