//! A batch of receipts as it goes on chain: leaves in order, their Merkle root, units aggregated
//! per wallet, and a batch id derived from the content so the contract refuses a repeat.

use std::collections::BTreeMap;

use crate::address::Address;
use crate::hash::{Hash32, keccak256_concat};
use crate::ids::BatchId;
use crate::receipt::{MerkleError, MerkleTree, ReceiptLeaf};

/// Domain tag of batch ids, so a batch id can never equal any other 32-byte value we hash.
const BATCH_ID_TAG: &[u8] = b"pocmesh/batch/1";

/// Why a batch could not be formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// No receipts.
    #[error("a batch needs at least one receipt")]
    Empty,
    /// A receipt credits zero units (the contract refuses zero entries).
    #[error("receipt for job {job} credits zero units")]
    ZeroUnits {
        /// The job.
        job: String,
    },
    /// A receipt credits the zero address.
    #[error("receipt for job {job} credits the zero address")]
    ZeroProvider {
        /// The job.
        job: String,
    },
    /// The same job credits the same node twice (redundant jobs credit each agreeing node
    /// once).
    #[error("job {job} credits node {node} twice in one batch")]
    DuplicateJob {
        /// The job.
        job: String,
        /// The node.
        node: String,
    },
    /// Building the tree failed.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

/// Everything `recordBatch` needs, derived from an ordered list of receipts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// `keccak256("pocmesh/batch/1" ‖ receiptsRoot)`: same receipts in the same order, same id.
    pub batch_id: BatchId,
    /// The Merkle root of the receipt leaves.
    pub root: Hash32,
    /// Distinct wallets, in ascending address order.
    pub providers: Vec<Address>,
    /// Units per wallet, aligned with `providers`.
    pub units: Vec<u64>,
    /// The receipts, in batch (leaf) order.
    pub receipts: Vec<ReceiptLeaf>,
    tree: MerkleTree,
}

impl BatchPlan {
    /// Plans a batch over `receipts`, in the given order.
    pub fn new(receipts: Vec<ReceiptLeaf>) -> Result<Self, BatchError> {
        if receipts.is_empty() {
            return Err(BatchError::Empty);
        }
        let mut per_wallet: BTreeMap<Address, u64> = BTreeMap::new();
        let mut jobs = std::collections::HashSet::with_capacity(receipts.len());
        for r in &receipts {
            if r.units == 0 {
                return Err(BatchError::ZeroUnits {
                    job: r.job.to_string(),
                });
            }
            if r.provider == Address::ZERO {
                return Err(BatchError::ZeroProvider {
                    job: r.job.to_string(),
                });
            }
            if !jobs.insert((r.job, r.node)) {
                return Err(BatchError::DuplicateJob {
                    job: r.job.to_string(),
                    node: r.node.to_string(),
                });
            }
            let entry = per_wallet.entry(r.provider).or_default();
            *entry = entry.saturating_add(r.units);
        }
        let tree = MerkleTree::new(receipts.iter().map(ReceiptLeaf::hash).collect())?;
        let root = tree.root();
        let batch_id = BatchId(Hash32(keccak256_concat(&[BATCH_ID_TAG, root.as_bytes()])));
        let (providers, units) = per_wallet.into_iter().unzip();
        Ok(BatchPlan {
            batch_id,
            root,
            providers,
            units,
            receipts,
            tree,
        })
    }

    /// Total units of the batch.
    pub fn total_units(&self) -> u64 {
        self.units.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// The Merkle proof of receipt `index`.
    pub fn proof(&self, index: usize) -> Result<Vec<Hash32>, MerkleError> {
        self.tree.proof(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;
    use crate::receipt::verify_proof;

    fn r(job: u8, wallet: u8, units: u64) -> ReceiptLeaf {
        ReceiptLeaf {
            job: JobId::from([job; 32]),
            provider: Address([wallet; 20]),
            node: Address([wallet.wrapping_add(100); 20]),
            units,
            result_hash: Hash32([job; 32]),
        }
    }

    #[test]
    fn aggregates_per_wallet_and_proves_every_receipt() {
        let plan = BatchPlan::new(vec![r(1, 2, 5), r(2, 1, 3), r(3, 2, 7)]).expect("plan");
        assert_eq!(plan.providers, vec![Address([1; 20]), Address([2; 20])]);
        assert_eq!(plan.units, vec![3, 12]);
        assert_eq!(plan.total_units(), 15);
        for (i, leaf) in plan.receipts.iter().enumerate() {
            assert!(verify_proof(
                plan.root,
                leaf.hash(),
                &plan.proof(i).expect("proof")
            ));
        }
    }

    #[test]
    fn id_is_derived_from_content() {
        let a = BatchPlan::new(vec![r(1, 1, 1), r(2, 1, 1), r(3, 1, 1)]).expect("plan");
        let b = BatchPlan::new(vec![r(1, 1, 1), r(2, 1, 1), r(3, 1, 1)]).expect("plan");
        assert_eq!(
            a.batch_id, b.batch_id,
            "same receipts, same id: a resend is refused on chain"
        );
        let more = BatchPlan::new(vec![r(1, 1, 1), r(2, 1, 1), r(4, 1, 1)]).expect("plan");
        assert_ne!(a.batch_id, more.batch_id);
        let units = BatchPlan::new(vec![r(1, 1, 1), r(2, 1, 1), r(3, 1, 2)]).expect("plan");
        assert_ne!(a.batch_id, units.batch_id);
        assert_ne!(a.batch_id.0, a.root, "the id is tagged, not the bare root");
    }

    #[test]
    fn refuses_what_the_contract_would_refuse() {
        assert_eq!(BatchPlan::new(vec![]), Err(BatchError::Empty));
        assert!(matches!(
            BatchPlan::new(vec![r(1, 1, 0)]),
            Err(BatchError::ZeroUnits { .. })
        ));
        assert!(matches!(
            BatchPlan::new(vec![r(1, 0, 1)]),
            Err(BatchError::ZeroProvider { .. })
        ));
        assert!(matches!(
            BatchPlan::new(vec![r(1, 1, 1), r(1, 1, 1)]),
            Err(BatchError::DuplicateJob { .. })
        ));
        // One job run by two nodes (redundancy 2) credits both.
        let both = BatchPlan::new(vec![r(1, 1, 1), r(1, 2, 1)]).expect("two nodes, one job");
        assert_eq!(both.total_units(), 2);
    }
}
