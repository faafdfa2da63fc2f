//! One module per top-level command.

pub(crate) mod allowlist;
pub(crate) mod api_client;
pub(crate) mod bench;
pub(crate) mod chain_args;
pub(crate) mod contract;
pub(crate) mod daemon_args;
pub(crate) mod dispatcher;
pub(crate) mod health;
pub(crate) mod inspect;
pub(crate) mod job;
pub(crate) mod job_generate;
pub(crate) mod keys;
pub(crate) mod node;
pub(crate) mod testnet;
pub(crate) mod units;
pub(crate) mod wallet;
