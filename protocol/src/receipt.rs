//! Receipt leaves and the Merkle tree of a batch, as the contract's `verifyReceipt` checks them.
//!
//! Leaf: `keccak256(bytes.concat(keccak256(abi.encode(jobId, provider, node, units, resultHash))))`
//! with types `(bytes32, address, address, uint256, bytes32)`. Tree: leaves in batch order; each
//! pair hashed sorted (OpenZeppelin `MerkleProof` convention, `keccak256(min ‖ max)`); an odd last
//! node moves up a level unchanged. A one-leaf tree's root is the leaf, with an empty proof.

use crate::address::Address;
use crate::hash::{Hash32, keccak256, keccak256_concat};
use crate::ids::JobId;

/// One verified completion as it is committed to on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceiptLeaf {
    /// The job.
    pub job: JobId,
    /// The wallet credited.
    pub provider: Address,
    /// The node that did the work.
    pub node: Address,
    /// Units credited.
    pub units: u64,
    /// keccak256 of the job's result.
    pub result_hash: Hash32,
}

impl ReceiptLeaf {
    /// `abi.encode(jobId, provider, node, units, resultHash)`: five 32-byte words.
    pub fn abi_encode(&self) -> [u8; 160] {
        let mut out = [0u8; 160];
        out[0..32].copy_from_slice(self.job.as_bytes());
        out[44..64].copy_from_slice(self.provider.as_bytes());
        out[76..96].copy_from_slice(self.node.as_bytes());
        out[120..128].copy_from_slice(&self.units.to_be_bytes());
        out[128..160].copy_from_slice(self.result_hash.as_bytes());
        out
    }

    /// The finished leaf (double keccak, so a leaf can never be mistaken for an inner node).
    pub fn hash(&self) -> Hash32 {
        Hash32(keccak256(keccak256(self.abi_encode())))
    }
}

/// Hash of an inner node: the pair sorted, then concatenated.
pub fn hash_pair(a: &Hash32, b: &Hash32) -> Hash32 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    Hash32(keccak256_concat(&[lo.as_bytes(), hi.as_bytes()]))
}

/// Why a tree could not be built or a proof made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// A tree needs at least one leaf.
    #[error("a Merkle tree needs at least one leaf")]
    Empty,
    /// The leaf index is past the end.
    #[error("leaf index {index} is out of range for a tree of {len} leaves")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// Number of leaves.
        len: usize,
    },
}

/// A Merkle tree over finished leaves, all levels kept so proofs are cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash32>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves`, in that order.
    pub fn new(leaves: Vec<Hash32>) -> Result<Self, MerkleError> {
        if leaves.is_empty() {
            return Err(MerkleError::Empty);
        }
        let mut levels = vec![leaves];
        while let Some(level) = levels.last().filter(|l| l.len() > 1) {
            let next: Vec<Hash32> = level
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => hash_pair(a, b),
                    [a] => *a,
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
            levels.push(next);
        }
        Ok(MerkleTree { levels })
    }

    /// The root.
    pub fn root(&self) -> Hash32 {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or(Hash32::ZERO)
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether the tree has no leaves (never true for a built tree).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sibling hashes from leaf `index` up to the root.
    pub fn proof(&self, index: usize) -> Result<Vec<Hash32>, MerkleError> {
        if index >= self.len() {
            return Err(MerkleError::IndexOutOfRange {
                index,
                len: self.len(),
            });
        }
        let mut proof = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            if let Some(h) = level.get(sibling) {
                proof.push(*h);
            }
            i /= 2;
        }
        Ok(proof)
    }
}

/// Folds `proof` onto `leaf` the way OpenZeppelin's `MerkleProof.processProof` does.
pub fn process_proof(leaf: Hash32, proof: &[Hash32]) -> Hash32 {
    proof
        .iter()
        .fold(leaf, |acc, sibling| hash_pair(&acc, sibling))
}

/// Whether `proof` links `leaf` to `root`.
pub fn verify_proof(root: Hash32, leaf: Hash32, proof: &[Hash32]) -> bool {
    process_proof(leaf, proof) == root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf(n: u64) -> Hash32 {
        ReceiptLeaf {
            job: JobId::from(keccak256(n.to_be_bytes())),
            provider: Address([1; 20]),
            node: Address([2; 20]),
            units: n,
            result_hash: Hash32::keccak(b"result"),
        }
        .hash()
    }

    #[test]
    fn abi_encoding_places_each_word() {
        let l = ReceiptLeaf {
            job: JobId::from([0xaa; 32]),
            provider: Address([0x11; 20]),
            node: Address([0x22; 20]),
            units: 0x0102,
            result_hash: Hash32([0xbb; 32]),
        };
        let enc = l.abi_encode();
        assert_eq!(&enc[0..32], &[0xaa; 32]);
        assert_eq!(&enc[32..44], &[0; 12]);
        assert_eq!(&enc[44..64], &[0x11; 20]);
        assert_eq!(&enc[64..76], &[0; 12]);
        assert_eq!(&enc[76..96], &[0x22; 20]);
        assert_eq!(&enc[96..126], &[0; 30]);
        assert_eq!(&enc[126..128], &[1, 2]);
        assert_eq!(&enc[128..160], &[0xbb; 32]);
    }

    #[test]
    fn shapes_follow_the_design() {
        let one = MerkleTree::new(vec![leaf(1)]).expect("tree");
        assert_eq!(one.root(), leaf(1));
        assert!(one.proof(0).expect("proof").is_empty());

        let three = MerkleTree::new(vec![leaf(1), leaf(2), leaf(3)]).expect("tree");
        // The odd third leaf moves up unchanged: root = H(H(l1,l2), l3).
        assert_eq!(
            three.root(),
            hash_pair(&hash_pair(&leaf(1), &leaf(2)), &leaf(3))
        );
        assert_eq!(
            three.proof(2).expect("proof"),
            vec![hash_pair(&leaf(1), &leaf(2))]
        );
        assert!(matches!(
            three.proof(3),
            Err(MerkleError::IndexOutOfRange { index: 3, len: 3 })
        ));
        assert_eq!(MerkleTree::new(vec![]), Err(MerkleError::Empty));
    }

    #[test]
    fn pair_hash_is_order_independent() {
        assert_eq!(hash_pair(&leaf(1), &leaf(2)), hash_pair(&leaf(2), &leaf(1)));
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_tampering_fails(n in 1usize..300, flip in any::<u8>(), pick in any::<usize>()) {
            let leaves: Vec<Hash32> = (0..n as u64).map(leaf).collect();
            let tree = MerkleTree::new(leaves.clone()).expect("tree");
            let root = tree.root();
            for (i, l) in leaves.iter().enumerate() {
                let proof = tree.proof(i).expect("proof");
                prop_assert!(proof.len() <= 9);
                prop_assert!(verify_proof(root, *l, &proof));
            }
            let i = pick % n;
            let mut bad_leaf = leaves[i];
            bad_leaf.0[(flip as usize) % 32] ^= 1 | flip;
            prop_assert!(!verify_proof(root, bad_leaf, &tree.proof(i).expect("proof")));
            let mut proof = tree.proof(i).expect("proof");
            if !proof.is_empty() {
                let j = pick % proof.len();
                proof[j].0[(flip as usize) % 32] ^= 1 | flip;
                prop_assert!(!verify_proof(root, leaves[i], &proof));
            }
        }
    }
}
