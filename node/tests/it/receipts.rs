//! Receipt checks against a real chain: anvil with the contract, a batch of two receipts
//! recorded by a dispatcher key, and the node's [`ReceiptChecker`] and store deciding which
//! receipts count. Time in the store passes is given explicitly, so the retry rule is tested
//! without sleeping.

use pocmesh_chain::anvil::AnvilConfig;
use pocmesh_chain::{Devnet, RecordOutcome, Recorder};
use pocmesh_node::receipts::{
    CHECKS_PER_PASS, CheckOutcome, ReceiptChecker, ReceiptFailure, ReceiptOwner, ReceiptState,
    RecheckPolicy, check_due,
};
use pocmesh_node::store::NodeStore;
use pocmesh_protocol::{Address, BatchPlan, Hash32, JobId, Receipt, ReceiptLeaf};

/// anvil with the contract deployed and a recorder whose key holds DISPATCHER_ROLE.
struct Chain {
    /// Killed when dropped.
    _devnet: Devnet,
    rpc: String,
    contract: Address,
    recorder: Recorder,
}

impl Chain {
    async fn start() -> Chain {
        let devnet = Devnet::start(None, &AnvilConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let recorder = devnet.recorder().await.expect("recorder");
        Chain {
            rpc: devnet.rpc(),
            contract: devnet.contract(),
            _devnet: devnet,
            recorder,
        }
    }
}

const NODE: Address = Address([0x11; 20]);
const WALLET: Address = Address([0x22; 20]);

fn leaf(job: u8, units: u64) -> ReceiptLeaf {
    ReceiptLeaf {
        job: JobId::from([job; 32]),
        provider: WALLET,
        node: NODE,
        units,
        result_hash: Hash32([job.wrapping_add(100); 32]),
    }
}

/// The receipt a dispatcher sends for leaf `index` of `plan`.
fn receipt(plan: &BatchPlan, index: usize, tx: Hash32) -> Receipt {
    let l = plan.receipts[index];
    Receipt {
        job: l.job,
        batch: plan.batch_id,
        tx,
        block: 1,
        units: l.units,
        provider: l.provider,
        result_hash: l.result_hash,
        proof: plan.proof(index).expect("proof"),
    }
}

/// Small numbers, so a whole retry history fits in a test: checks 10, 20, 40, 40 ms apart; a
/// batch fails as not recorded after 3 such answers and 100 ms.
const POLICY: RecheckPolicy = RecheckPolicy {
    retry_base_ms: 10,
    retry_max_ms: 40,
    not_recorded_tries: 3,
    not_recorded_grace_ms: 100,
};

fn checker(rpc: &str, contract: Address) -> ReceiptChecker {
    ReceiptChecker::new(
        rpc,
        contract,
        ReceiptOwner {
            node: NODE,
            wallet: WALLET,
        },
    )
    .with_policy(POLICY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_count_only_when_their_proof_matches_the_root_on_chain() {
    let chain = Chain::start().await;
    let plan = BatchPlan::new(vec![leaf(1, 7), leaf(2, 11)]).expect("plan");
    let outcome = chain.recorder.record(&plan).await.expect("record");
    assert!(
        matches!(outcome, RecordOutcome::Recorded { .. }),
        "{outcome:?}"
    );
    let tx = outcome.tx().expect("tx");
    let unrecorded = BatchPlan::new(vec![leaf(3, 5)]).expect("plan");

    let good = receipt(&plan, 0, tx);
    let good_second = receipt(&plan, 1, tx);
    let tampered_units = Receipt {
        units: good_second.units + 1,
        ..good_second.clone()
    };
    let wrong_proof = Receipt {
        proof: plan.proof(1).expect("proof"),
        ..good.clone()
    };
    let never_recorded = receipt(&unrecorded, 0, tx);

    // The checker alone.
    let c = checker(&chain.rpc, chain.contract);
    assert_eq!(c.check(&good).await, CheckOutcome::Verified);
    assert_eq!(c.check(&good_second).await, CheckOutcome::Verified);
    let mismatch = CheckOutcome::Failed(ReceiptFailure::ProofMismatch {
        batch: plan.batch_id,
        root: plan.root,
    });
    assert_eq!(c.check(&tampered_units).await, mismatch);
    assert_eq!(c.check(&wrong_proof).await, mismatch);
    // Another node cannot claim this node's leaf: its own address goes into the leaf.
    let stranger = ReceiptChecker::new(
        chain.rpc.as_str(),
        chain.contract,
        ReceiptOwner {
            node: Address([0x33; 20]),
            wallet: WALLET,
        },
    );
    assert_eq!(stranger.check(&good).await, mismatch);
    assert_eq!(c.check(&never_recorded).await, CheckOutcome::NotRecorded);
    assert_eq!(
        c.cached_roots(),
        1,
        "the recorded root is cached, a missing one is not"
    );

    // Through the store: only the verified receipt's units are earned.
    let dir = tempfile::tempdir().expect("tmp");
    let store = NodeStore::open(dir.path()).expect("store");
    let t0 = 1_000_000;
    for r in [&good, &tampered_units, &never_recorded] {
        assert!(
            store
                .receipt(r, None, ReceiptState::pending(t0), t0)
                .expect("store")
        );
    }
    let pass = check_due(&store, &c, t0, CHECKS_PER_PASS)
        .await
        .expect("pass");
    assert_eq!((pass.verified, pass.failed, pass.still_pending), (1, 1, 1));
    let totals = store.totals().expect("totals");
    assert_eq!(totals.units_earned, 7, "only the verified receipt counts");
    assert_eq!((totals.receipts_pending, totals.units_pending), (1, 5));
    let failed = store.failed_receipts(20).expect("failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].job, tampered_units.job);
    assert!(
        failed[0].reason.to_string().contains("does not link"),
        "{}",
        failed[0].reason
    );

    // The unrecorded batch: pending while the rule has not run out, then failed.
    let mut history = Vec::new();
    let final_state = loop {
        let state = store
            .stored_receipt(&never_recorded.job)
            .expect("get")
            .expect("row")
            .state;
        match state {
            ReceiptState::Pending { next_check_ms, .. } => {
                assert!(history.len() < 10, "never settled: {history:?}");
                history.push(next_check_ms - t0);
                check_due(&store, &c, next_check_ms, CHECKS_PER_PASS)
                    .await
                    .expect("pass");
            }
            settled => break settled,
        }
    };
    // Answers at +0 (above), +10, +30 (3 answers, only 30 ms), +70, +110 (≥ 100 ms): failed.
    assert_eq!(history, vec![10, 30, 70, 110]);
    let ReceiptState::Failed { reason, at_ms } = final_state else {
        panic!("expected failed, got {final_state:?}");
    };
    assert_eq!(at_ms, t0 + 110);
    assert_eq!(
        reason,
        ReceiptFailure::NotRecorded {
            batch: unrecorded.batch_id,
            answers: 5,
            waited_s: 0
        }
    );
    assert!(reason.to_string().contains("is not recorded on chain"));
    let totals = store.totals().expect("totals");
    assert_eq!(totals.units_earned, 7);
    assert_eq!(
        (
            totals.receipts_failed,
            totals.receipts_pending,
            totals.units_pending
        ),
        (2, 0, 0)
    );

    // An unreachable RPC keeps a receipt pending; once the chain answers, it is verified.
    let dir = tempfile::tempdir().expect("tmp");
    let store = NodeStore::open(dir.path()).expect("store");
    let down = checker("http://127.0.0.1:1", chain.contract);
    assert!(
        store
            .receipt(&good_second, None, ReceiptState::pending(t0), t0)
            .expect("store")
    );
    let pass = check_due(&store, &down, t0, CHECKS_PER_PASS)
        .await
        .expect("pass");
    assert_eq!((pass.verified, pass.failed, pass.still_pending), (0, 0, 1));
    let next = pass.next_due_ms.expect("rescheduled");
    assert_eq!(next, t0 + POLICY.retry_base_ms);
    let pass = check_due(&store, &c, next, CHECKS_PER_PASS)
        .await
        .expect("pass");
    assert_eq!(pass.verified, 1);
    assert_eq!(store.totals().expect("totals").units_earned, 11);
}
