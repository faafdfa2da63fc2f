//! The volunteer node as a process: a peer built from the protocol and mesh crates plays the
//! dispatcher, offers it a job, receives the signed result without acknowledging it, kills the
//! node with SIGKILL and restarts it — the result comes again, and the heartbeat sequence goes
//! on above the last one published.

use std::time::Duration;

use libp2p::PeerId;
use pocmesh_mesh::identity::peer_address;
use pocmesh_mesh::{MeshConfig, MeshEvent, ReplyToken};
use pocmesh_protocol::{
    Address, Body, Envelope, Hash32, JobId, JobOffer, JobParams, JobReply, JobResult, JobSpec,
    Limits, MAX_ENVELOPE_BYTES, Message, ResultStatus, SecretKey, Topic, Validator, keccak256,
    unix_ms_now,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{Daemon, args, eventually};

const NET: &str = "devnet-7101";

/// The test's own mesh peer and what it has heard.
struct Peer {
    key: SecretKey,
    mesh: pocmesh_mesh::MeshHandle,
    events: mpsc::Receiver<MeshEvent>,
    bootstrap: String,
    max_seq: u64,
    _stop: tokio_util::sync::DropGuard,
}

impl Peer {
    async fn start() -> Peer {
        let key = SecretKey::generate().expect("key");
        let mut config = MeshConfig::new(NET);
        config.mdns = false;
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")];
        config.gossip_heartbeat = Duration::from_millis(200);
        let stop = CancellationToken::new();
        let (mesh, mut events, _task) = pocmesh_mesh::spawn(&key, config, stop.clone())
            .await
            .expect("mesh");
        let addr = loop {
            match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
                Ok(Some(MeshEvent::Listening { address })) => break address,
                Ok(Some(_)) => {}
                other => panic!("no listen address: {other:?}"),
            }
        };
        Peer {
            bootstrap: format!("{addr}/p2p/{}", mesh.local_peer()),
            key,
            mesh,
            events,
            max_seq: 0,
            _stop: stop.drop_guard(),
        }
    }

    fn seal(&self, body: Body) -> Vec<u8> {
        Envelope::seal(
            &Message::new(NET, self.key.address(), unix_ms_now(), body),
            &self.key,
        )
        .expect("seal")
        .to_bytes()
    }

    /// Waits for the next event `pick` selects, noting heartbeat sequence numbers of `node`.
    async fn wait<T>(
        &mut self,
        what: &str,
        node: Option<Address>,
        mut pick: impl FnMut(&mut Self, MeshEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("never happened within 60 s: {what}"))
                .expect("mesh running");
            if let MeshEvent::Gossip { message, .. } = &event
                && let Body::Heartbeat(hb) = &message.message.body
                && Some(message.message.from) == node
            {
                self.max_seq = self.max_seq.max(hb.seq);
            }
            if let Some(v) = pick(self, event) {
                return v;
            }
        }
    }
}

fn node_args(data_dir: &str, bootstrap: &str, dispatcher: Address) -> Vec<String> {
    args(&[
        "node",
        "run",
        "--wallet",
        "xdc5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "--data-dir",
        data_dir,
        "--net",
        NET,
        "--bootstrap",
        bootstrap,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--status",
        "127.0.0.1:0",
        "--trust-dispatcher",
        &dispatcher.to_string(),
        "--heartbeat-ms",
        "500",
    ])
}

fn result_of(peer: &Peer, envelope: &[u8]) -> Option<(Address, JobResult)> {
    let v = Validator {
        net: NET.into(),
        max_bytes: MAX_ENVELOPE_BYTES,
        max_skew_ms: 30_000,
    }
    .validate(envelope, unix_ms_now())
    .ok()?;
    let _ = peer;
    match v.message.body {
        Body::JobResult(r) => Some((v.message.from, r)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_redelivers_its_result_and_its_seq_keeps_growing() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    let mut peer = Peer::start().await;
    let node_args = node_args(
        &data.display().to_string(),
        &peer.bootstrap,
        peer.key.address(),
    );
    let mut node = Daemon::start("node", &node_args, dir.path());

    let node_peer: PeerId = peer
        .wait("a heartbeat from the node", None, |_, e| match e {
            MeshEvent::Gossip {
                topic: Topic::Heartbeat,
                message,
                ..
            } => match &message.message.body {
                Body::Heartbeat(hb) => hb.peer.parse().ok(),
                _ => None,
            },
            _ => None,
        })
        .await;
    let node_address = peer_address(&node_peer).expect("secp256k1 peer");
    let seed = Hash32([5u8; 32]);
    let offer = JobOffer {
        job: JobId::from([7u8; 32]),
        spec: JobSpec {
            params: JobParams::Hash {
                seed,
                iterations: 20_000,
            },
            limits: Limits {
                max_ms: 10_000,
                max_mem_mb: 16,
                max_output_bytes: 64,
                max_fuel: None,
            },
        },
        lease_ms: 60_000,
        attempt: 1,
    };
    let answer = peer
        .mesh
        .request(node_peer, None, peer.seal(Body::JobOffer(offer.clone())))
        .await
        .expect("the node answers the offer");
    let reply = Validator {
        net: NET.into(),
        max_bytes: MAX_ENVELOPE_BYTES,
        max_skew_ms: 30_000,
    }
    .validate(&answer, unix_ms_now())
    .expect("a signed reply");
    assert_eq!(reply.message.from, node_address);
    assert!(
        matches!(
            reply.message.body,
            Body::JobReply(JobReply { accept: true, .. })
        ),
        "the node accepts: {:?}",
        reply.message.body
    );

    // The result arrives; it is not acknowledged (the token is dropped unanswered).
    let (from, first) = peer
        .wait("the job's result", Some(node_address), |p, e| match e {
            MeshEvent::Request { envelope, .. } => result_of(p, &envelope),
            _ => None,
        })
        .await;
    assert_eq!(from, node_address);
    assert_eq!(first.status, ResultStatus::Ok);
    let mut expected = *seed.as_bytes();
    for _ in 0..20_000 {
        expected = keccak256(expected);
    }
    assert_eq!(
        first.output.as_ref().map(|b| b.0.clone()),
        Some(expected.to_vec())
    );
    assert_eq!(first.result_hash, Hash32(keccak256(expected)));
    assert_eq!(first.metering.fuel, 20_000);

    // Make sure at least one more heartbeat went out, then crash the node.
    let seen = peer.max_seq;
    peer.wait("another heartbeat", Some(node_address), |p, _| {
        (p.max_seq > seen).then_some(())
    })
    .await;
    node.sigkill();
    let before_kill = peer.max_seq;
    // Stay down longer than the receivers' clock window (30 s): the result signed at the end
    // of the job would now be stale, so the node must sign it afresh when it re-sends it.
    // (Waiting is the scenario here, not a guess at when something will be ready.)
    tokio::time::sleep(Duration::from_secs(32)).await;

    node.restart();
    let token: ReplyToken = peer
        .wait(
            "the result again after the restart",
            Some(node_address),
            |p, e| match e {
                MeshEvent::Request {
                    envelope, reply, ..
                } => match result_of(p, &envelope) {
                    Some((_, r)) if r.job == offer.job => {
                        assert_eq!(r.result_hash, first.result_hash, "the same result");
                        assert_eq!(r.attempt, 1);
                        Some(reply)
                    }
                    _ => None,
                },
                _ => None,
            },
        )
        .await;
    let ack = peer.seal(Body::JobReply(JobReply::accepted(offer.job, 1)));
    peer.mesh.respond(token, ack).await.expect("ack sent");
    peer.wait(
        "a heartbeat with a higher seq than any before the crash",
        Some(node_address),
        |p, _| (p.max_seq > before_kill).then_some(()),
    )
    .await;

    // The node's status shows the job done and nothing left to deliver.
    let status_file = data.join("status.addr");
    let client = reqwest::Client::new();
    let log = node.log.clone();
    let status: serde_json::Value = eventually(
        "the node reports the job delivered",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            let status_file = status_file.clone();
            async move {
                let addr = std::fs::read_to_string(&status_file).ok()?;
                let v: serde_json::Value = client
                    .get(format!("http://{}/status", addr.trim()))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (v["jobs"]["awaiting_ack"] == 0 && v["jobs"]["done"] == 1).then_some(v)
            }
        },
        || std::fs::read_to_string(&log).unwrap_or_default(),
    )
    .await;
    assert!(status["heartbeats"]["last_seq"].as_u64().expect("seq") > before_kill);
    assert!(node.running());
    assert!(
        node.terminate(Duration::from_secs(20)),
        "Ctrl-C/SIGTERM stops the node gracefully"
    );
    let out = crate::pocmesh(
        &["node", "status", "--data-dir", &data.display().to_string()],
        None,
    );
    assert!(
        !out.status.success(),
        "status of a stopped node is an error"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is `pocmesh node run` running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
