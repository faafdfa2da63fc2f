//! The batch recorder: puts a [`BatchPlan`] on chain exactly once.
//!
//! Exactly-once comes from the contract, not from our bookkeeping: the batch id is derived from
//! the batch's content and `recordBatch` refuses an id it has seen. So the recorder first asks
//! `batchRoot(id)`; if the batch is there (with our root) it reports
//! [`RecordOutcome::AlreadyRecorded`] — which is what a restart after a crash between sending and
//! bookkeeping finds — and only otherwise sends. A send that reverts because the batch landed
//! meanwhile is reported the same way, and when the node's pending state already holds the
//! batch (an earlier copy still in the mempool) the recorder waits for that copy to be mined
//! rather than paying for a second one. An unreachable RPC
//! is retried with backoff and then returned as a retryable error: the caller keeps the batch and
//! tries again later; nothing is dropped.

use pocmesh_protocol::{Address, BatchPlan, Hash32};
use serde::Serialize;
use tracing::{info, warn};

use crate::client::{ChainClient, Mined, to_h160};
use crate::contract::{ProofOfCompute, decode_revert, refused_entry};
use crate::error::ChainError;

/// What happened to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecordOutcome {
    /// This call recorded it.
    Recorded {
        /// The transaction.
        tx: Hash32,
        /// Its block.
        block: u64,
        /// Gas used.
        gas_used: u64,
    },
    /// It was on chain already (recorded earlier, perhaps by a run that crashed).
    AlreadyRecorded {
        /// The transaction that recorded it, when its log was found.
        tx: Option<Hash32>,
        /// Its block.
        block: Option<u64>,
    },
}

impl RecordOutcome {
    /// The recording transaction, if known.
    pub fn tx(&self) -> Option<Hash32> {
        match self {
            RecordOutcome::Recorded { tx, .. } => Some(*tx),
            RecordOutcome::AlreadyRecorded { tx, .. } => *tx,
        }
    }
}

/// Records batches to one contract from one dispatcher key. Run one recorder per key: nonces
/// are read from the chain before each send, which is restart-safe but not shared-key-safe.
#[derive(Debug, Clone)]
pub struct Recorder {
    client: ChainClient,
    contract: ProofOfCompute,
    /// First block searched for `BatchRecorded` logs (the deployment block is a good value).
    pub log_from_block: u64,
    /// Blocks per `eth_getLogs` page.
    pub log_page: u64,
}

impl Recorder {
    /// A recorder for `contract`; refuses a key without DISPATCHER_ROLE.
    pub async fn new(client: ChainClient, contract: Address) -> Result<Self, ChainError> {
        let poc = ProofOfCompute::at(client.url(), contract).await?;
        if !poc.is_dispatcher(client.address()).await? {
            return Err(ChainError::MissingRole {
                account: client.address(),
                role: "DISPATCHER_ROLE",
                contract,
            });
        }
        Ok(Recorder {
            client,
            contract: poc,
            log_from_block: 0,
            log_page: 10_000,
        })
    }

    /// The contract handle, for reads.
    pub fn contract(&self) -> &ProofOfCompute {
        &self.contract
    }

    /// The client, for balance checks.
    pub fn client(&self) -> &ChainClient {
        &self.client
    }

    /// Records `plan` unless it is on chain already.
    pub async fn record(&self, plan: &BatchPlan) -> Result<RecordOutcome, ChainError> {
        self.record_observed(plan, &mut |_| {}).await
    }

    /// As [`Recorder::record`], calling `on_sent(tx)` once the transaction is with the node —
    /// the moment to persist "sent" in an outbox.
    pub async fn record_observed(
        &self,
        plan: &BatchPlan,
        on_sent: &mut (dyn FnMut(Hash32) + Send),
    ) -> Result<RecordOutcome, ChainError> {
        if let Some(done) = self.already_recorded(plan).await? {
            info!(batch = %plan.batch_id, "batch already on chain");
            return Ok(done);
        }
        self.preflight(plan).await?;
        let data = self.contract.record_batch_calldata(plan)?;
        let sent = self
            .client
            .broadcast(
                "recordBatch",
                Some(self.contract.address()),
                data,
                decode_revert,
            )
            .await;
        let tx = match sent {
            Ok(tx) => tx,
            Err(ChainError::Reverted { reason, .. })
                if reason.starts_with("BatchAlreadyRecorded") =>
            {
                // The node's pending state has the batch: an earlier transaction of ours (from
                // a run that crashed) is in the mempool. Wait for it instead of paying twice.
                info!(batch = %plan.batch_id, "batch pending in another transaction; waiting for it to be mined");
                return self.wait_landed(plan).await;
            }
            Err(e) => return Err(e),
        };
        on_sent(tx);
        match self
            .client
            .wait_mined("recordBatch", tx, decode_revert)
            .await
        {
            Ok(Mined {
                tx,
                block,
                gas_used,
                ..
            }) => {
                info!(batch = %plan.batch_id, %tx, block, gas_used, entries = plan.providers.len(), "batch recorded");
                Ok(RecordOutcome::Recorded {
                    tx,
                    block,
                    gas_used,
                })
            }
            Err(ChainError::Reverted {
                reason,
                tx: Some(tx),
                ..
            }) => {
                warn!(batch = %plan.batch_id, %tx, reason, "recordBatch reverted; checking whether the batch landed");
                self.confirm_already(plan).await
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the contract, without sending anything, whether it would take `plan`: an entry it
    /// refuses is [`ChainError::EntryRefused`] (so the caller can set those credits aside and
    /// record the rest), any other revert [`ChainError::Reverted`]. A batch the node already
    /// holds (recorded, or pending from an earlier run) passes: [`Recorder::record`] finds it.
    pub async fn preflight(&self, plan: &BatchPlan) -> Result<(), ChainError> {
        let data = self.contract.record_batch_calldata(plan)?;
        match self.client.simulate(self.contract.address(), data).await? {
            Ok(_) => Ok(()),
            Err(revert) => {
                if let Some((index, reason)) = refused_entry(&revert) {
                    return Err(ChainError::EntryRefused {
                        batch: plan.batch_id.0,
                        index,
                        provider: plan.providers.get(index).copied().unwrap_or(Address::ZERO),
                        reason: reason.to_string(),
                    });
                }
                let reason = decode_revert(&revert);
                if reason.starts_with("BatchAlreadyRecorded") {
                    return Ok(());
                }
                Err(ChainError::Reverted {
                    call: "recordBatch",
                    reason,
                    tx: None,
                })
            }
        }
    }

    async fn wait_landed(&self, plan: &BatchPlan) -> Result<RecordOutcome, ChainError> {
        let policy = self.client.policy();
        let started = std::time::Instant::now();
        loop {
            if let Some(done) = self.already_recorded(plan).await? {
                return Ok(done);
            }
            if started.elapsed() > policy.receipt_timeout {
                return Err(ChainError::PendingElsewhere {
                    batch: plan.batch_id.0,
                    waited_s: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(policy.poll_interval).await;
        }
    }

    async fn confirm_already(&self, plan: &BatchPlan) -> Result<RecordOutcome, ChainError> {
        self.already_recorded(plan)
            .await?
            .ok_or_else(|| ChainError::Reverted {
                call: "recordBatch",
                reason: "reverted and the batch is not on chain".into(),
                tx: None,
            })
    }

    async fn already_recorded(
        &self,
        plan: &BatchPlan,
    ) -> Result<Option<RecordOutcome>, ChainError> {
        match self.contract.batch_root(plan.batch_id).await? {
            None => Ok(None),
            Some(root) if root != plan.root => Err(ChainError::BatchConflict {
                batch: plan.batch_id.0,
                on_chain: root,
                ours: plan.root,
            }),
            Some(_) => {
                let found = self
                    .contract
                    .find_batch_tx(plan.batch_id, self.log_from_block, self.log_page)
                    .await?;
                Ok(Some(RecordOutcome::AlreadyRecorded {
                    tx: found.map(|f| f.0),
                    block: found.map(|f| f.1),
                }))
            }
        }
    }

    /// Credits one unit to `provider` with the original single-call `recordCompute`.
    pub async fn record_compute(&self, provider: Address) -> Result<Mined, ChainError> {
        let data = self
            .contract
            .binding()
            .record_compute(to_h160(provider))
            .calldata()
            .ok_or_else(|| ChainError::Invalid("encoding recordCompute".into()))?
            .to_vec();
        self.client
            .send(
                "recordCompute",
                Some(self.contract.address()),
                data,
                decode_revert,
            )
            .await
    }
}
