//! The volunteer node as a process: a peer built from the protocol and mesh crates plays the
//! dispatcher, offers it a job, receives the signed result without acknowledging it, kills the
//! node with SIGKILL and restarts it — the result comes again, and the heartbeat sequence goes
//! on above the last one published. Then consent and opt-out: a node without an accepted
//! consent text does not start unattended, and an opted-out node hands its job back, declines
//! offers and sends no heartbeats — across a restart — until it opts in again.

use std::time::Duration;

use libp2p::PeerId;
use pocmesh_mesh::identity::peer_address;
use pocmesh_mesh::{MeshConfig, MeshEvent, ReplyToken};
use pocmesh_node::consent::consent_hash;
use pocmesh_protocol::{
    Address, Body, DeclineReason, Envelope, Hash32, JobId, JobOffer, JobParams, JobReply,
    JobResult, JobSpec, Limits, MAX_ENVELOPE_BYTES, Message, ResultStatus, SecretKey, Topic,
    Validator, keccak256, unix_ms_now,
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
        "--accept-policy",
        &consent_hash().to_string(),
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

fn hash_offer(n: u8, iterations: u64) -> JobOffer {
    JobOffer {
        job: JobId::from([n; 32]),
        spec: JobSpec {
            params: JobParams::Hash {
                seed: Hash32([n; 32]),
                iterations,
            },
            limits: Limits {
                max_ms: 60_000,
                max_mem_mb: 16,
                max_output_bytes: 64,
                max_fuel: None,
            },
        },
        lease_ms: 120_000,
        attempt: 1,
    }
}

impl Peer {
    /// Listens for `window` and fails on any heartbeat from `node`: proving an absence takes
    /// a window, here a few of the node's heartbeat intervals.
    async fn expect_no_heartbeat(&mut self, node: Address, window: Duration) {
        let end = tokio::time::Instant::now() + window;
        while let Ok(Some(e)) = tokio::time::timeout_at(end, self.events.recv()).await {
            let _ = opt_out_from(node, &e);
        }
    }

    /// Offers `offer` to `node` and returns its signed reply.
    async fn offer(&self, node: PeerId, offer: &JobOffer) -> JobReply {
        let answer = self
            .mesh
            .request(node, None, self.seal(Body::JobOffer(offer.clone())))
            .await
            .expect("the node answers the offer");
        let reply = Validator {
            net: NET.into(),
            max_bytes: MAX_ENVELOPE_BYTES,
            max_skew_ms: 30_000,
        }
        .validate(&answer, unix_ms_now())
        .expect("a signed reply");
        match reply.message.body {
            Body::JobReply(r) => r,
            other => panic!("not a job reply: {other:?}"),
        }
    }
}

/// Runs the CLI off the async runtime (it blocks until the command ends).
async fn cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::pocmesh(&args, None)
    })
    .await
    .expect("cli worker")
}

/// The `opt_out` `node` gossips, if `e` is one; panics on a heartbeat from it (an opted-out
/// node sends none).
fn opt_out_from(node: Address, e: &MeshEvent) -> Option<u64> {
    let MeshEvent::Gossip { message, .. } = e else {
        return None;
    };
    if message.message.from != node {
        return None;
    }
    match &message.message.body {
        Body::OptOut(o) => Some(o.seq),
        Body::Heartbeat(hb) => panic!("an opted-out node sent heartbeat {}", hb.seq),
        _ => None,
    }
}

#[test]
fn a_node_without_accepted_consent_does_not_start_unattended() {
    let hash = consent_hash().to_string();
    let show = crate::pocmesh(&["node", "run", "--show-consent"], None);
    assert!(show.status.success());
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.starts_with(pocmesh_node::consent::CONSENT_TEXT),
        "{text}"
    );
    assert!(text.contains(&format!("--accept-policy {hash}")), "{text}");

    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node").display().to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut a = args(&[
            "node",
            "run",
            "--wallet",
            "xdc5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "--data-dir",
            &data,
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--status",
            "127.0.0.1:0",
            "--trust-dispatcher",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let a = base(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = crate::pocmesh(&a, None);
        assert!(!out.status.success(), "{extra:?} must not start");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    // No terminal to ask on, no --accept-policy: refused, naming the flag and the hash.
    let err = run(&["--net", NET]);
    assert!(err.contains(&format!("--accept-policy {hash}")), "{err}");
    assert!(err.contains("--show-consent"), "{err}");
    // Another hash than this build's text.
    let wrong = Hash32::keccak(b"another text").to_string();
    let err = run(&["--net", NET, "--accept-policy", &wrong]);
    assert!(
        err.contains("is not the hash of this node's consent text"),
        "{err}"
    );
    // The loopback flag is for devnets only.
    let err = run(&[
        "--net",
        "xdc-apothem",
        "--allow-loopback-targets",
        "--accept-policy",
        &hash,
    ]);
    assert!(err.contains("http.allow_loopback_targets"), "{err}");
    // The network comes from the RPC: an unreachable one stops the start, naming it.
    let rpc = format!("http://127.0.0.1:{}/", crate::support::free_port());
    let err = run(&[
        "--rpc",
        &rpc,
        "--contract",
        "0x00000000000000000000000000000000000000c0",
    ]);
    assert!(err.contains("cannot read the chain id from --rpc"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_out_node_hands_back_declines_and_stays_out_until_it_opts_in() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    let data_arg = data.display().to_string();
    let mut peer = Peer::start().await;
    let node_args = node_args(&data_arg, &peer.bootstrap, peer.key.address());
    let mut node = Daemon::start("node", &node_args, dir.path());

    let (node_peer, policy): (PeerId, Hash32) = peer
        .wait("a heartbeat from the node", None, |_, e| match e {
            MeshEvent::Gossip {
                topic: Topic::Heartbeat,
                message,
                ..
            } => match &message.message.body {
                Body::Heartbeat(hb) => Some((hb.peer.parse().ok()?, hb.policy)),
                _ => None,
            },
            _ => None,
        })
        .await;
    assert_eq!(
        policy,
        consent_hash(),
        "heartbeats carry the accepted text's hash"
    );
    let node_address = peer_address(&node_peer).expect("secp256k1 peer");

    // A job long enough to be running when the volunteer opts out.
    let long = hash_offer(30, 20_000_000_000);
    assert!(
        peer.offer(node_peer, &long).await.accept,
        "the long job is taken"
    );
    let last_heartbeat = peer.max_seq;

    let out = cli(args(&[
        "node",
        "opt-out",
        "--data-dir",
        &data_arg,
        "--json",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = crate::json(&out);
    assert_eq!(reply["changed"], true);
    assert_eq!(reply["opted_out"], true);
    assert_eq!(reply["handed_back"], 1, "{reply}");
    let opt_out_seq = reply["seq"].as_u64().expect("seq");
    assert!(
        opt_out_seq > last_heartbeat,
        "the opt_out outranks every heartbeat"
    );

    // The mesh hears the signed opt_out, and the running job comes back failed "opted out".
    let (mut heard, mut handed_back) = (false, false);
    while !(heard && handed_back) {
        let (seq, token) = peer
            .wait("the opt_out and the handed-back job", None, |p, e| {
                if let Some(seq) = opt_out_from(node_address, &e) {
                    return Some((Some(seq), None));
                }
                match e {
                    MeshEvent::Request {
                        envelope, reply, ..
                    } => match result_of(p, &envelope) {
                        Some((_, r)) if r.job == long.job => {
                            assert_eq!(r.status, ResultStatus::Failed);
                            assert_eq!(r.error.as_deref(), Some("opted out"));
                            Some((None, Some(reply)))
                        }
                        _ => None,
                    },
                    _ => None,
                }
            })
            .await;
        if let Some(seq) = seq {
            assert_eq!(seq, opt_out_seq);
            heard = true;
        }
        if let Some(token) = token {
            let ack = peer.seal(Body::JobReply(JobReply::accepted(long.job, 1)));
            peer.mesh.respond(token, ack).await.expect("ack sent");
            handed_back = true;
        }
    }

    // No heartbeat for three heartbeat intervals (a newer one would re-join the node).
    peer.expect_no_heartbeat(node_address, Duration::from_millis(1_500))
        .await;

    // New offers are declined; asking again changes nothing.
    let declined = peer.offer(node_peer, &hash_offer(31, 10)).await;
    assert_eq!(declined.reason, Some(DeclineReason::OptedOut));
    let again = cli(args(&[
        "node",
        "opt-out",
        "--data-dir",
        &data_arg,
        "--json",
    ]))
    .await;
    assert_eq!(crate::json(&again)["changed"], false);

    // A restart stays out: the node says so again (a fresh seq) and still declines.
    node.restart();
    let restarted_seq = peer
        .wait("the restarted node's opt_out", None, |_, e| {
            opt_out_from(node_address, &e).filter(|seq| *seq > opt_out_seq)
        })
        .await;
    let declined = peer.offer(node_peer, &hash_offer(32, 10)).await;
    assert_eq!(declined.reason, Some(DeclineReason::OptedOut));
    peer.expect_no_heartbeat(node_address, Duration::from_millis(1_500))
        .await;
    let status = cli(args(&["node", "status", "--data-dir", &data_arg, "--json"])).await;
    let status = crate::json(&status);
    assert_eq!(status["consent"]["opted_out"], true, "{status}");
    assert_eq!(
        status["consent"]["accepted_hash"],
        consent_hash().to_string()
    );

    // Opting in means accepting the text again; nobody can be asked here.
    let refused = cli(args(&["node", "opt-in", "--data-dir", &data_arg])).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--accept-policy") && err.contains(&consent_hash().to_string()),
        "{err}"
    );
    let wrong = cli(args(&[
        "node",
        "opt-in",
        "--data-dir",
        &data_arg,
        "--accept-policy",
        &Hash32::keccak(b"x").to_string(),
    ]))
    .await;
    assert!(!wrong.status.success(), "a hash of another text is refused");
    let opted_in = cli(args(&[
        "node",
        "opt-in",
        "--data-dir",
        &data_arg,
        "--accept-policy",
        &consent_hash().to_string(),
        "--json",
    ]))
    .await;
    assert!(
        opted_in.status.success(),
        "{}",
        String::from_utf8_lossy(&opted_in.stderr)
    );
    let reply = crate::json(&opted_in);
    assert_eq!(
        (reply["changed"].clone(), reply["opted_out"].clone()),
        (true.into(), false.into())
    );

    // Heartbeats resume above the opt_out, and offers are taken again.
    let resumed = peer
        .wait("a heartbeat after the opt-in", None, |_, e| match e {
            MeshEvent::Gossip { message, .. } if message.message.from == node_address => {
                match &message.message.body {
                    Body::Heartbeat(hb) => Some(hb.clone()),
                    _ => None,
                }
            }
            _ => None,
        })
        .await;
    assert!(
        resumed.seq > restarted_seq,
        "{} > {restarted_seq}",
        resumed.seq
    );
    assert_eq!(resumed.policy, consent_hash());
    let back_in = hash_offer(33, 10);
    assert!(peer.offer(node_peer, &back_in).await.accept);
    let (result, token) = peer
        .wait(
            "the result of a job taken after the opt-in",
            Some(node_address),
            |p, e| match e {
                MeshEvent::Request {
                    envelope, reply, ..
                } => result_of(p, &envelope)
                    .filter(|(_, r)| r.job == back_in.job)
                    .map(|(_, r)| (r, reply)),
                _ => None,
            },
        )
        .await;
    assert_eq!(result.status, ResultStatus::Ok);
    // Acknowledged, so the stop below has nothing left to deliver.
    let ack = peer.seal(Body::JobReply(JobReply::accepted(back_in.job, 1)));
    peer.mesh.respond(token, ack).await.expect("ack sent");
    assert!(
        node.terminate(Duration::from_secs(20)),
        "SIGTERM stops the node gracefully:\n{}",
        node.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_offers_message_is_decided_offer_by_offer_and_its_results_come_back_together() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    let mut peer = Peer::start().await;
    let node_args = node_args(
        &data.display().to_string(),
        &peer.bootstrap,
        peer.key.address(),
    );
    let _node = Daemon::start("node", &node_args, dir.path());
    let (node_peer, jobs_batch): (PeerId, u32) = peer
        .wait("a heartbeat from the node", None, |_, e| match e {
            MeshEvent::Gossip { message, .. } => match &message.message.body {
                Body::Heartbeat(hb) => Some((hb.peer.parse().ok()?, hb.caps.jobs_batch)),
                _ => None,
            },
            _ => None,
        })
        .await;
    assert_eq!(
        jobs_batch, 64,
        "the node announces how many offers it takes at once"
    );
    let validator = Validator {
        net: NET.into(),
        max_bytes: MAX_ENVELOPE_BYTES,
        max_skew_ms: 30_000,
    };
    let send = |offers: Vec<JobOffer>| {
        let envelope = peer.seal(Body::JobOffers(pocmesh_protocol::JobOffers { offers }));
        let (mesh, validator) = (peer.mesh.clone(), validator.clone());
        async move {
            let answer = mesh
                .request(node_peer, None, envelope)
                .await
                .expect("the node answers");
            validator
                .validate(&answer, unix_ms_now())
                .expect("a signed answer")
                .message
                .body
        }
    };

    // Over 64 offers: refused whole, nothing taken.
    let flood: Vec<JobOffer> = (0..65u8).map(|i| hash_offer(100 + i, 10)).collect();
    match send(flood).await {
        Body::JobReply(r) => {
            assert!(!r.accept);
            assert_eq!(r.reason, Some(DeclineReason::InvalidOffer));
        }
        other => panic!("a 65-offer message must be refused whole: {other:?}"),
    }

    // Each offer decided on its own: two good ones, the first again in the same message, and a
    // malformed one (attempt 0).
    let (a, b) = (hash_offer(1, 10), hash_offer(2, 20));
    let mut bad = hash_offer(3, 10);
    bad.attempt = 0;
    let Body::Replies(replies) = send(vec![a.clone(), b.clone(), a.clone(), bad]).await else {
        panic!("a job_offers message is answered by replies");
    };
    let answers: Vec<(JobId, bool, Option<DeclineReason>)> = replies
        .replies
        .iter()
        .map(|r| (r.job, r.accept, r.reason))
        .collect();
    assert_eq!(
        answers,
        vec![
            (a.job, true, None),
            (b.job, true, None),
            (a.job, false, Some(DeclineReason::InvalidOffer)),
            (
                JobId::from([3; 32]),
                false,
                Some(DeclineReason::InvalidOffer)
            ),
        ]
    );

    // The results come back as job_results (to a dispatcher that batches), each one checked
    // here against its own run; none of the flood's jobs ran.
    let mut got: Vec<JobResult> = Vec::new();
    while got.len() < 2 {
        let (results, token) = peer
            .wait("the results as job_results", None, |_, e| match e {
                MeshEvent::Request {
                    envelope, reply, ..
                } => {
                    let v = validator.validate(&envelope, unix_ms_now()).ok()?;
                    match v.message.body {
                        Body::JobResults(r) => Some((r.results, reply)),
                        other => panic!("results to a batching dispatcher: {other:?}"),
                    }
                }
                _ => None,
            })
            .await;
        let replies = results
            .iter()
            .map(|r| JobReply::accepted(r.job, r.attempt))
            .collect();
        peer.mesh
            .respond(
                token,
                peer.seal(Body::Replies(pocmesh_protocol::Replies { replies })),
            )
            .await
            .expect("answered");
        got.extend(results);
    }
    got.sort_by_key(|r| r.job);
    assert_eq!(
        got.iter().map(|r| r.job).collect::<Vec<_>>(),
        vec![a.job, b.job]
    );
    for (r, offer) in got.iter().zip([&a, &b]) {
        assert_eq!(r.status, ResultStatus::Ok);
        let want = pocmesh_executor::Executors::new(&[pocmesh_protocol::JobType::Hash])
            .expect("executors")
            .run(&offer.spec);
        assert_eq!(r.result_hash, want.result_hash(), "the node ran {}", r.job);
    }
}
