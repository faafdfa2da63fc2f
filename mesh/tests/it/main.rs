//! Real swarms on 127.0.0.1: heartbeats reach every peer; forged, replayed, wrong-network, stale
//! and oversized messages reach none, and their sender loses score.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use pocmesh_mesh::{MeshConfig, MeshEvent, MeshHandle, spawn};
use pocmesh_protocol::{
    Address, Body, Bytes, Capabilities, Envelope, Hash32, Heartbeat, JobType, Message, SecretKey,
    Topic, unix_ms_now,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const NET: &str = "devnet-551";

struct Peer {
    key: SecretKey,
    handle: MeshHandle,
    events: mpsc::Receiver<MeshEvent>,
    addr: Multiaddr,
    _shutdown: tokio_util::sync::DropGuard,
}

async fn start_peers(n: usize) -> Vec<Peer> {
    let mut peers: Vec<Peer> = Vec::new();
    for _ in 0..n {
        let key = SecretKey::generate().expect("key");
        let mut config = MeshConfig::new(NET);
        config.mdns = false;
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")];
        config.bootstrap = peers.iter().map(|p| p.addr.clone()).collect();
        config.gossip_heartbeat = Duration::from_millis(100);
        let shutdown = CancellationToken::new();
        let (handle, mut events, _task) = spawn(&key, config, shutdown.clone())
            .await
            .expect("mesh starts");
        let addr = loop {
            match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
                Ok(Some(MeshEvent::Listening { address })) => break address,
                Ok(Some(_)) => {}
                other => panic!("no listen address: {other:?}"),
            }
        };
        peers.push(Peer {
            key,
            handle,
            events,
            addr,
            _shutdown: shutdown.drop_guard(),
        });
    }
    peers
}

fn heartbeat(key: &SecretKey, seq: u64, ts: u64, net: &str) -> Message {
    let peer = pocmesh_mesh::identity::peer_id(key)
        .expect("peer id")
        .to_string();
    Message::new(
        net,
        key.address(),
        ts,
        Body::Heartbeat(Heartbeat {
            seq,
            wallet: key.address(),
            peer,
            caps: Capabilities {
                cores: 2,
                mem_mb: 512,
                gpu: None,
                job_types: vec![JobType::Hash],
                slots_total: 1,
                slots_free: 1,
                receipts_batch: 0,
                jobs_batch: 0,
            },
            policy: Hash32::keccak(b"consent v1"),
            sw: "test".into(),
        }),
    )
}

fn sealed(key: &SecretKey, m: &Message) -> Vec<u8> {
    Envelope::seal(m, key).expect("seal").to_bytes()
}

/// Publishes, retrying while no peer has subscribed yet.
async fn publish(handle: &MeshHandle, data: Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match handle.publish(Topic::Heartbeat, data.clone()).await {
            Ok(()) => return,
            Err(pocmesh_mesh::MeshError::Publish { no_peers: true, .. })
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publish failed: {e}"),
        }
    }
}

/// Rounds of heartbeats (bounded) until every peer has seen every other one.
async fn converge(peers: &mut [Peer], first_seq: u64) -> u64 {
    let n = peers.len();
    let mut seen: Vec<HashSet<Address>> = vec![HashSet::new(); n];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seq = first_seq;
    while seen.iter().any(|s| s.len() < n - 1) {
        assert!(
            Instant::now() < deadline,
            "heartbeats did not converge: {:?}",
            seen.iter().map(HashSet::len).collect::<Vec<_>>()
        );
        for p in peers.iter() {
            publish(
                &p.handle,
                sealed(&p.key, &heartbeat(&p.key, seq, unix_ms_now(), NET)),
            )
            .await;
        }
        seq += 1;
        let round_end = Instant::now() + Duration::from_millis(500);
        for (i, p) in peers.iter_mut().enumerate() {
            while let Ok(Some(e)) = tokio::time::timeout(
                round_end.saturating_duration_since(Instant::now()),
                p.events.recv(),
            )
            .await
            {
                if let MeshEvent::Gossip { message, .. } = e {
                    seen[i].insert(message.signer);
                }
            }
        }
    }
    seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_peer_sees_every_other_peers_heartbeats() {
    let mut peers = start_peers(5).await;
    converge(&mut peers, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_reach_no_peer_and_cost_the_sender_score() {
    let mut peers = start_peers(5).await;
    let seq = converge(&mut peers, 1).await;
    let (rogue, honest) = peers.split_first_mut().expect("peers");
    let rogue_peer = rogue.handle.local_peer();
    let now = unix_ms_now();

    // A fresh valid heartbeat first, so the replay below has something to be older than.
    let valid_seq = seq + 100;
    publish(
        &rogue.handle,
        sealed(&rogue.key, &heartbeat(&rogue.key, valid_seq, now, NET)),
    )
    .await;

    let mut forged =
        Envelope::seal(&heartbeat(&rogue.key, valid_seq + 1, now, NET), &rogue.key).expect("seal");
    // The rogue's own signature, lifted from another message: recovers to some other key.
    forged.sig = Envelope::seal(&heartbeat(&rogue.key, valid_seq + 7, now, NET), &rogue.key)
        .expect("seal")
        .sig;
    let mut bad_v =
        Envelope::seal(&heartbeat(&rogue.key, valid_seq + 6, now, NET), &rogue.key).expect("seal");
    bad_v.sig.0[64] = 30;
    let stranger = SecretKey::generate().expect("key");
    let mut impersonation = heartbeat(&stranger, valid_seq + 2, now, NET);
    impersonation.from = rogue.key.address();
    let impersonation = Envelope {
        sig: stranger.sign_payload(&serde_cbor_payload(&impersonation)),
        payload: Bytes(serde_cbor_payload(&impersonation)),
    };
    let mut oversized = heartbeat(&rogue.key, valid_seq + 3, now, NET);
    if let Body::Heartbeat(h) = &mut oversized.body {
        h.sw = "x".repeat(5000);
    }
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("forged signature", forged.to_bytes()),
        ("malformed signature", bad_v.to_bytes()),
        ("signed by someone else", impersonation.to_bytes()),
        (
            "replayed (old seq)",
            sealed(
                &rogue.key,
                &heartbeat(&rogue.key, valid_seq - 50, now + 1, NET),
            ),
        ),
        (
            "other network",
            sealed(
                &rogue.key,
                &heartbeat(&rogue.key, valid_seq + 4, now, "xdc-apothem"),
            ),
        ),
        (
            "stale timestamp",
            sealed(
                &rogue.key,
                &heartbeat(&rogue.key, valid_seq + 5, now - 120_000, NET),
            ),
        ),
        ("oversized", sealed(&rogue.key, &oversized)),
    ];
    for (_, data) in &bad {
        publish(&rogue.handle, data.clone()).await;
    }

    // Every honest peer rejects all six, accepts only the valid one, and forwards none of the six.
    let expected_rejections = bad.len();
    for (i, p) in honest.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut rejected = Vec::new();
        let mut accepted_from_rogue = Vec::new();
        while rejected.len() < expected_rejections {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, p.events.recv()).await {
                Ok(Some(MeshEvent::GossipDropped {
                    via,
                    reason,
                    rejected: true,
                    ..
                })) if via == rogue_peer => rejected.push(reason.label),
                Ok(Some(MeshEvent::GossipDropped {
                    via,
                    reason,
                    rejected: true,
                    ..
                })) => {
                    panic!(
                        "peer {i} rejected a message forwarded by honest {via}: {reason:?} — invalid gossip was forwarded"
                    )
                }
                Ok(Some(MeshEvent::Gossip { message, .. }))
                    if message.signer == rogue.key.address() =>
                {
                    accepted_from_rogue.push(message.message.body.seq());
                }
                Ok(Some(_)) => {}
                _ => panic!("peer {i} saw only {rejected:?} of {expected_rejections} rejections"),
            }
        }
        rejected.sort_unstable();
        let mut want = vec![
            "bad_signature",
            "signer_mismatch",
            "signer_mismatch",
            "replay",
            "wrong_network",
            "stale_timestamp",
            "too_large",
        ];
        want.sort_unstable();
        assert_eq!(rejected, want, "peer {i}");
        assert!(
            accepted_from_rogue
                .iter()
                .all(|s| *s != Some(valid_seq - 50) && s.is_none_or(|s| s <= valid_seq)),
            "peer {i} delivered a bad message: {accepted_from_rogue:?}"
        );

        let score = p
            .handle
            .peer_score(rogue_peer)
            .await
            .expect("score")
            .expect("scoring on");
        assert!(
            score < 0.0,
            "peer {i}: rogue's score is {score}, expected a penalty"
        );
    }
    // Honest peers keep a non-negative score with each other.
    let a = honest[0].handle.local_peer();
    let s = honest[1]
        .handle
        .peer_score(a)
        .await
        .expect("score")
        .expect("scoring on");
    assert!(s >= 0.0, "honest peer penalised: {s}");
}

fn serde_cbor_payload(m: &Message) -> Vec<u8> {
    // The same encoding Envelope::seal uses, without its from == key check.
    let key = SecretKey::from_bytes(&[1; 32]).expect("key");
    let mut copy = m.clone();
    copy.from = key.address();
    let env = Envelope::seal(&copy, &key).expect("seal");
    let mut payload = env.payload.0;
    // Swap the 20 `from` bytes back to the claimed author.
    let at = payload
        .windows(20)
        .position(|w| w == key.address().0)
        .expect("from in payload");
    payload[at..at + 20].copy_from_slice(&m.from.0);
    payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_offer_goes_peer_to_peer_and_the_answer_comes_back() {
    use pocmesh_protocol::{
        JobId, JobOffer, JobParams, JobReply, JobSpec, Limits, MAX_ENVELOPE_BYTES, Validator,
    };
    let mut peers = start_peers(2).await;
    let (a, b) = peers.split_at_mut(1);
    let (dispatcher, node) = (&a[0], &mut b[0]);
    let job = JobId::from([7; 32]);
    let offer = Message::new(
        NET,
        dispatcher.key.address(),
        unix_ms_now(),
        Body::JobOffer(JobOffer {
            job,
            spec: JobSpec {
                params: JobParams::Hash {
                    seed: Hash32::keccak(b"seed"),
                    iterations: 1000,
                },
                limits: Limits {
                    max_ms: 1000,
                    max_mem_mb: 16,
                    max_output_bytes: 32,
                    max_fuel: None,
                },
            },
            lease_ms: 10_000,
            attempt: 1,
        }),
    );
    let node_peer = node.handle.local_peer();
    let node_addr = node.addr.clone();
    let requester = dispatcher.handle.clone();
    let offer_bytes = sealed(&dispatcher.key, &offer);
    let answer = tokio::spawn(async move {
        requester
            .request(node_peer, Some(node_addr), offer_bytes)
            .await
    });

    // The node receives the envelope, checks it with the protocol crate, and answers.
    let validator = Validator {
        net: NET.into(),
        max_bytes: MAX_ENVELOPE_BYTES,
        max_skew_ms: 30_000,
    };
    let (envelope, reply) = loop {
        match tokio::time::timeout(Duration::from_secs(20), node.events.recv()).await {
            Ok(Some(MeshEvent::Request {
                envelope, reply, ..
            })) => break (envelope, reply),
            Ok(Some(_)) => {}
            other => panic!("no job request arrived: {other:?}"),
        }
    };
    let verified = validator
        .validate(&envelope, unix_ms_now())
        .expect("offer verifies");
    assert_eq!(verified.signer, dispatcher.key.address());
    assert!(matches!(verified.message.body, Body::JobOffer(ref o) if o.job == job));
    let accept = Message::new(
        NET,
        node.key.address(),
        unix_ms_now(),
        Body::JobReply(JobReply::accepted(job, 1)),
    );
    node.handle
        .respond(reply, sealed(&node.key, &accept))
        .await
        .expect("respond");

    let answer = answer.await.expect("task").expect("answer arrives");
    let verified = validator
        .validate(&answer, unix_ms_now())
        .expect("reply verifies");
    assert_eq!(verified.signer, node.key.address());
    assert!(matches!(
        verified.message.body,
        Body::JobReply(JobReply { accept: true, .. })
    ));

    // An envelope over the protocol cap is refused before it leaves.
    let err = dispatcher
        .handle
        .request(node_peer, None, vec![0; MAX_ENVELOPE_BYTES + 1])
        .await
        .expect_err("too big");
    assert!(err.to_string().contains("cap"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_ten_peers_on_one_host_still_converge() {
    // gossipsub penalises peers beyond 10 per IP (6 extra: (6² × −5) graylists them); loopback is exempt.
    let mut peers = start_peers(16).await;
    converge(&mut peers, 1).await;
}
