//! The non-transferable ERC-20 view: balances equal units, a Transfer log per credit, and
//! every way of moving tokens reverts.

use pocmesh_chain::ChainError;
use pocmesh_chain::client::to_h160;
use pocmesh_chain::contract::decode_revert;
use pocmesh_protocol::{Address, BatchPlan};

use crate::batches::receipts;
use crate::support::{ExpectRecorded as _, chain};

#[tokio::test]
async fn balances_equal_units_and_every_credit_has_a_transfer_log() {
    let c = chain().await;
    let poc = c.recorder.contract();
    let info = poc.info().await.expect("info");
    assert_eq!(info.decimals, 0);
    assert_eq!(info.symbol, "PCU");
    assert!(
        info.code_matches_artifact,
        "deployed code differs from the committed artifact"
    );

    let w = Address([1; 20]);
    c.recorder.record_compute(w).await.expect("single credit");
    let b1 = BatchPlan::new(receipts(1, 12, 3)).expect("plan");
    let b2 = BatchPlan::new(receipts(2, 9, 3)).expect("plan");
    c.recorder.record(&b1).await.expect("b1").expect_recorded();
    c.recorder.record(&b2).await.expect("b2").expect_recorded();
    c.recorder.record_compute(w).await.expect("single credit");

    let mut sum = 0u128;
    for wallet in [
        Address([1; 20]),
        Address([2; 20]),
        Address([3; 20]),
        Address([9; 20]),
    ] {
        let units = poc.units(wallet).await.expect("units");
        assert_eq!(
            poc.balance_of(wallet).await.expect("balance"),
            units,
            "balanceOf != computeUnits for {wallet}"
        );
        let history = poc
            .credit_history(wallet, 0, None, 1_000)
            .await
            .expect("history");
        assert_eq!(
            history.iter().map(|c| c.units).sum::<u128>(),
            units,
            "Transfer logs of {wallet} do not add up"
        );
        sum += units;
    }
    assert_eq!(poc.total_units().await.expect("total"), sum);

    let history = poc
        .credit_history(w, 0, None, 2)
        .await
        .expect("history, small pages");
    let batches: Vec<_> = history.iter().map(|c| c.batch).collect();
    assert_eq!(
        batches,
        vec![None, Some(b1.batch_id), Some(b2.batch_id), None],
        "{history:?}"
    );
    let expected_w = |p: &BatchPlan| {
        p.providers
            .iter()
            .position(|a| *a == w)
            .map_or(0, |i| u128::from(p.units[i]))
    };
    assert_eq!(history[1].units, expected_w(&b1));
    assert_eq!(history[2].units, expected_w(&b2));
}

#[tokio::test]
async fn tokens_cannot_move() {
    let c = chain().await;
    c.recorder
        .record_compute(c.admin.address())
        .await
        .expect("credit");
    let poc = c.recorder.contract().binding();
    let me = to_h160(c.admin.address());
    let other = to_h160(Address([7; 20]));
    let calls = [
        (
            "transfer",
            poc.transfer(other, 1.into()).calldata().expect("cd"),
        ),
        (
            "approve",
            poc.approve(other, 1.into()).calldata().expect("cd"),
        ),
        (
            "transferFrom",
            poc.transfer_from(me, other, 1.into())
                .calldata()
                .expect("cd"),
        ),
    ];
    for (name, data) in calls {
        let err = c
            .admin
            .send(
                "erc20",
                Some(c.deployment.address),
                data.to_vec(),
                decode_revert,
            )
            .await
            .expect_err(name);
        assert!(
            matches!(&err, ChainError::Reverted { reason, .. } if reason.contains("NonTransferable")),
            "{name}: {err}"
        );
    }
    assert_eq!(
        poc.allowance(me, other).call().await.expect("allowance"),
        0.into()
    );
    assert_eq!(
        c.recorder
            .contract()
            .balance_of(c.admin.address())
            .await
            .expect("balance"),
        1
    );
    assert_eq!(
        c.recorder
            .contract()
            .balance_of(Address([7; 20]))
            .await
            .expect("balance"),
        0
    );
}
