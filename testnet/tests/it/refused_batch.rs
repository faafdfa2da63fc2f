//! When the contract refuses one wallet of a batch at the last moment (the recorder's
//! `eth_call` before sending), that wallet's credits are quarantined and everything else is
//! recorded at once: one credit never holds the others back.
//!
//! The contract deployed here refuses only the zero address, which never gets this far (the
//! dispatcher screens it out before batching). So the recorder is wrapped to refuse one more
//! wallet the way the contract refuses the zero address — a stand-in for a contract rule the
//! dispatcher does not know about. The chain, the nodes and the recording are real.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pocmesh_chain::anvil::AnvilConfig;
use pocmesh_chain::{Devnet, ProofOfCompute, Recorder};
use pocmesh_dispatcher::DispatcherConfig;
use pocmesh_dispatcher::submitter::{ProofSubmitter, RefusedEntry, SubmitError, SubmitFuture};
use pocmesh_node::NodeConfig;
use pocmesh_protocol::{Address, BatchPlan, Hash32, JobId, JobParams, JobSpec, JobType, Limits};
use tokio_util::sync::CancellationToken;

/// The real recorder, refusing any batch that credits `refuse`.
struct Refusing {
    inner: Recorder,
    refuse: Address,
}

impl ProofSubmitter for Refusing {
    fn chain_id(&self) -> Option<u64> {
        self.inner.chain_id()
    }

    fn submit<'a>(&'a self, plan: &'a BatchPlan) -> SubmitFuture<'a> {
        if plan.providers.contains(&self.refuse) {
            let refuse = self.refuse;
            return Box::pin(async move {
                Err(SubmitError {
                    message: format!("recordBatch would refuse {refuse}"),
                    retryable: false,
                    refused: Some(RefusedEntry {
                        provider: refuse,
                        reason: "this wallet is barred by the contract".into(),
                    }),
                })
            });
        }
        self.inner.submit(plan)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_the_contract_refuses_is_quarantined_and_the_rest_recorded() {
    let dir = tempfile::tempdir().expect("tmp");
    let devnet = Devnet::start(None, &AnvilConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rpc = devnet.rpc();
    let key = devnet.dispatcher.clone();
    let deployment = devnet.deployment.clone();
    let recorder = devnet.recorder().await.expect("recorder");
    let barred = Address::from([0xba; 20]);
    let fine = Address::from([0xf1; 20]);

    let net = pocmesh_protocol::topics::network_for_chain(devnet.anvil.chain_id());
    let mut dc = DispatcherConfig {
        data_dir: dir.path().join("dispatcher"),
        contract: Some(deployment.address),
        ..DispatcherConfig::default()
    };
    dc.network.net = net.clone();
    dc.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    dc.network.mdns = false;
    dc.api.listen = "127.0.0.1:0".parse().expect("addr");
    dc.api.tokens = vec!["t".into()];
    dc.registry.heartbeat_interval_ms = 1_000;
    dc.batch.max_age_ms = 300;
    dc.verify.loopback_quorum = true;
    let dispatcher = pocmesh_dispatcher::start(
        dc,
        key.clone(),
        Arc::new(Refusing {
            inner: recorder,
            refuse: barred,
        }),
    )
    .await
    .expect("dispatcher");
    let bootstrap = dispatcher.listen.first().cloned().expect("listen");
    let stop = CancellationToken::new();
    let mut nodes = tokio::task::JoinSet::new();
    for (i, wallet) in [barred, fine].into_iter().enumerate() {
        let mut nc = NodeConfig {
            wallet: Some(wallet),
            data_dir: dir.path().join(format!("node-{i}")),
            ..NodeConfig::default()
        };
        nc.network.net = net.clone();
        nc.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        nc.network.bootstrap = vec![bootstrap.clone()];
        nc.network.mdns = false;
        nc.heartbeat.interval_ms = 1_000;
        nc.jobs.job_types = vec![JobType::Hash];
        nc.trust.dispatchers = vec![key.address()];
        nc.accept_policy = Some(pocmesh_protocol::consent::consent_hash());
        nc.status.listen = "127.0.0.1:0".parse().expect("addr");
        nodes.spawn(pocmesh_node::run(nc, stop.clone()));
    }
    let handle = dispatcher.handle.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while handle.status().await.expect("status").nodes_online < 2 {
        assert!(Instant::now() < deadline, "nodes never came online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ids: Vec<JobId> = Vec::new();
    for i in 0..12u64 {
        let spec = JobSpec {
            params: JobParams::Hash {
                seed: Hash32::keccak(i.to_be_bytes()),
                iterations: 1_000,
            },
            limits: Limits {
                max_ms: 10_000,
                max_mem_mb: 16,
                max_output_bytes: 64,
                max_fuel: None,
            },
        };
        ids.push(handle.submit(spec, None).await.expect("submitted"));
    }
    // Every job ends: recorded when its node credits `fine`, failed (credit quarantined) when
    // it credits `barred`; the outbox drains.
    let deadline = Instant::now() + Duration::from_secs(120);
    let jobs = loop {
        let mut all = Vec::new();
        for id in &ids {
            all.push(handle.job(*id).await.expect("job").expect("known"));
        }
        let s = handle.status().await.expect("status");
        if all.iter().all(|j| j.state.is_final()) && s.outbox == 0 && s.batch_in_flight.is_none() {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "jobs never settled: {:?} {s:?}",
            all.iter().map(|j| j.state.name()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let poc = ProofOfCompute::at(&rpc, deployment.address)
        .await
        .expect("contract");
    let to_fine = jobs
        .iter()
        .filter(|j| j.state.name() == "recorded")
        .flat_map(|j| &j.credits)
        .filter(|c| c.wallet == fine)
        .count() as u128;
    let quarantined: Vec<_> = jobs.iter().flat_map(|j| &j.quarantined).collect();
    assert!(
        to_fine > 0 && !quarantined.is_empty(),
        "both nodes got work"
    );
    assert!(
        quarantined
            .iter()
            .all(|q| q.credit.wallet == barred && q.reason.contains("barred by the contract"))
    );
    assert_eq!(poc.units(fine).await.expect("units"), to_fine);
    assert_eq!(poc.units(barred).await.expect("units"), 0);
    assert_eq!(poc.total_units().await.expect("total"), to_fine);
    let s = handle.status().await.expect("status");
    assert_eq!(s.credits_quarantined, quarantined.len() as u64);
    assert_eq!(u128::from(s.units_recorded), to_fine);
    for j in jobs.iter().filter(|j| j.state.name() == "failed") {
        assert!(j.credits.is_empty() && j.quarantined.len() == 1, "{j:?}");
    }
    stop.cancel();
    while nodes.join_next().await.is_some() {}
    dispatcher.stop().await;
}
