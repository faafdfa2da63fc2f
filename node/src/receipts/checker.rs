//! [`ReceiptChecker`]: the node's one way to the chain for receipts. It rebuilds a receipt's
//! leaf with this node's address, asks the contract for the batch root (through the RPC and
//! contract of the trust settings) and checks the Merkle proof against it. Recorded roots never
//! change, so they are cached (bounded); "not recorded" is never cached.

use std::collections::{HashMap, VecDeque};

use pocmesh_chain::ProofOfCompute;
use pocmesh_protocol::{Address, BatchId, Hash32, Receipt, ReceiptLeaf, verify_proof};
use tokio::sync::Mutex;
use tracing::{debug, info};

use super::state::{CheckOutcome, ReceiptFailure, RecheckPolicy};
use crate::config::NodeConfig;

/// Batch roots remembered. One batch holds many receipts, so a few hundred cover weeks of work;
/// 32 + 32 bytes each.
pub const ROOT_CACHE_CAPACITY: usize = 1024;

/// A bounded map of batch roots; the oldest entry goes first when it is full.
#[derive(Debug, Default)]
struct RootCache {
    roots: HashMap<BatchId, Hash32>,
    order: VecDeque<BatchId>,
}

impl RootCache {
    fn get(&self, batch: &BatchId) -> Option<Hash32> {
        self.roots.get(batch).copied()
    }

    fn insert(&mut self, batch: BatchId, root: Hash32) {
        if self.roots.insert(batch, root).is_some() {
            return;
        }
        self.order.push_back(batch);
        while self.order.len() > ROOT_CACHE_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.roots.remove(&old);
            }
        }
    }
}

/// Whose receipts a checker checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptOwner {
    /// The node's address (its key): the `node` of every leaf it is credited by.
    pub node: Address,
    /// The wallet its receipts must credit.
    pub wallet: Address,
}

/// Checks receipts against the batch roots of one ProofOfCompute contract.
#[derive(Debug)]
pub struct ReceiptChecker {
    rpc: String,
    contract: Address,
    node: Address,
    wallet: Address,
    policy: RecheckPolicy,
    /// Connected on first use and kept (connecting costs three calls).
    chain: Mutex<Option<ProofOfCompute>>,
    roots: std::sync::Mutex<RootCache>,
}

impl ReceiptChecker {
    /// A checker for `owner`'s receipts, asking `contract` over `rpc`, with the default
    /// [`RecheckPolicy`].
    pub fn new(rpc: impl Into<String>, contract: Address, owner: ReceiptOwner) -> Self {
        ReceiptChecker {
            rpc: rpc.into(),
            contract,
            node: owner.node,
            wallet: owner.wallet,
            policy: RecheckPolicy::default(),
            chain: Mutex::new(None),
            roots: std::sync::Mutex::new(RootCache::default()),
        }
    }

    /// The same checker with another retry rule.
    pub fn with_policy(self, policy: RecheckPolicy) -> Self {
        ReceiptChecker { policy, ..self }
    }

    /// The checker `config` describes for the node `node`, or `None` when it names no chain
    /// (`trust.rpc` and `trust.contract`) or no wallet.
    pub fn from_config(config: &NodeConfig, node: Address) -> Option<Self> {
        let (Some(rpc), Some(contract), Some(wallet)) =
            (&config.trust.rpc, config.trust.contract, config.wallet)
        else {
            return None;
        };
        Some(
            ReceiptChecker::new(rpc.clone(), contract, ReceiptOwner { node, wallet })
                .with_policy(RecheckPolicy::from(&config.receipts)),
        )
    }

    /// The retry rule for checks that settle nothing.
    pub fn policy(&self) -> &RecheckPolicy {
        &self.policy
    }

    /// The receipt's leaf as the dispatcher must have committed to it: this node's address,
    /// the rest from the receipt.
    pub fn leaf(&self, receipt: &Receipt) -> ReceiptLeaf {
        ReceiptLeaf {
            job: receipt.job,
            provider: receipt.provider,
            node: self.node,
            units: receipt.units,
            result_hash: receipt.result_hash,
        }
    }

    /// What the chain says about `receipt`: never an error — an unreachable chain is
    /// [`CheckOutcome::Unavailable`], to be asked again later.
    pub async fn check(&self, receipt: &Receipt) -> CheckOutcome {
        if let Some(reason) = self.refuse_at_once(receipt) {
            return CheckOutcome::Failed(reason);
        }
        let root = match self.batch_root(receipt.batch).await {
            Ok(Some(root)) => root,
            Ok(None) => return CheckOutcome::NotRecorded,
            Err(e) => {
                return CheckOutcome::Unavailable {
                    reason: e.to_string(),
                };
            }
        };
        if verify_proof(root, self.leaf(receipt).hash(), &receipt.proof) {
            CheckOutcome::Verified
        } else {
            CheckOutcome::Failed(ReceiptFailure::ProofMismatch {
                batch: receipt.batch,
                root,
            })
        }
    }

    /// The reason to refuse `receipt` without asking the chain, if there is one.
    pub fn refuse_at_once(&self, receipt: &Receipt) -> Option<ReceiptFailure> {
        (receipt.provider != self.wallet).then_some(ReceiptFailure::WrongProvider {
            provider: receipt.provider,
            wallet: self.wallet,
        })
    }

    /// The root of `batch` on chain, from the cache when it was seen before.
    async fn batch_root(
        &self,
        batch: BatchId,
    ) -> Result<Option<Hash32>, pocmesh_chain::ChainError> {
        if let Some(root) = self.roots.lock().ok().and_then(|c| c.get(&batch)) {
            return Ok(Some(root));
        }
        let mut chain = self.chain.lock().await;
        let contract = match chain.take() {
            Some(c) => c,
            None => {
                let c = ProofOfCompute::at(&self.rpc, self.contract).await?;
                info!(rpc = %self.rpc, contract = %self.contract, "checking receipts on chain");
                c
            }
        };
        let root = contract.batch_root(batch).await;
        *chain = Some(contract);
        let root = root?;
        debug!(%batch, recorded = root.is_some(), "asked the chain for a batch root");
        if let (Some(root), Ok(mut cache)) = (root, self.roots.lock()) {
            cache.insert(batch, root);
        }
        Ok(root)
    }

    /// Batch roots cached now.
    pub fn cached_roots(&self) -> usize {
        self.roots.lock().map(|c| c.roots.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_cache_stays_bounded_and_drops_the_oldest() {
        let mut cache = RootCache::default();
        let id = |n: usize| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&(n as u64).to_be_bytes());
            BatchId::from(b)
        };
        for n in 0..ROOT_CACHE_CAPACITY + 10 {
            cache.insert(id(n), Hash32([1u8; 32]));
            cache.insert(id(n), Hash32([1u8; 32]));
        }
        assert_eq!(cache.roots.len(), ROOT_CACHE_CAPACITY);
        assert_eq!(cache.order.len(), ROOT_CACHE_CAPACITY);
        assert_eq!(cache.get(&id(9)), None, "oldest dropped");
        assert_eq!(cache.get(&id(10)), Some(Hash32([1u8; 32])));
        assert!(cache.get(&id(ROOT_CACHE_CAPACITY + 9)).is_some());
    }

    #[tokio::test]
    async fn a_receipt_for_another_wallet_fails_without_asking_the_chain() {
        // An RPC nobody listens on: the answer must come before any call.
        let checker = ReceiptChecker::new(
            "http://127.0.0.1:9",
            Address::from([1u8; 20]),
            ReceiptOwner {
                node: Address::from([2u8; 20]),
                wallet: Address::from([3u8; 20]),
            },
        );
        let receipt = Receipt {
            job: pocmesh_protocol::JobId::from([4u8; 32]),
            batch: BatchId::from([5u8; 32]),
            tx: Hash32([6u8; 32]),
            block: 1,
            units: 2,
            provider: Address::from([7u8; 20]),
            result_hash: Hash32([8u8; 32]),
            proof: vec![],
        };
        assert_eq!(
            checker.check(&receipt).await,
            CheckOutcome::Failed(ReceiptFailure::WrongProvider {
                provider: Address::from([7u8; 20]),
                wallet: Address::from([3u8; 20]),
            })
        );
    }
}
