//! Signed model updates: the one update flow ([`install`]), the on-disk store ([`store`]) and
//! the network server ([`server`]).

pub mod install;
pub mod server;
pub mod store;
