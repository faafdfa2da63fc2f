//! The local chain comes up with the contract deployed, the dispatcher granted and demo units
//! credited — checked by reading the chain, not the launcher's own report.

mod refused_batch;

use pocmesh_chain::ProofOfCompute;
use pocmesh_testnet::{ChainConfig, demo_wallets, start_chain};

#[tokio::test]
async fn the_local_chain_has_the_contract_the_dispatcher_and_demo_units() {
    let config = ChainConfig {
        port: 0,
        demo_receipts: 12,
        ..ChainConfig::default()
    };
    let chain = start_chain(&config, &mut |_| {})
        .await
        .expect("local chain starts");
    let info = &chain.info;
    assert_eq!(info.net, "devnet-551");
    let poc = ProofOfCompute::at(&info.rpc, info.contract)
        .await
        .expect("contract there");
    assert!(poc.is_dispatcher(info.dispatcher).await.expect("role"));
    assert!(!poc.is_dispatcher(demo_wallets()[0]).await.expect("role"));
    let mut sum = 0;
    for w in &info.wallets {
        let on_chain = poc.units(w.wallet).await.expect("units");
        assert_eq!(on_chain, w.units);
        assert!(on_chain > 0);
        sum += on_chain;
    }
    // 12 receipts with 1 + j % 5 units each.
    assert_eq!(sum, (0..12u128).map(|j| 1 + j % 5).sum::<u128>());
    assert_eq!(poc.total_units().await.expect("total"), sum);
    let pid = chain.anvil.pid();
    drop(chain);
    // Dropping the chain kills anvil and reaps it, so its /proc entry is gone.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "anvil {pid} still running after drop"
    );
}
