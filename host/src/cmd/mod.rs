//! One module per subcommand.

pub mod augment;
pub mod bench;
pub mod capture;
pub mod demo;
pub mod enrol;
pub mod eval;
pub mod evalbundle;
pub mod import;
pub mod keys;
pub mod logs;
pub mod lookalikes;
pub mod models;
pub mod people;
pub mod predict;
pub mod push;
pub mod refine;
pub mod train;
