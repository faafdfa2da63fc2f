//! How verified work reaches the chain, as a small trait: the dispatcher's logic does not know
//! the Ethereum library. The real implementation wraps `pocmesh_chain::Recorder`.

use std::future::Future;
use std::pin::Pin;

use pocmesh_chain::{ChainError, RecordOutcome, Recorder};
use pocmesh_protocol::{BatchPlan, Hash32};

/// A batch that is on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landed {
    /// The recording transaction (zero when an earlier run recorded it and its log was not found).
    pub tx: Hash32,
    /// Its block (0 when unknown).
    pub block: u64,
    /// Whether this call sent it (false: it was there already).
    pub sent_now: bool,
    /// Gas the recording transaction used, when this call sent it.
    pub gas_used: Option<u64>,
}

/// Why a batch is not on chain (yet).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SubmitError {
    /// What went wrong.
    pub message: String,
    /// Whether trying again later may work (RPC down, timeout).
    pub retryable: bool,
    /// Set when the contract refuses one provider of the batch: no retry will change it, and
    /// the batch can go without that provider.
    pub refused: Option<RefusedEntry>,
}

/// One provider of a batch the contract refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEntry {
    /// The provider (wallet).
    pub provider: pocmesh_protocol::Address,
    /// The contract's reason.
    pub reason: String,
}

/// A boxed future, so the trait stays object-safe.
pub type SubmitFuture<'a> = Pin<Box<dyn Future<Output = Result<Landed, SubmitError>> + Send + 'a>>;

/// Records batches of receipts; must be idempotent per batch id.
pub trait ProofSubmitter: Send + Sync + 'static {
    /// Puts `plan` on chain, or finds it there.
    fn submit<'a>(&'a self, plan: &'a BatchPlan) -> SubmitFuture<'a>;

    /// The chain's id, when there is one.
    fn chain_id(&self) -> Option<u64>;
}

impl ProofSubmitter for Recorder {
    fn chain_id(&self) -> Option<u64> {
        Some(self.client().chain_id())
    }

    fn submit<'a>(&'a self, plan: &'a BatchPlan) -> SubmitFuture<'a> {
        Box::pin(async move {
            match self.record(plan).await {
                Ok(RecordOutcome::Recorded {
                    tx,
                    block,
                    gas_used,
                }) => Ok(Landed {
                    tx,
                    block,
                    sent_now: true,
                    gas_used: Some(gas_used),
                }),
                Ok(RecordOutcome::AlreadyRecorded { tx, block }) => Ok(Landed {
                    tx: tx.unwrap_or(Hash32::ZERO),
                    block: block.unwrap_or(0),
                    sent_now: false,
                    gas_used: None,
                }),
                Err(e) => Err(SubmitError {
                    retryable: e.is_retryable(),
                    message: e.to_string(),
                    refused: match e {
                        ChainError::EntryRefused {
                            provider, reason, ..
                        } => Some(RefusedEntry { provider, reason }),
                        _ => None,
                    },
                }),
            }
        })
    }
}
