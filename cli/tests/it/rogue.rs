//! Rogue volunteers: peers built from the protocol and mesh crates that speak the protocol
//! correctly — signed heartbeats, signed replies and results — and lie in one named way each.
//! Every test here runs a real dispatcher and real honest nodes as processes on a real anvil,
//! lets a rogue do its worst, and then reads the chain.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use pocmesh_executor::Executors;
use pocmesh_mesh::{MeshConfig, MeshEvent, MeshHandle};
use pocmesh_protocol::{
    Address, Body, Bytes, Capabilities, DeclineReason, Envelope, Hash32, Heartbeat, JobOffer,
    JobReply, JobResult, JobType, MAX_ENVELOPE_BYTES, Message, Metering, ResultStatus, SecretKey,
    Topic, Validator, keccak256, unix_ms_now,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::network::{Mesh, hash_job};
use crate::support::eventually;

const NET: &str = "devnet-551";

/// The one way a rogue lies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Lie {
    /// Runs every job right but claims `factor` times the fuel it used.
    InflateFuel(u64),
    /// Answers every job with an output derived from the job id alone — the same answer from
    /// every rogue, so rogues agree with each other.
    WrongOutput,
    /// Announces `jobs_batch` and runs every job right, but with each `job_results` message
    /// also claims an attempt it was never offered for every job, and first tries a message
    /// over the batch size (65 copies of its results).
    Batch,
    /// Runs its first job right; for every later offer it sends a result for an attempt it was
    /// not offered, the first job's output re-labelled as this job's result, and a byte-for-byte
    /// replay of its first result envelope.
    Replay,
}

/// A running rogue and what it saw.
pub(crate) struct Rogue {
    pub(crate) address: Address,
    pub(crate) wallet: Address,
    /// Offers received.
    pub(crate) offers: Arc<AtomicU64>,
    /// The dispatcher's answers to what the rogue sent, labelled by what it sent.
    pub(crate) answers: Arc<Mutex<Vec<(&'static str, JobReply)>>>,
    stop: CancellationToken,
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Rogue {
    /// The answers to what it sent under `label`.
    pub(crate) fn answers_to(&self, label: &str) -> Vec<JobReply> {
        self.answers
            .lock()
            .map(|a| {
                a.iter()
                    .filter(|(l, _)| *l == label)
                    .map(|(_, r)| r.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn seal(key: &SecretKey, body: Body) -> Vec<u8> {
    Envelope::seal(&Message::new(NET, key.address(), unix_ms_now(), body), key)
        .expect("seal")
        .to_bytes()
}

/// Starts a rogue joining through `bootstrap`, announcing `wallet` in its heartbeats.
pub(crate) async fn spawn(wallet: Address, bootstrap: &str, lie: Lie) -> Rogue {
    spawn_with_key(SecretKey::generate().expect("key"), wallet, bootstrap, lie).await
}

/// As [`spawn`], announcing `policy` as the consent text its volunteer accepted.
pub(crate) async fn spawn_with_policy(
    wallet: Address,
    bootstrap: &str,
    lie: Lie,
    policy: Hash32,
) -> Rogue {
    start(
        SecretKey::generate().expect("key"),
        wallet,
        bootstrap,
        lie,
        policy,
    )
    .await
}

/// As [`spawn`], with a given key.
pub(crate) async fn spawn_with_key(
    key: SecretKey,
    wallet: Address,
    bootstrap: &str,
    lie: Lie,
) -> Rogue {
    start(
        key,
        wallet,
        bootstrap,
        lie,
        pocmesh_protocol::consent::consent_hash(),
    )
    .await
}

async fn start(
    key: SecretKey,
    wallet: Address,
    bootstrap: &str,
    lie: Lie,
    policy: Hash32,
) -> Rogue {
    let stop = CancellationToken::new();
    let mut config = MeshConfig::new(NET);
    config.mdns = false;
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")];
    config.bootstrap = vec![bootstrap.parse().expect("bootstrap")];
    config.gossip_heartbeat = Duration::from_millis(200);
    let (mesh, events, _task) = pocmesh_mesh::spawn(&key, config, stop.clone())
        .await
        .expect("mesh");
    let rogue = Rogue {
        address: key.address(),
        wallet,
        offers: Arc::new(AtomicU64::new(0)),
        answers: Arc::new(Mutex::new(Vec::new())),
        stop: stop.clone(),
    };
    tokio::spawn(heartbeats(
        mesh.clone(),
        key.clone(),
        wallet,
        policy,
        if lie == Lie::Batch { 64 } else { 0 },
        stop.clone(),
    ));
    tokio::spawn(serve(
        mesh,
        events,
        key,
        lie,
        rogue.offers.clone(),
        rogue.answers.clone(),
        stop,
    ));
    rogue
}

async fn heartbeats(
    mesh: MeshHandle,
    key: SecretKey,
    wallet: Address,
    policy: Hash32,
    jobs_batch: u32,
    stop: CancellationToken,
) {
    let mut seq = 0;
    while !stop.is_cancelled() {
        seq += 1;
        let hb = Heartbeat {
            seq,
            wallet,
            peer: mesh.local_peer().to_string(),
            caps: Capabilities {
                cores: 8,
                mem_mb: 16_384,
                gpu: None,
                job_types: vec![JobType::Hash, JobType::Wasm],
                slots_total: 8,
                slots_free: 8,
                receipts_batch: 0,
                jobs_batch,
            },
            policy,
            sw: "rogue/0".into(),
        };
        let _ = mesh
            .publish(Topic::Heartbeat, seal(&key, Body::Heartbeat(hb)))
            .await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(700)) => {}
        }
    }
}

/// The replaying rogue's first job, as it goes.
enum FirstJob {
    /// No offer yet.
    Unclaimed,
    /// Being run honestly.
    Running,
    /// Its result.
    Done(First),
}

/// What the rogue remembers of its first, honest job.
struct First {
    envelope: Vec<u8>,
    output: Vec<u8>,
    metering: Metering,
}

async fn serve(
    mesh: MeshHandle,
    mut events: tokio::sync::mpsc::Receiver<MeshEvent>,
    key: SecretKey,
    lie: Lie,
    offers: Arc<AtomicU64>,
    answers: Arc<Mutex<Vec<(&'static str, JobReply)>>>,
    stop: CancellationToken,
) {
    let validator = Validator {
        net: NET.into(),
        max_bytes: MAX_ENVELOPE_BYTES,
        max_skew_ms: 30_000,
    };
    let executors = Arc::new(Executors::new(&[JobType::Hash, JobType::Wasm]).expect("executors"));
    let first: Arc<Mutex<FirstJob>> = Arc::new(Mutex::new(FirstJob::Unclaimed));
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = events.recv() => match e { Some(e) => e, None => return },
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
        let batched = matches!(v.message.body, Body::JobOffers(_));
        let batch = match v.message.body {
            Body::JobOffers(b) => Some(b.offers),
            Body::JobOffer(o) if lie == Lie::Batch => Some(vec![o]),
            body => {
                serve_one(
                    &mesh, &key, body, reply, peer, lie, &offers, &answers, &validator, &executors,
                    &first,
                )
                .await;
                continue;
            }
        };
        let Some(batch) = batch else { continue };
        offers.fetch_add(batch.len() as u64, Ordering::SeqCst);
        let replies: Vec<JobReply> = batch
            .iter()
            .map(|o| JobReply::accepted(o.job, o.attempt))
            .collect();
        let answer = if replies.len() == 1 && !batched {
            Body::JobReply(replies[0].clone())
        } else {
            Body::Replies(pocmesh_protocol::Replies { replies })
        };
        let _ = mesh.respond(reply, seal(&key, answer)).await;
        let ctx = Ctx {
            mesh: mesh.clone(),
            key: key.clone(),
            peer,
            answers: answers.clone(),
            validator: validator.clone(),
        };
        tokio::spawn(act_batch(ctx, batch, executors.clone()));
    }
}

/// Answers one request that is not a batch of offers: a single offer is run by [`act`];
/// anything else (receipts) is acknowledged.
#[allow(clippy::too_many_arguments)]
async fn serve_one(
    mesh: &MeshHandle,
    key: &SecretKey,
    body: Body,
    reply: pocmesh_mesh::ReplyToken,
    peer: PeerId,
    lie: Lie,
    offers: &Arc<AtomicU64>,
    answers: &Arc<Mutex<Vec<(&'static str, JobReply)>>>,
    validator: &Validator,
    executors: &Arc<Executors>,
    first: &Arc<Mutex<FirstJob>>,
) {
    {
        let (mesh, key) = (mesh.clone(), key.clone());
        let Body::JobOffer(offer) = body else {
            // Receipts: acknowledge.
            let _ = mesh
                .respond(
                    reply,
                    seal(
                        &key,
                        Body::JobReply(JobReply::accepted(Default::default(), 0)),
                    ),
                )
                .await;
            return;
        };
        offers.fetch_add(1, Ordering::SeqCst);
        let _ = mesh
            .respond(
                reply,
                seal(
                    &key,
                    Body::JobReply(JobReply::accepted(offer.job, offer.attempt)),
                ),
            )
            .await;
        let ctx = Ctx {
            mesh: mesh.clone(),
            key: key.clone(),
            peer,
            answers: answers.clone(),
            validator: validator.clone(),
        };
        let (executors, first) = (executors.clone(), first.clone());
        tokio::spawn(async move { act(ctx, offer, lie, executors, first).await });
    }
}

/// The batching rogue's work: every job run right, then an oversized `job_results`, then one
/// that carries its honest results and a result for an unoffered attempt of each job.
async fn act_batch(ctx: Ctx, offers: Vec<JobOffer>, executors: Arc<Executors>) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut honest = Vec::new();
    let mut unoffered = Vec::new();
    for offer in &offers {
        let spec = offer.spec.clone();
        let executors = executors.clone();
        let run = tokio::task::spawn_blocking(move || executors.run(&spec))
            .await
            .expect("runs");
        honest.push(ctx.job_result(offer, offer.attempt, run.output.clone(), run.metering));
        unoffered.push(ctx.job_result(offer, offer.attempt + 1_000, run.output, run.metering));
    }
    let oversized: Vec<JobResult> = honest
        .iter()
        .cycle()
        .take(pocmesh_protocol::MAX_BATCH_ITEMS + 1)
        .cloned()
        .collect();
    ctx.send_batch(&["oversized"], oversized).await;
    let labels: Vec<&'static str> = std::iter::repeat_n("batched_honest", honest.len())
        .chain(std::iter::repeat_n("batched_unoffered", unoffered.len()))
        .collect();
    honest.extend(unoffered);
    ctx.send_batch(&labels, honest).await;
}

#[derive(Clone)]
struct Ctx {
    mesh: MeshHandle,
    key: SecretKey,
    peer: PeerId,
    answers: Arc<Mutex<Vec<(&'static str, JobReply)>>>,
    validator: Validator,
}

impl Ctx {
    /// Sends one result envelope and records the dispatcher's answer under `label`.
    async fn send(&self, label: &'static str, envelope: Vec<u8>) {
        let Ok(bytes) = self.mesh.request(self.peer, None, envelope).await else {
            return;
        };
        let Ok(v) = self.validator.validate(&bytes, unix_ms_now()) else {
            return;
        };
        if let Body::JobReply(r) = v.message.body
            && let Ok(mut a) = self.answers.lock()
        {
            a.push((label, r));
        }
    }

    /// Sends `results` as one `job_results` message and records each answer under its label
    /// (a single refusal of the whole message under the first label).
    async fn send_batch(&self, labels: &[&'static str], results: Vec<JobResult>) {
        let envelope = seal(
            &self.key,
            Body::JobResults(pocmesh_protocol::JobResults { results }),
        );
        let Ok(bytes) = self.mesh.request(self.peer, None, envelope).await else {
            return;
        };
        let Ok(v) = self.validator.validate(&bytes, unix_ms_now()) else {
            return;
        };
        let Ok(mut a) = self.answers.lock() else {
            return;
        };
        match v.message.body {
            Body::Replies(r) => {
                for (label, reply) in labels.iter().zip(r.replies) {
                    a.push((label, reply));
                }
            }
            Body::JobReply(r) => a.push((labels[0], r)),
            _ => {}
        }
    }

    fn job_result(
        &self,
        offer: &JobOffer,
        attempt: u32,
        output: Vec<u8>,
        metering: Metering,
    ) -> JobResult {
        JobResult {
            job: offer.job,
            attempt,
            status: ResultStatus::Ok,
            result_hash: Hash32(keccak256(&output)),
            output: Some(Bytes(output)),
            metering,
            error: None,
        }
    }

    fn result(
        &self,
        offer: &JobOffer,
        attempt: u32,
        output: Vec<u8>,
        metering: Metering,
    ) -> Vec<u8> {
        seal(
            &self.key,
            Body::JobResult(JobResult {
                job: offer.job,
                attempt,
                status: ResultStatus::Ok,
                result_hash: Hash32(keccak256(&output)),
                output: Some(Bytes(output)),
                metering,
                error: None,
            }),
        )
    }
}

async fn act(
    ctx: Ctx,
    offer: JobOffer,
    lie: Lie,
    executors: Arc<Executors>,
    first: Arc<Mutex<FirstJob>>,
) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let spec = offer.spec.clone();
    let honest = tokio::task::spawn_blocking(move || executors.run(&spec))
        .await
        .expect("runs");
    match lie {
        // Every offer of the batching rogue goes to `act_batch`.
        Lie::Batch => {}
        Lie::InflateFuel(factor) => {
            let mut metering = honest.metering;
            metering.fuel = metering.fuel.saturating_mul(factor);
            let env = ctx.result(&offer, offer.attempt, honest.output, metering);
            ctx.send("inflated", env).await;
        }
        Lie::WrongOutput => {
            let output = keccak256(offer.job.as_bytes()).to_vec();
            let metering = Metering {
                bytes: output.len() as u64,
                ..honest.metering
            };
            let env = ctx.result(&offer, offer.attempt, output, metering);
            ctx.send("wrong", env).await;
        }
        Lie::Replay => {
            // Exactly one offer is the honest first job, even when two arrive together: the
            // first to look claims it; the others wait until its result exists.
            let claimed = first.lock().is_ok_and(|mut f| match *f {
                FirstJob::Unclaimed => {
                    *f = FirstJob::Running;
                    true
                }
                _ => false,
            });
            if claimed {
                let env = ctx.result(
                    &offer,
                    offer.attempt,
                    honest.output.clone(),
                    honest.metering,
                );
                if let Ok(mut f) = first.lock() {
                    *f = FirstJob::Done(First {
                        envelope: env.clone(),
                        output: honest.output,
                        metering: honest.metering,
                    });
                }
                ctx.send("honest", env).await;
                return;
            }
            let mut previous = None;
            for _ in 0..100 {
                previous = first.lock().ok().and_then(|f| match &*f {
                    FirstJob::Done(f) => Some((f.envelope.clone(), f.output.clone(), f.metering)),
                    _ => None,
                });
                if previous.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let Some((envelope, output, metering)) = previous else {
                return;
            };
            // An attempt it was never offered.
            let unoffered = ctx.result(
                &offer,
                offer.attempt + 1_000,
                honest.output.clone(),
                honest.metering,
            );
            ctx.send("unoffered", unoffered).await;
            // Its first job's result, word for word.
            ctx.send("replayed", envelope).await;
            // Its first job's output and metering, re-labelled as this job's result.
            let relabelled = ctx.result(&offer, offer.attempt, output, metering);
            ctx.send("relabelled", relabelled).await;
        }
    }
}

/// Every answer in `answers` refuses what was sent as invalid.
fn assert_refused(answers: &[JobReply], what: &str) {
    assert!(
        answers
            .iter()
            .all(|r| !r.accept && r.reason == Some(DeclineReason::InvalidOffer)),
        "{what} must be refused: {answers:?}"
    );
}

/// Units the dispatcher credited to `node` over `jobs`.
fn credited_units(jobs: &[pocmesh_dispatcher::api::JobView], node: Address) -> u64 {
    jobs.iter()
        .flat_map(|j| &j.credits)
        .filter(|c| c.node == node)
        .map(|c| c.units)
        .sum()
}

/// Submits one `hash` job per seed and returns their ids.
async fn submit_hash_jobs(mesh: &Mesh, seeds: std::ops::Range<u64>) -> Vec<String> {
    let mut ids = Vec::new();
    for i in seeds {
        ids.push(mesh.submit(&hash_job(i)).await);
    }
    ids
}

/// A wallet's units on chain.
async fn units(mesh: &Mesh, wallet: Address) -> u128 {
    pocmesh_chain::ProofOfCompute::at(&mesh.chain.rpc, mesh.chain.contract)
        .await
        .expect("contract")
        .units(wallet)
        .await
        .expect("units")
}

/// The dispatcher's view of one node.
async fn node_view(mesh: &Mesh, address: Address) -> Option<Value> {
    let nodes = mesh.get("/v1/nodes").await?;
    nodes
        .as_array()?
        .iter()
        .find(|n| n["address"] == address.to_string())
        .cloned()
}

async fn wait_excluded(mesh: &Mesh, address: Address) -> Value {
    eventually(
        &format!("node {address} excluded"),
        Duration::from_secs(90),
        || async {
            let v = node_view(mesh, address).await?;
            (v["excluded"] == true).then_some(v)
        },
        || mesh.logs(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflated_metering_earns_nothing_alone_or_beside_honest_nodes_and_stays_excluded() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut mesh = Mesh::start(dir.path(), 0).await;
    let rogue = spawn(
        Address::from([0x66; 20]),
        &mesh.bootstrap,
        Lie::InflateFuel(1_000_000),
    )
    .await;
    mesh.wait_online(1).await;

    // Alone: one job worth 1 unit; the rogue claims a million times the work.
    let mut first = hash_job(0);
    first.iterations = Some(1_000_000);
    let mut ids = vec![mesh.submit(&first).await];
    let view = wait_excluded(&mesh, rogue.address).await;
    assert!(
        view["exclusion"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("metering")),
        "{view}"
    );
    let job = mesh.job(&ids[0]).await.expect("job");
    assert_ne!(job.state, "recorded", "nothing credited for a lie");
    assert_eq!(units(&mesh, rogue.wallet).await, 0);

    // Beside honest nodes: the job finishes on them, and so do eleven more.
    mesh.add_nodes(2).await;
    mesh.wait_online(3).await;
    for i in 1..12 {
        ids.push(mesh.submit(&hash_job(i)).await);
    }
    let jobs = mesh.all_recorded(&ids, Duration::from_secs(180)).await;
    assert_eq!(
        units(&mesh, rogue.wallet).await,
        0,
        "the rogue earned nothing"
    );
    assert!(
        jobs.iter()
            .all(|j| j.credits.iter().all(|c| c.wallet != rogue.wallet))
    );
    assert!(
        jobs.iter().all(|j| j.units == 1),
        "each job is worth its iterations, 1 unit"
    );
    mesh.check_chain(&jobs, &[rogue.wallet]).await;

    // A restarted dispatcher still knows: the rogue stays excluded and gets no offer.
    let offers_before = rogue.offers.load(Ordering::SeqCst);
    mesh.restart_dispatcher().await;
    mesh.wait_online(3).await;
    let view = node_view(&mesh, rogue.address).await.expect("rogue known");
    assert_eq!(
        view["excluded"], true,
        "excluded across the restart: {view}"
    );
    let more: Vec<String> = {
        let mut v = Vec::new();
        for i in 100..106 {
            v.push(mesh.submit(&hash_job(i)).await);
        }
        v
    };
    let more = mesh.all_recorded(&more, Duration::from_secs(120)).await;
    assert_eq!(
        rogue.offers.load(Ordering::SeqCst),
        offers_before,
        "no offer to an excluded node after the restart"
    );
    let mut all = jobs;
    all.extend(more);
    mesh.check_chain(&all, &[rogue.wallet]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keys_of_one_wallet_agreeing_on_a_wrong_answer_earn_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), 2).await;
    let wallet = Address::from([0x77; 20]);
    let a = spawn(wallet, &mesh.bootstrap, Lie::WrongOutput).await;
    let b = spawn(wallet, &mesh.bootstrap, Lie::WrongOutput).await;
    mesh.wait_online(4).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut job = hash_job(i);
        job.redundancy = Some(2);
        ids.push(mesh.submit(&job).await);
    }
    let jobs = mesh.all_recorded(&ids, Duration::from_secs(180)).await;
    // One wallet never holds two places in one job.
    for j in &jobs {
        let rogue_attempts = j
            .attempts
            .iter()
            .filter(|x| x.node == a.address || x.node == b.address)
            .filter(|x| x.state != "declined")
            .count();
        assert!(
            rogue_attempts <= 1,
            "one operator held two places in {}",
            j.id
        );
    }
    assert_eq!(
        units(&mesh, wallet).await,
        0,
        "the shared wallet earned nothing"
    );
    for j in &jobs {
        assert!(!j.credits.is_empty());
        assert!(
            j.credits.iter().all(|c| c.wallet != wallet),
            "only honest nodes credited in {}",
            j.id
        );
    }
    let mut caught = 0;
    for r in [&a, &b] {
        if r.offers.load(Ordering::SeqCst) > 0 {
            let view = wait_excluded(&mesh, r.address).await;
            assert_eq!(view["wallet_flagged"], true, "{view}");
            assert!(
                view["counters"]["rejected"].as_u64().expect("rejected") >= 1,
                "{view}"
            );
            caught += 1;
        }
    }
    assert!(caught >= 1, "the rogues got work and were caught");
    mesh.check_chain(&jobs, &[wallet]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_for_unoffered_attempts_or_replayed_from_another_job_are_not_credited() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), 1).await;
    let rogue = spawn(Address::from([0x88; 20]), &mesh.bootstrap, Lie::Replay).await;
    mesh.wait_online(2).await;
    let ids = submit_hash_jobs(&mesh, 0..10).await;
    let jobs = mesh.all_recorded(&ids, Duration::from_secs(180)).await;
    assert!(
        rogue.offers.load(Ordering::SeqCst) >= 2,
        "the rogue got a first job and a later one"
    );
    // Its first job was honest and re-executed: that work, and only that, is credited.
    let honest = rogue.answers_to("honest");
    assert_eq!(honest.len(), 1);
    assert!(honest[0].accept);
    let unoffered = rogue.answers_to("unoffered");
    assert!(!unoffered.is_empty());
    assert_refused(&unoffered, "an attempt it was not offered");
    // A byte-for-byte replay is a repeat: acknowledged, credited once.
    assert!(rogue.answers_to("replayed").iter().all(|r| r.accept));
    let rogue_credits = credited_units(&jobs, rogue.address);
    assert_eq!(rogue_credits, 1, "only the job it really ran");
    assert_eq!(units(&mesh, rogue.wallet).await, 1);
    wait_excluded(&mesh, rogue.address).await;
    mesh.check_chain(&jobs, &[rogue.wallet]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_results_are_judged_one_by_one_and_an_oversized_batch_is_refused_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), 1).await;
    let rogue = spawn(Address::from([0x89; 20]), &mesh.bootstrap, Lie::Batch).await;
    mesh.wait_online(2).await;
    let ids = submit_hash_jobs(&mesh, 100..112).await;
    let jobs = mesh.all_recorded(&ids, Duration::from_secs(180)).await;
    assert!(
        rogue.offers.load(Ordering::SeqCst) >= 1,
        "the rogue got work"
    );
    let oversized = rogue.answers_to("oversized");
    assert!(!oversized.is_empty());
    assert_refused(&oversized, "a job_results over 64, as a whole");
    let honest = rogue.answers_to("batched_honest");
    assert!(!honest.is_empty());
    assert!(honest.iter().all(|r| r.accept), "{honest:?}");
    let unoffered = rogue.answers_to("batched_unoffered");
    assert_eq!(unoffered.len(), honest.len());
    assert_refused(&unoffered, "an unoffered attempt in a batch, on its own");
    // What it really ran is credited (each job once), and nothing else.
    let accepted: std::collections::HashSet<_> = honest.iter().map(|r| r.job).collect();
    let rogue_jobs: Vec<_> = jobs
        .iter()
        .filter(|j| j.credits.iter().any(|c| c.node == rogue.address))
        .collect();
    assert!(rogue_jobs.iter().all(|j| accepted.contains(&j.id)));
    let rogue_credits = credited_units(&jobs, rogue.address);
    assert_eq!(units(&mesh, rogue.wallet).await, u128::from(rogue_credits));
    mesh.check_chain(&jobs, &[rogue.wallet]).await;
}
