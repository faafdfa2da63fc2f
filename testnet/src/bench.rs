//! `pocmesh bench dispatch`: verified completions per second, end to end, on one machine — a
//! dispatcher and N nodes in this process (real swarms on 127.0.0.1, real sled stores), trivial
//! `hash` jobs submitted through the engine, results signed by the nodes and checked by the
//! dispatcher, and every credit recorded on a real anvil.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pocmesh_chain::anvil::{Anvil, AnvilConfig, DEV_KEY_0, DEV_KEY_1};
use pocmesh_chain::{ChainClient, Recorder, TxPolicy, deploy};
use pocmesh_node::NodeConfig;
use pocmesh_protocol::{Address, Hash32, JobParams, JobSpec, JobType, Limits, SecretKey};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use pocmesh_dispatcher::DispatcherConfig;

/// What to run.
#[derive(Debug, Clone)]
pub struct DispatchBenchConfig {
    /// The anvil executable.
    pub anvil: PathBuf,
    /// Nodes.
    pub nodes: usize,
    /// Jobs.
    pub jobs: usize,
    /// Job slots per node (requests in flight per node).
    pub slots: u32,
    /// Credits per on-chain batch.
    pub batch_max: usize,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchBenchReport {
    /// Nodes.
    pub nodes: usize,
    /// Jobs (`hash`, 1 iteration, redundancy 1, no re-execution).
    pub jobs: usize,
    /// Slots per node.
    pub slots: u32,
    /// Seconds until every job was accepted (durable).
    pub submit_s: f64,
    /// Seconds from the first submission until every job was verified.
    pub verified_s: f64,
    /// Verified completions per second, end to end.
    pub verified_per_s: f64,
    /// Seconds from the first submission until every credit was on chain.
    pub recorded_s: f64,
    /// Completions recorded on chain per second, end to end.
    pub recorded_per_s: f64,
    /// Batches recorded.
    pub batches: u64,
    /// Units recorded on chain.
    pub units_recorded: u64,
}

/// Runs the benchmark; `progress` hears what happens.
pub async fn run(
    config: &DispatchBenchConfig,
    progress: &mut dyn FnMut(String),
) -> Result<DispatchBenchReport, String> {
    let stamp = pocmesh_protocol::unix_ms_now();
    let dir = std::env::temp_dir().join(format!("pocmesh-bench-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = run_in(config, &dir, progress).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(
    config: &DispatchBenchConfig,
    dir: &std::path::Path,
    progress: &mut dyn FnMut(String),
) -> Result<DispatchBenchReport, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    progress("starting anvil and deploying".into());
    let anvil = Anvil::spawn(
        &config.anvil,
        &AnvilConfig {
            port: 0,
            ..AnvilConfig::default()
        },
    )
    .map_err(|e| err(&e))?;
    let rpc = anvil.rpc_url();
    let admin = SecretKey::from_hex(DEV_KEY_0).map_err(|e| err(&e))?;
    let key = SecretKey::from_hex(DEV_KEY_1).map_err(|e| err(&e))?;
    let admin_client = ChainClient::connect(&rpc, &admin, TxPolicy::default())
        .await
        .map_err(|e| err(&e))?;
    let deployment = deploy(&admin_client, &[key.address()])
        .await
        .map_err(|e| err(&e))?;
    let client = ChainClient::connect(&rpc, &key, TxPolicy::default())
        .await
        .map_err(|e| err(&e))?;
    let recorder = Recorder::new(client, deployment.address)
        .await
        .map_err(|e| err(&e))?;

    let net = pocmesh_protocol::topics::network_for_chain(anvil.chain_id());
    let mut dc = DispatcherConfig {
        data_dir: dir.join("dispatcher"),
        ..DispatcherConfig::default()
    };
    dc.network.net = net.clone();
    dc.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    dc.network.mdns = false;
    dc.api.listen = "127.0.0.1:0".parse().map_err(|e| err(&e))?;
    dc.api.tokens = vec!["bench".into()];
    dc.registry.heartbeat_interval_ms = 1_000;
    // Nodes trusted after one checked result, then audited at a negligible rate: this measures
    // the dispatch path itself. (Verification's own cost is `pocmesh bench verify`.)
    dc.verify.probation_results = 1;
    dc.verify.audit_floor = 1e-6;
    dc.verify.loopback_quorum = true;
    dc.batch.max_credits = config.batch_max;
    dc.batch.max_age_ms = 500;
    progress("starting the dispatcher and nodes".into());
    let dispatcher = pocmesh_dispatcher::start(dc, key.clone(), Arc::new(recorder))
        .await
        .map_err(|e| err(&e))?;
    let bootstrap = dispatcher
        .listen
        .first()
        .cloned()
        .ok_or("the dispatcher has no listen address")?;
    let nodes_stop = CancellationToken::new();
    let mut nodes = JoinSet::new();
    for i in 0..config.nodes {
        let mut nc = NodeConfig {
            wallet: Some(Address::from([0x20 + i as u8; 20])),
            data_dir: dir.join(format!("node-{i}")),
            ..NodeConfig::default()
        };
        nc.network.net = net.clone();
        nc.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        nc.network.bootstrap = vec![bootstrap.clone()];
        nc.network.mdns = false;
        nc.heartbeat.interval_ms = 1_000;
        nc.jobs.max_jobs = config.slots;
        nc.jobs.job_types = vec![JobType::Hash];
        nc.trust.dispatchers = vec![key.address()];
        nc.accept_policy = Some(pocmesh_protocol::consent::consent_hash());
        nc.status.listen = "127.0.0.1:0".parse().map_err(|e| err(&e))?;
        nodes.spawn(pocmesh_node::run(nc, nodes_stop.clone()));
    }
    let handle = dispatcher.handle.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = handle.status().await.map_err(|e| err(&e))?;
        if s.nodes_online >= config.nodes {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} nodes online after 60 s",
                s.nodes_online, config.nodes
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    progress(format!("submitting {} jobs", config.jobs));
    let start = Instant::now();
    let mut submits = JoinSet::new();
    let per_task = config.jobs.div_ceil(64);
    for t in 0..64usize {
        let handle = handle.clone();
        let n = per_task.min(config.jobs.saturating_sub(t * per_task));
        submits.spawn(async move {
            for j in 0..n {
                let spec = JobSpec {
                    params: JobParams::Hash {
                        seed: Hash32::keccak(((t * per_task + j) as u64).to_be_bytes()),
                        iterations: 1,
                    },
                    limits: Limits {
                        max_ms: 10_000,
                        max_mem_mb: 16,
                        max_output_bytes: 64,
                        max_fuel: None,
                    },
                };
                handle
                    .submit(spec, Some(1))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = submits.join_next().await {
        r.map_err(|e| err(&e))??;
    }
    let submit_s = start.elapsed().as_secs_f64();
    let total = config.jobs as u64;
    let count = |s: &pocmesh_dispatcher::StatusView, names: &[&str]| -> u64 {
        names
            .iter()
            .map(|n| s.jobs.get(*n).copied().unwrap_or(0))
            .sum()
    };
    let mut verified_s = None;
    let recorded_s;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = handle.status().await.map_err(|e| err(&e))?;
        let verified = count(&s, &["verified", "recording", "recorded"]);
        let recorded = count(&s, &["recorded"]);
        if verified_s.is_none() && verified >= total {
            verified_s = Some(start.elapsed().as_secs_f64());
        }
        if recorded >= total {
            recorded_s = start.elapsed().as_secs_f64();
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{verified} verified, {recorded} recorded of {total} after 600 s"
            ));
        }
        progress(format!("{verified}/{total} verified, {recorded} recorded"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = handle.status().await.map_err(|e| err(&e))?;
    nodes_stop.cancel();
    while nodes.join_next().await.is_some() {}
    dispatcher.stop().await;
    drop(anvil);
    let verified_s = verified_s.unwrap_or(recorded_s);
    Ok(DispatchBenchReport {
        nodes: config.nodes,
        jobs: config.jobs,
        slots: config.slots,
        submit_s,
        verified_s,
        verified_per_s: total as f64 / verified_s,
        recorded_s,
        recorded_per_s: total as f64 / recorded_s,
        batches: s.batches_recorded,
        units_recorded: s.units_recorded,
    })
}
