//! Errors of the chain crate, classified so callers know whether to retry.

use std::path::PathBuf;

use pocmesh_protocol::{Address, Hash32};

/// What went wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint could not be reached or did not answer properly.
    #[error(
        "RPC {url} unreachable or failing: {reason}; check the URL and that the node is running"
    )]
    Rpc {
        /// The endpoint.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The node answered with an error (not a transport problem).
    #[error("RPC {url} refused the request: {reason}")]
    RpcRefused {
        /// The endpoint.
        url: String,
        /// The node's message.
        reason: String,
    },
    /// The call would revert, or did.
    #[error("contract call {call} reverted: {reason}")]
    Reverted {
        /// What was called.
        call: &'static str,
        /// The decoded revert reason.
        reason: String,
        /// The transaction, if one was mined.
        tx: Option<Hash32>,
    },
    /// The account lacks a role the operation needs.
    #[error(
        "{account} does not hold {role} on contract {contract}; grant it with `pocmesh contract grant --rpc <URL> --contract {contract} {account}` using the admin key"
    )]
    MissingRole {
        /// The account.
        account: Address,
        /// The role's name.
        role: &'static str,
        /// The contract.
        contract: Address,
    },
    /// There is no contract (or not ours) at the address.
    #[error(
        "no ProofOfCompute contract at {address} on chain {chain_id}: {reason}; check --contract and --rpc"
    )]
    NotProofOfCompute {
        /// The address given.
        address: Address,
        /// The chain.
        chain_id: u64,
        /// What was found instead.
        reason: String,
    },
    /// A transaction was sent but not mined (or not confirmed) in time.
    #[error(
        "transaction {tx} not confirmed within {waited_s} s; it may still be mined — check it on the explorer before resending"
    )]
    Timeout {
        /// The transaction.
        tx: Hash32,
        /// How long we waited.
        waited_s: u64,
    },
    /// The sender cannot pay for gas.
    #[error(
        "account {account} has too little balance for gas ({reason}); fund it (on Apothem: the XDC faucet)"
    )]
    InsufficientFunds {
        /// The account.
        account: Address,
        /// The node's message.
        reason: String,
    },
    /// A batch id is on chain with a different root than ours: two different batches collided.
    #[error(
        "batch {batch} is recorded on chain with root {on_chain}, not {ours}: refusing to treat it as ours"
    )]
    BatchConflict {
        /// The batch id.
        batch: Hash32,
        /// The root on chain.
        on_chain: Hash32,
        /// Our root.
        ours: Hash32,
    },
    /// The node says the batch is already recorded in its pending state, but no block holds it
    /// yet (an earlier transaction of ours is in the mempool) and it did not land in time.
    #[error(
        "batch {batch} is pending in an earlier transaction that was not mined within {waited_s} s; try again later"
    )]
    PendingElsewhere {
        /// The batch id.
        batch: Hash32,
        /// How long we waited.
        waited_s: u64,
    },
    /// The contract would refuse one entry of a batch, whatever is retried: the credits of that
    /// provider can never be recorded (see `Recorder::preflight`).
    #[error(
        "recordBatch would refuse entry {index} ({provider}) of batch {batch}: {reason}; those credits can never be recorded"
    )]
    EntryRefused {
        /// The batch id.
        batch: Hash32,
        /// The entry's index in the batch's provider list.
        index: usize,
        /// The provider of that entry.
        provider: Address,
        /// The contract's reason.
        reason: String,
    },
    /// Invalid input (a bad URL, a key, a config value).
    #[error("{0}")]
    Invalid(String),
    /// The embedded contract artifact is broken (a build problem).
    #[error("the embedded contract artifact is invalid: {0}")]
    Artifact(String),
    /// The local anvil could not be found or started.
    #[error("{0}")]
    Anvil(String),
    /// anvil is not installed where we looked.
    #[error(
        "anvil not found (looked in {searched:?} and PATH); install it with `npm ci --prefix tools` in the pocmesh checkout, or install Foundry"
    )]
    AnvilNotFound {
        /// Folders searched.
        searched: Vec<PathBuf>,
    },
}

impl ChainError {
    /// Whether trying again later may succeed (transport trouble, timeouts), as opposed to an
    /// answer that will not change (a revert, a missing role, bad input).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ChainError::Rpc { .. }
                | ChainError::Timeout { .. }
                | ChainError::PendingElsewhere { .. }
        )
    }
}
