//! The Rust Merkle code agrees with the contract's `verifyReceipt` for trees of 1 to 257 receipts.

use std::sync::Arc;

use pocmesh_protocol::{BatchPlan, Hash32};

use crate::support::ExpectRecorded as _;
use tokio::task::JoinSet;

use crate::batches::receipts;
use crate::support::chain;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_leaf_of_trees_of_1_to_257_receipts_verifies_on_chain() {
    let c = chain().await;
    let poc = Arc::new(c.recorder.contract().clone());
    let mut checked = 0usize;
    for n in 1..=257u64 {
        let plan = Arc::new(BatchPlan::new(receipts(10_000 + n, n, 7)).expect("plan"));
        // Before recording, the contract knows no root: even a correct proof is false.
        assert!(
            !poc.verify_receipt(
                plan.batch_id,
                plan.receipts[0].hash(),
                &plan.proof(0).expect("proof")
            )
            .await
            .expect("call")
        );
        c.recorder
            .record(&plan)
            .await
            .expect("recorded")
            .expect_recorded();
        assert_eq!(
            poc.batch_root(plan.batch_id).await.expect("root"),
            Some(plan.root)
        );

        let mut calls = JoinSet::new();
        for i in 0..n as usize {
            let (poc, plan) = (poc.clone(), plan.clone());
            calls.spawn(async move {
                let leaf = plan.receipts[i].hash();
                let proof = plan.proof(i).expect("proof");
                let ok = poc
                    .verify_receipt(plan.batch_id, leaf, &proof)
                    .await
                    .expect("call");
                assert!(
                    ok,
                    "leaf {i} of {} not verified on chain",
                    plan.receipts.len()
                );
            });
            if calls.len() >= 16 {
                calls.join_next().await.expect("task").expect("no panic");
            }
        }
        while let Some(r) = calls.join_next().await {
            r.expect("no panic");
        }
        checked += n as usize;

        // Tampering: a changed leaf, and (where there is one) a changed proof element.
        let i = (n as usize * 7919) % n as usize;
        let mut bad_leaf = plan.receipts[i];
        bad_leaf.units += 1;
        let proof = plan.proof(i).expect("proof");
        assert!(
            !poc.verify_receipt(plan.batch_id, bad_leaf.hash(), &proof)
                .await
                .expect("call"),
            "tampered leaf verified (n={n})"
        );
        if !proof.is_empty() {
            let mut bad_proof = proof.clone();
            let j = i % bad_proof.len();
            bad_proof[j].0[0] ^= 0x80;
            assert!(
                !poc.verify_receipt(plan.batch_id, plan.receipts[i].hash(), &bad_proof)
                    .await
                    .expect("call"),
                "tampered proof verified (n={n})"
            );
        }
        assert!(
            !poc.verify_receipt(plan.batch_id, Hash32::keccak(b"not a leaf"), &proof)
                .await
                .expect("call")
        );
    }
    assert_eq!(checked, 257 * 258 / 2);
}
