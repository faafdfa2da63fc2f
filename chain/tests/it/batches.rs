//! Roles, exactly-once batches and the contract's refusals.

use pocmesh_chain::anvil::DEV_KEY_1;
use pocmesh_chain::contract::decode_revert;
use pocmesh_chain::{
    ChainClient, ChainError, RecordOutcome, Recorder, TxPolicy, client::to_h160, grant_dispatcher,
};
use pocmesh_protocol::{Address, BatchPlan, Hash32, JobId, ReceiptLeaf, keccak256};

use crate::support::{chain, key};

pub(crate) fn receipts(seed: u64, n: u64, wallets: u8) -> Vec<ReceiptLeaf> {
    (0..n)
        .map(|j| ReceiptLeaf {
            job: JobId::from(keccak256([seed, j].map(u64::to_be_bytes).concat())),
            provider: Address([1 + (j % wallets as u64) as u8; 20]),
            node: Address([100 + (j % wallets as u64) as u8; 20]),
            units: 1 + j % 3,
            result_hash: Hash32::keccak(j.to_be_bytes()),
        })
        .collect()
}

#[tokio::test]
async fn only_dispatchers_can_record() {
    let c = chain().await;
    let outsider = ChainClient::connect(&c.anvil.rpc_url(), &key(DEV_KEY_1), TxPolicy::default())
        .await
        .expect("connect");
    // The recorder refuses to start without the role, naming the fix.
    let err = Recorder::new(outsider.clone(), c.deployment.address)
        .await
        .expect_err("no role");
    assert!(
        matches!(
            err,
            ChainError::MissingRole {
                role: "DISPATCHER_ROLE",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("pocmesh contract grant"));

    // Calling the contract directly reverts for both recording functions.
    let poc = c.recorder.contract().binding();
    let plan = BatchPlan::new(receipts(1, 3, 2)).expect("plan");
    let batch = ethers::types::Bytes::from(
        c.recorder
            .contract()
            .record_batch_calldata(&plan)
            .expect("calldata"),
    );
    let single = poc
        .record_compute(to_h160(Address([5; 20])))
        .calldata()
        .expect("calldata");
    for data in [batch, single] {
        let err = outsider
            .send(
                "record",
                Some(c.deployment.address),
                data.to_vec(),
                decode_revert,
            )
            .await
            .expect_err("reverts");
        assert!(
            matches!(&err, ChainError::Reverted { reason, .. } if reason.starts_with("AccessControlUnauthorizedAccount")),
            "{err}"
        );
    }
    assert_eq!(c.recorder.contract().total_units().await.expect("total"), 0);

    // Once granted, the outsider records.
    grant_dispatcher(&c.admin, c.deployment.address, outsider.address())
        .await
        .expect("grant");
    let r = Recorder::new(outsider, c.deployment.address)
        .await
        .expect("now a dispatcher");
    assert!(matches!(
        r.record(&plan).await.expect("records"),
        RecordOutcome::Recorded { .. }
    ));
}

#[tokio::test]
async fn a_repeated_batch_is_refused_on_chain_and_reported_as_already_recorded() {
    let c = chain().await;
    let plan = BatchPlan::new(receipts(2, 20, 4)).expect("plan");
    let first = c.recorder.record(&plan).await.expect("first");
    let RecordOutcome::Recorded { tx, block, .. } = first else {
        panic!("expected Recorded, got {first:?}")
    };
    let again = c.recorder.record(&plan).await.expect("second");
    assert_eq!(
        again,
        RecordOutcome::AlreadyRecorded {
            tx: Some(tx),
            block: Some(block)
        }
    );

    // A raw second submission reverts with the contract's own error.
    let data = ethers::types::Bytes::from(
        c.recorder
            .contract()
            .record_batch_calldata(&plan)
            .expect("calldata"),
    );
    let err = c
        .admin
        .send(
            "recordBatch",
            Some(c.deployment.address),
            data.to_vec(),
            decode_revert,
        )
        .await
        .expect_err("repeat");
    assert!(
        matches!(&err, ChainError::Reverted { reason, .. } if reason.starts_with("BatchAlreadyRecorded")),
        "{err}"
    );

    // Credited once.
    let poc = c.recorder.contract();
    let total: u64 = plan.units.iter().sum();
    assert_eq!(poc.total_units().await.expect("total"), u128::from(total));
    for (w, u) in plan.providers.iter().zip(&plan.units) {
        assert_eq!(poc.units(*w).await.expect("units"), u128::from(*u));
    }
}

#[tokio::test]
async fn malformed_batches_revert_with_named_errors() {
    let c = chain().await;
    let poc = c.recorder.contract().binding();
    let send = |data: ethers::types::Bytes| {
        let admin = c.admin.clone();
        let to = c.deployment.address;
        async move {
            admin
                .send("recordBatch", Some(to), data.to_vec(), decode_revert)
                .await
                .expect_err("must revert")
        }
    };
    let a = to_h160(Address([1; 20]));
    let b = to_h160(Address([2; 20]));
    let cases: Vec<(&str, ethers::types::Bytes)> = vec![
        (
            "LengthMismatch",
            poc.record_batch([1; 32], [2; 32], vec![a, b], vec![1.into()])
                .calldata()
                .expect("cd"),
        ),
        (
            "EmptyBatch",
            poc.record_batch([1; 32], [2; 32], vec![], vec![])
                .calldata()
                .expect("cd"),
        ),
        (
            "ZeroReceiptsRoot",
            poc.record_batch([1; 32], [0; 32], vec![a], vec![1.into()])
                .calldata()
                .expect("cd"),
        ),
        (
            "ZeroBatchId",
            poc.record_batch([0; 32], [2; 32], vec![a], vec![1.into()])
                .calldata()
                .expect("cd"),
        ),
        (
            "ZeroProvider",
            poc.record_batch(
                [1; 32],
                [2; 32],
                vec![a, Default::default()],
                vec![1.into(), 1.into()],
            )
            .calldata()
            .expect("cd"),
        ),
        (
            "ZeroUnits",
            poc.record_batch([1; 32], [2; 32], vec![a], vec![0.into()])
                .calldata()
                .expect("cd"),
        ),
    ];
    for (name, data) in cases {
        let err = send(data).await;
        assert!(
            matches!(&err, ChainError::Reverted { reason, .. } if reason.contains(name)),
            "{name}: {err}"
        );
    }
    assert_eq!(c.recorder.contract().total_units().await.expect("total"), 0);
}

#[tokio::test]
async fn a_refused_entry_is_found_before_anything_is_paid_for() {
    let c = chain().await;
    let poc = c.recorder.contract().binding();
    let a = to_h160(Address([1; 20]));
    // What a batch with a zero wallet at index 1 would do, asked with eth_call: the contract
    // names the entry, and nothing was sent.
    let nonce_before = c.admin.block_number().await.expect("block");
    let zero_at_1 = poc
        .record_batch(
            [1; 32],
            [2; 32],
            vec![a, Default::default()],
            vec![1.into(), 1.into()],
        )
        .calldata()
        .expect("cd");
    let revert = c
        .admin
        .simulate(c.deployment.address, zero_at_1.to_vec())
        .await
        .expect("the RPC answers")
        .expect_err("the contract refuses it");
    assert_eq!(
        pocmesh_chain::contract::refused_entry(&revert),
        Some((1, "the provider is the zero address"))
    );
    let zero_units = poc
        .record_batch([1; 32], [2; 32], vec![a], vec![0.into()])
        .calldata()
        .expect("cd");
    let revert = c
        .admin
        .simulate(c.deployment.address, zero_units.to_vec())
        .await
        .expect("answers")
        .expect_err("refused");
    assert_eq!(
        pocmesh_chain::contract::refused_entry(&revert),
        Some((0, "the entry credits zero units"))
    );
    // Other refusals are not about one entry.
    let empty = poc
        .record_batch([1; 32], [2; 32], vec![], vec![])
        .calldata()
        .expect("cd");
    let revert = c
        .admin
        .simulate(c.deployment.address, empty.to_vec())
        .await
        .expect("answers")
        .expect_err("refused");
    assert_eq!(pocmesh_chain::contract::refused_entry(&revert), None);
    assert_eq!(
        c.admin.block_number().await.expect("block"),
        nonce_before,
        "nothing mined"
    );
    // A good batch passes the preflight, and is recorded.
    let plan = BatchPlan::new(receipts(9, 4, 2)).expect("plan");
    c.recorder
        .preflight(&plan)
        .await
        .expect("the contract would take it");
    c.recorder.record(&plan).await.expect("recorded");
    // Once recorded, the preflight still passes (the recorder then finds it on chain).
    c.recorder
        .preflight(&plan)
        .await
        .expect("already recorded is not a refusal");
}

#[tokio::test]
async fn an_unreachable_rpc_is_a_retryable_error_that_names_the_url() {
    let policy = TxPolicy {
        retry: pocmesh_chain::RetryPolicy {
            attempts: 2,
            initial: std::time::Duration::from_millis(10),
            max: std::time::Duration::from_millis(10),
        },
        ..TxPolicy::default()
    };
    // Port 9 on loopback: nothing listens there.
    let err = ChainClient::connect("http://127.0.0.1:9", &key(DEV_KEY_1), policy)
        .await
        .expect_err("unreachable");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    let bad = ChainClient::connect("not a url", &key(DEV_KEY_1), TxPolicy::default())
        .await
        .expect_err("bad url");
    assert!(!bad.is_retryable());
}
