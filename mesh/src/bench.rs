//! Gossip benchmark: N real swarms in one process on 127.0.0.1, each publishing signed,
//! jittered heartbeats; measures how long until every peer has heard every other one
//! (convergence) and how long each heartbeat took to arrive (propagation latency).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pocmesh_protocol::{
    Address, Body, Capabilities, Envelope, Hash32, Heartbeat, JobType, Message, SecretKey, Topic,
    unix_ms_now,
};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::MeshConfig;
use crate::identity::peer_id;
use crate::service::{MeshError, MeshEvent, spawn};

/// What to run.
#[derive(Debug, Clone)]
pub struct GossipBenchConfig {
    /// Peers.
    pub nodes: usize,
    /// Heartbeat interval (each beat jittered by ±20 %).
    pub interval: Duration,
    /// How many intervals to run.
    pub rounds: u32,
    /// Peers each new peer dials at start.
    pub degree: usize,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct GossipBenchResult {
    /// Peers.
    pub nodes: usize,
    /// Heartbeat interval, ms.
    pub interval_ms: u64,
    /// Time from the first beat until every peer had heard every other, ms (`None`: never).
    pub convergence_ms: Option<u64>,
    /// The same in heartbeat intervals.
    pub convergence_intervals: Option<f64>,
    /// Median publish-to-delivery latency, ms.
    pub latency_p50_ms: u64,
    /// 99th percentile latency, ms.
    pub latency_p99_ms: u64,
    /// Deliveries measured.
    pub deliveries: usize,
}

#[derive(Default)]
struct Shared {
    latencies: Vec<u64>,
    converged_at: Vec<Option<Instant>>,
}

/// A small deterministic generator for jitter (no need for cryptographic randomness here).
fn jitter(seed: &mut u64) -> f64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed % 10_000) as f64 / 10_000.0
}

/// Runs the benchmark once.
pub async fn run(config: &GossipBenchConfig) -> Result<GossipBenchResult, MeshError> {
    let n = config.nodes.max(2);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let shared = Arc::new(Mutex::new(Shared {
        latencies: Vec::new(),
        converged_at: vec![None; n],
    }));
    let mut addrs: Vec<libp2p::Multiaddr> = Vec::new();
    let mut handles = Vec::new();
    let mut keys = Vec::new();
    for i in 0..n {
        let key = SecretKey::generate().map_err(|e| MeshError::Build(e.to_string()))?;
        let mut mc = MeshConfig::new("devnet-bench");
        mc.mdns = false;
        // Every peer of the bench connects from 127.0.0.1.
        mc.connections.max_per_ip = mc.connections.max_established;
        mc.listen = vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .map_err(|e| MeshError::Build(format!("{e}")))?,
        ];
        // Dial peer 0 and the `degree - 1` peers just before this one.
        let mut boot: Vec<usize> = (i.saturating_sub(config.degree.saturating_sub(1))..i).collect();
        if i > 0 && !boot.contains(&0) {
            boot.push(0);
        }
        mc.bootstrap = boot.iter().map(|j| addrs[*j].clone()).collect();
        let (handle, mut events, _task) = spawn(&key, mc, shutdown.clone()).await?;
        let addr = loop {
            match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
                Ok(Some(MeshEvent::Listening { address })) => break address,
                Ok(Some(_)) => {}
                _ => return Err(MeshError::Build("a peer did not start listening".into())),
            }
        };
        addrs.push(addr);
        let shared = shared.clone();
        let me = key.address();
        tokio::spawn(async move {
            let mut seen: HashSet<Address> = HashSet::new();
            while let Some(e) = events.recv().await {
                if let MeshEvent::Gossip { message, .. } = e {
                    let latency = unix_ms_now().saturating_sub(message.message.ts);
                    let mut s = shared.lock().await;
                    s.latencies.push(latency);
                    if message.signer != me && seen.insert(message.signer) && seen.len() == n - 1 {
                        s.converged_at[i] = Some(Instant::now());
                    }
                }
            }
        });
        handles.push(handle);
        keys.push(key);
    }

    let start = Instant::now();
    let end = start + config.interval * config.rounds;
    let mut beaters = Vec::new();
    for (i, (handle, key)) in handles.iter().cloned().zip(keys).enumerate() {
        let interval = config.interval;
        beaters.push(tokio::spawn(async move {
            let mut seed =
                0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
            let peer = peer_id(&key).map(|p| p.to_string()).unwrap_or_default();
            tokio::time::sleep(interval.mul_f64(jitter(&mut seed))).await;
            let mut seq = 1u64;
            while Instant::now() < end {
                let m = Message::new(
                    "devnet-bench",
                    key.address(),
                    unix_ms_now(),
                    Body::Heartbeat(Heartbeat {
                        seq,
                        wallet: key.address(),
                        peer: peer.clone(),
                        caps: Capabilities {
                            cores: 2,
                            mem_mb: 1024,
                            gpu: None,
                            job_types: vec![JobType::Hash],
                            slots_total: 2,
                            slots_free: 2,
                            receipts_batch: 0,
                            jobs_batch: 0,
                        },
                        policy: Hash32::ZERO,
                        sw: env!("CARGO_PKG_VERSION").into(),
                    }),
                );
                if let Ok(env) = Envelope::seal(&m, &key) {
                    // Before any peer subscribed this is a skipped beat, as in a real node.
                    let _ = handle.publish(Topic::Heartbeat, env.to_bytes()).await;
                }
                seq += 1;
                tokio::time::sleep(interval.mul_f64(0.8 + 0.4 * jitter(&mut seed))).await;
            }
        }));
    }
    for b in beaters {
        let _ = b.await;
    }
    // Let the last beats arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let s = shared.lock().await;
    let mut lat = s.latencies.clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let converged = s.converged_at.iter().all(Option::is_some);
    let convergence = converged.then(|| {
        s.converged_at
            .iter()
            .flatten()
            .map(|t| t.duration_since(start))
            .max()
            .unwrap_or_default()
    });
    Ok(GossipBenchResult {
        nodes: n,
        interval_ms: config.interval.as_millis() as u64,
        convergence_ms: convergence.map(|d| d.as_millis() as u64),
        convergence_intervals: convergence.map(|d| d.as_secs_f64() / config.interval.as_secs_f64()),
        latency_p50_ms: pct(0.5),
        latency_p99_ms: pct(0.99),
        deliveries: lat.len(),
    })
}
