//! A flood from one host: many connections under fresh peer ids, junk job frames,
//! and signed heartbeats far faster than any node sends them — all built from the protocol and
//! mesh crates. The dispatcher refuses the excess and counts it; the honest nodes' heartbeats
//! keep arriving and their jobs are recorded on chain.

use std::time::{Duration, Instant};

use pocmesh_mesh::{MeshConfig, MeshHandle, peer_of};
use pocmesh_protocol::{
    Address, Body, Capabilities, Envelope, Heartbeat, JobType, Message, SecretKey, Topic,
    unix_ms_now,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::network::{Mesh, hash_job};

const NET: &str = "devnet-551";
/// The dispatcher's per-IP bound in this test (every peer here is 127.0.0.1).
const PER_IP: usize = 12;
/// Flooding swarms, each a fresh peer id connecting from the same address.
const SWARMS: usize = 40;

async fn swarm(bootstrap: &str, stop: &CancellationToken) -> MeshHandle {
    let key = SecretKey::generate().expect("key");
    let mut config = MeshConfig::new(NET);
    config.mdns = false;
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")];
    config.bootstrap = vec![bootstrap.parse().expect("bootstrap")];
    let (mesh, mut events, _task) = pocmesh_mesh::spawn(&key, config, stop.child_token())
        .await
        .expect("mesh");
    // Drain events so the swarm never waits on us.
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    mesh
}

/// A counter of the dispatcher's metrics, by its full sample name.
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)?
                .trim()
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_host_is_refused_and_honest_work_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let per_ip = PER_IP.to_string();
    let mesh = Mesh::start_with_args(dir.path(), 2, &["--max-connections-per-ip", &per_ip]).await;
    let dispatcher = peer_of(&mesh.bootstrap.parse().expect("multiaddr")).expect("peer id");
    let metrics = || async {
        mesh.http
            .get(format!("{}/metrics", mesh.api))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let before = metrics().await;

    // 1. Connections: 40 peers from one address, against a bound of 12 (2 honest nodes hold
    // places already).
    let stop = CancellationToken::new();
    let mut swarms = Vec::new();
    for _ in 0..SWARMS {
        swarms.push(swarm(&mesh.bootstrap, &stop).await);
    }
    // Let the dials settle, then count who holds a connection to the dispatcher.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut holding = Vec::new();
    for s in &swarms {
        if s.connected_peers()
            .await
            .expect("peers")
            .contains(&dispatcher)
        {
            holding.push(s.clone());
        }
    }
    let connected = holding.len();
    assert!(
        connected <= PER_IP,
        "{connected} flooding peers hold a connection; the bound is {PER_IP} per address"
    );
    let through = holding
        .first()
        .cloned()
        .expect("some flooding peers got through (the bound is above the honest nodes' share)");

    // 2. Jobs go in while the rest of the flood runs.
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(mesh.submit(&hash_job(i)).await);
    }

    // 3. Junk frames: 200 that are not envelopes.
    let mut junk_answers = 0;
    for i in 0..200u32 {
        let junk = i.to_be_bytes().repeat(64);
        if let Ok(Ok(_)) = tokio::time::timeout(
            Duration::from_secs(5),
            through.request(dispatcher, None, junk),
        )
        .await
        {
            junk_answers += 1;
        }
    }
    // (A frame over the 8 MiB cap cannot be sent through the mesh crate, which refuses it
    // before it leaves; the receiving side's refusal from the frame header is unit-tested in
    // mesh/src/codec.rs.)

    // 4. Heartbeats: one rogue key signs 2,000 heartbeats, one every millisecond or so.
    let rogue = SecretKey::generate().expect("key");
    let sent_from = Instant::now();
    for seq in 1..=2_000u64 {
        let hb = Heartbeat {
            seq,
            wallet: Address::from([0x66; 20]),
            peer: through.local_peer().to_string(),
            caps: Capabilities {
                cores: 64,
                mem_mb: 65_536,
                gpu: None,
                job_types: vec![JobType::Hash],
                slots_total: 64,
                slots_free: 64,
                receipts_batch: 0,
                jobs_batch: 0,
            },
            policy: pocmesh_protocol::consent::consent_hash(),
            sw: "flood/0".into(),
        };
        let bytes = Envelope::seal(
            &Message::new(NET, rogue.address(), unix_ms_now(), Body::Heartbeat(hb)),
            &rogue,
        )
        .expect("seal")
        .to_bytes();
        let _ = through.publish(Topic::Heartbeat, bytes).await;
        if seq % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let flood_s = sent_from.elapsed().as_secs_f64();

    // Honest work went on: every job recorded, both honest nodes online and recently heard.
    let jobs = mesh.all_recorded(&ids, Duration::from_secs(120)).await;
    mesh.check_chain(&jobs, &[]).await;
    let nodes = mesh.get("/v1/nodes").await.expect("nodes");
    let now = unix_ms_now();
    for wallet in &mesh.wallets {
        let n = nodes
            .as_array()
            .expect("list")
            .iter()
            .find(|n| n["wallet"].as_str() == Some(&wallet.to_string()))
            .unwrap_or_else(|| panic!("honest node of {wallet} listed: {nodes}"));
        assert_eq!(n["online"], Value::Bool(true), "{n}");
        let last = n["last_seen_ms"].as_u64().expect("last seen");
        assert!(now.saturating_sub(last) < 10_000, "heard within 10 s: {n}");
    }

    // The excess was refused and counted.
    let after = metrics().await;
    let refused = metric(
        &after,
        "pocmesh_dispatcher_mesh_refused{event=\"connection\"}",
    );
    assert!(
        refused >= 1.0,
        "connections over the bound are counted: {refused}\n{after}"
    );
    let invalid = metric(
        &after,
        "pocmesh_dispatcher_results_total{event=\"invalid\"}",
    );
    assert!(invalid >= 200.0, "junk frames are counted: {invalid}");
    let heard = metric(&after, "pocmesh_dispatcher_heartbeats_total")
        - metric(&before, "pocmesh_dispatcher_heartbeats_total");
    // Honest nodes beat about once a second each; the rogue's pace is capped at one per 250 ms.
    let allowed = (flood_s + 60.0) * 2.0 + flood_s / 0.25 + 20.0;
    assert!(
        heard < allowed.min(1_000.0),
        "{heard} heartbeats accepted while 2,000 were flooded in {flood_s:.1} s (allowed {allowed:.0})"
    );
    eprintln!(
        "flood: {SWARMS} peers from one address, {connected} held a connection (bound {PER_IP}); \
         {refused} connections refused; 200 junk frames ({junk_answers} answered with a refusal, \
         {invalid} counted invalid); 2,000 heartbeats in {flood_s:.1} s, \
         {heard} accepted in total; 10 of 10 jobs recorded"
    );
    stop.cancel();
}
