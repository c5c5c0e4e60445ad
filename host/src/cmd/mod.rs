//! The command layer: the command line ([`cli`], the command enum) and one module per
//! subcommand, each holding its arguments and a thin `run`. Nothing outside `cmd/` imports
//! from here: the library modules below it never reach back up.

pub mod adaptedlayer;
pub mod augment;
pub mod bench;
pub mod capture;
pub mod cli;
pub mod demo;
pub mod enrol;
pub mod eval;
pub mod evalbundle;
pub mod evalliveness;
pub mod evalmaskstate;
pub mod fleet;
pub mod import;
pub mod keys;
pub mod logs;
pub mod lookalikes;
pub mod models;
pub mod opts;
pub mod people;
pub mod predict;
pub mod push;
pub mod refine;
pub mod train;
