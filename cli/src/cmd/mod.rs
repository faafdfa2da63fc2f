//! One module per top-level command.

pub(crate) mod bench;
pub(crate) mod chain_args;
pub(crate) mod contract;
pub(crate) mod daemon_args;
pub(crate) mod dispatcher;
pub(crate) mod inspect;
pub(crate) mod job;
pub(crate) mod keys;
pub(crate) mod node;
pub(crate) mod testnet;
pub(crate) mod units;
