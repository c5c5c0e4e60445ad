//! Signed model updates: the on-disk store ([`store`]) and the network server ([`server`]).

pub mod server;
pub mod store;
