//! A node that signs wrong results — a peer built from the protocol and mesh crates, honest in
//! everything but its answers — earns nothing: its results are rejected by the quorum, its
//! reliability falls below the assignment threshold and it is excluded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libp2p::PeerId;
use pocmesh_chain::ProofOfCompute;
use pocmesh_mesh::{MeshConfig, MeshEvent, MeshHandle};
use pocmesh_protocol::{
    Address, Body, Bytes, Capabilities, Envelope, Hash32, Heartbeat, JobParams, JobReply,
    JobResult, JobType, MAX_ENVELOPE_BYTES, Message, Metering, ResultStatus, SecretKey, Topic,
    Validator, keccak256, unix_ms_now,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::network::Mesh;

const NET: &str = "devnet-551";

fn seal(key: &SecretKey, body: Body) -> Vec<u8> {
    Envelope::seal(&Message::new(NET, key.address(), unix_ms_now(), body), key)
        .expect("seal")
        .to_bytes()
}

/// Runs the rogue until `stop`: heartbeats every 700 ms, accepts every offer, answers wrong.
async fn rogue(key: SecretKey, wallet: Address, bootstrap: String, stop: CancellationToken) {
    let mut config = MeshConfig::new(NET);
    config.mdns = false;
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")];
    config.bootstrap = vec![bootstrap.parse().expect("bootstrap")];
    config.gossip_heartbeat = Duration::from_millis(200);
    let (mesh, mut events, _task) = pocmesh_mesh::spawn(&key, config, stop.clone())
        .await
        .expect("mesh");
    let seq = Arc::new(AtomicU64::new(0));
    let beats = {
        let (mesh, key, stop) = (mesh.clone(), key.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let hb = Heartbeat {
                    seq: seq.fetch_add(1, Ordering::SeqCst) + 1,
                    wallet,
                    peer: mesh.local_peer().to_string(),
                    caps: Capabilities {
                        cores: 8,
                        mem_mb: 16_384,
                        gpu: None,
                        job_types: vec![JobType::Hash, JobType::Wasm],
                        slots_total: 8,
                        slots_free: 8,
                    },
                    policy: pocmesh_node::consent::consent_hash(),
                    sw: "rogue/0".into(),
                };
                let _ = mesh
                    .publish(Topic::Heartbeat, seal(&key, Body::Heartbeat(hb)))
                    .await;
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        })
    };
    let validator = Validator {
        net: NET.into(),
        max_bytes: MAX_ENVELOPE_BYTES,
        max_skew_ms: 30_000,
    };
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            e = events.recv() => match e { Some(e) => e, None => break },
        };
        let MeshEvent::Request {
            peer,
            envelope,
            reply,
        } = event
        else {
            continue;
        };
        let Ok(v) = validator.validate(&envelope, unix_ms_now()) else {
            continue;
        };
        let Body::JobOffer(offer) = v.message.body else {
            let _ = mesh
                .respond(
                    reply,
                    seal(
                        &key,
                        Body::JobReply(JobReply::accepted(Default::default(), 0)),
                    ),
                )
                .await;
            continue;
        };
        let _ = mesh
            .respond(
                reply,
                seal(
                    &key,
                    Body::JobReply(JobReply::accepted(offer.job, offer.attempt)),
                ),
            )
            .await;
        let fuel = match offer.spec.params {
            JobParams::Hash { iterations, .. } => iterations,
            _ => 1,
        };
        // A well-formed, correctly signed, wrong answer.
        let output = keccak256(offer.job.as_bytes()).to_vec();
        let result = JobResult {
            job: offer.job,
            attempt: offer.attempt,
            status: ResultStatus::Ok,
            result_hash: Hash32(keccak256(&output)),
            output: Some(Bytes(output)),
            metering: Metering {
                fuel,
                ms: 1,
                bytes: 32,
            },
            error: None,
        };
        tokio::spawn(deliver(
            mesh.clone(),
            peer,
            seal(&key, Body::JobResult(result)),
        ));
    }
    beats.abort();
}

async fn deliver(mesh: MeshHandle, peer: PeerId, envelope: Vec<u8>) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = mesh.request(peer, None, envelope).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_signing_wrong_results_earns_nothing_and_is_excluded() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), 2).await;
    let key = SecretKey::generate().expect("key");
    let rogue_wallet = Address::from([0x66; 20]);
    let stop = CancellationToken::new();
    tokio::spawn(rogue(
        key.clone(),
        rogue_wallet,
        mesh.bootstrap.clone(),
        stop.clone(),
    ));
    mesh.wait_online(3).await;

    let mut ids = Vec::new();
    for i in 0..16 {
        let mut job = crate::network::hash_job(i);
        job.redundancy = Some(2);
        ids.push(mesh.submit(&job).await);
    }
    let jobs = mesh.all_recorded(&ids, Duration::from_secs(180)).await;
    stop.cancel();

    let rogue_address = key.address();
    let rejected = jobs
        .iter()
        .flat_map(|j| &j.attempts)
        .filter(|a| a.node == rogue_address && a.state == "rejected")
        .count();
    assert!(rejected >= 1, "the rogue's results were rejected");
    assert!(
        jobs.iter()
            .all(|j| j.credits.iter().all(|c| c.wallet != rogue_wallet)),
        "no credit for the rogue"
    );
    let poc = ProofOfCompute::at(&mesh.chain.rpc, mesh.chain.contract)
        .await
        .expect("contract");
    assert_eq!(
        poc.units(rogue_wallet).await.expect("units"),
        0,
        "no units on chain"
    );
    mesh.check_chain(&jobs).await;

    let nodes = mesh.get("/v1/nodes").await.expect("nodes");
    let entry: &Value = nodes
        .as_array()
        .expect("list")
        .iter()
        .find(|n| n["address"] == rogue_address.to_string())
        .expect("the rogue is in the registry");
    let reliability = entry["reliability"].as_f64().expect("reliability");
    assert!(
        reliability < 0.5,
        "the rogue's reliability fell below the assignment threshold (0.5): {entry}"
    );
    assert!(
        entry["counters"]["rejected"].as_u64().expect("rejected") >= 1,
        "{entry}"
    );
}
