//! # pocmesh-chain
//!
//! Everything pocmesh does on an EVM chain, through `ethers`: the `ProofOfCompute` contract's
//! bindings (generated from the committed ABI), deployment and role grants, the batch
//! [`Recorder`] that puts verified work on chain exactly once, reads (units, totals, a wallet's
//! credit history), a local [`anvil::Anvil`] devnet, and the gas benchmark.
//!
//! It does not decide *what* to record — that is the dispatcher's outbox — and it holds no state
//! of its own: exactly-once rests on the contract refusing a repeated batch id.
//!
//! Works against any EVM JSON-RPC endpoint; transactions are legacy (XDC takes no EIP-1559) and
//! the contract is built for EVM `paris` (XDC has no PUSH0).

pub mod anvil;
pub mod artifact;
#[allow(missing_docs)]
pub mod bindings;
pub mod client;
pub mod contract;
pub mod devnet;
pub mod error;
pub mod explorer;
pub mod gas_bench;
pub mod recorder;

pub use client::{ChainClient, Mined, RetryPolicy, TxPolicy};
pub use contract::{
    ContractInfo, Credit, Deployment, Grant, ProofOfCompute, deploy, grant_dispatcher,
};
pub use devnet::Devnet;
pub use error::ChainError;
pub use recorder::{RecordOutcome, Recorder};
