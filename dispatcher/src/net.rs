//! The dispatcher on the mesh: turns gossip and job-protocol requests into engine inputs, and
//! carries out what the engine decided after each commit — offers, receipts, batch recording,
//! re-executions (through the bounded [`AuditRunner`]) — as tasks that report back to the engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::multiaddr::Protocol;
use pocmesh_executor::Executors;
use pocmesh_mesh::identity::peer_address;
use pocmesh_mesh::{MeshEvent, MeshHandle, ReplyToken};
use pocmesh_protocol::{
    Address, BatchPlan, Body, DeclineReason, DispatcherAnnounce, Envelope, JobId, JobOffer,
    JobOffers, JobReply, JobSpec, JobType, Kind, Message, PolicyRef, ReceiptLeaf, Replies,
    SecretKey, Topic, Validator, unix_ms_now,
};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::engine::{Input, OfferAnswer, Outgoing};
use crate::metrics::DispatcherMetrics;
use crate::policy::Origin;
use crate::store::BatchRow;
use crate::submitter::ProofSubmitter;
use crate::verify::{AuditOutcome, result_key};

/// Signature checks of job-protocol messages in flight at once.
const VERIFY_WORKERS: usize = 64;

/// Runs the dispatcher's own re-executions: at most `workers` at once on the blocking pool, at
/// most `queue` waiting; beyond that a request is shed at once (reported unavailable, so the
/// job goes to another node instead). Each run is bounded by the job's own limits and by a
/// wall-clock timeout over them.
pub(crate) struct AuditRunner {
    queue: mpsc::Sender<(JobId, JobSpec)>,
    inputs: crate::engine::Lanes,
}

/// Slack over a job's own time limit before the dispatcher gives up on its run.
const AUDIT_SLACK: Duration = Duration::from_secs(5);

impl AuditRunner {
    /// Starts `workers` workers; they stop when `shutdown` fires or the runner is dropped.
    pub(crate) fn start(
        executors: Arc<Executors>,
        workers: usize,
        queue: usize,
        inputs: crate::engine::Lanes,
        metrics: Arc<DispatcherMetrics>,
        shutdown: CancellationToken,
    ) -> (Self, Vec<tokio::task::JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel::<(JobId, JobSpec)>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let tasks = (0..workers.max(1))
            .map(|_| {
                let (rx, executors, inputs, metrics, shutdown) = (
                    rx.clone(),
                    executors.clone(),
                    inputs.clone(),
                    metrics.clone(),
                    shutdown.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        let next = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            next = async { rx.lock().await.recv().await } => next,
                        };
                        let Some((job, spec)) = next else {
                            return;
                        };
                        metrics.audit_queue.dec();
                        let outcome = audit(&executors, spec).await;
                        if inputs.send(Input::Audited { job, outcome }).await.is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        (AuditRunner { queue: tx, inputs }, tasks)
    }

    /// Queues a re-execution, or reports it unavailable at once when the queue is full.
    pub(crate) fn submit(&self, job: JobId, spec: JobSpec, metrics: &DispatcherMetrics) {
        match self.queue.try_send((job, spec)) {
            Ok(()) => {
                metrics.audit_queue.inc();
            }
            Err(e) => {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "shed: the re-execution queue is full",
                    mpsc::error::TrySendError::Closed(_) => "the re-execution workers stopped",
                };
                let inputs = self.inputs.clone();
                tokio::spawn(async move {
                    let _ = inputs
                        .send(Input::Audited {
                            job,
                            outcome: AuditOutcome::Unavailable(why.into()),
                        })
                        .await;
                });
            }
        }
    }
}

/// Runs one job here under its own limits. A run that ends — even in a deterministic failure
/// (a trap, fuel or memory exhausted, an invalid module), which no honest node can turn into a
/// success — is a verdict; a timeout, a crash or a local failure is none.
async fn audit(executors: &Arc<Executors>, spec: JobSpec) -> AuditOutcome {
    let limit = Duration::from_millis(spec.limits.max_ms) + AUDIT_SLACK;
    let job_type = spec.params.job_type();
    let executors = executors.clone();
    let run = tokio::task::spawn_blocking(move || executors.run(&spec));
    match tokio::time::timeout(limit, run).await {
        Err(_) => AuditOutcome::Unavailable(format!(
            "the dispatcher's run took longer than {} ms",
            limit.as_millis()
        )),
        Ok(Err(e)) => AuditOutcome::Unavailable(format!("the dispatcher's run crashed: {e}")),
        Ok(Ok(execution)) if execution.local_cause => AuditOutcome::Unavailable(format!(
            "the dispatcher's run failed here: {}",
            execution.error.as_deref().unwrap_or("no reason")
        )),
        Ok(Ok(execution)) => AuditOutcome::Ran(result_key(
            job_type,
            execution.result_hash(),
            &execution.metering,
            &execution.output,
        )),
    }
}

/// The network origin of a remote multiaddr, if it names an IP.
pub(crate) fn origin_of(addr: &libp2p::Multiaddr) -> Option<Origin> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(Origin::of(ip.into())),
        Protocol::Ip6(ip) => Some(Origin::of(ip.into())),
        _ => None,
    })
}

/// What the network side of the dispatcher needs.
pub(crate) struct NetCtx {
    pub(crate) mesh: MeshHandle,
    pub(crate) key: SecretKey,
    pub(crate) address: Address,
    pub(crate) net: String,
    pub(crate) validator: Validator,
    pub(crate) inputs: crate::engine::Lanes,
    pub(crate) metrics: Arc<DispatcherMetrics>,
    pub(crate) verify_workers: Arc<Semaphore>,
    pub(crate) audits: AuditRunner,
    pub(crate) shutdown: CancellationToken,
    /// Receipts in flight per node (see [`RECEIPTS_IN_FLIGHT_PER_NODE`]).
    receipt_slots: PerPeerSlots,
}

/// Receipts sent to one node at once. A landed batch holds up to `batch_max` credits; sent all
/// at once they ran over a node's request-stream cap (libp2p drops the excess: "at capacity")
/// and crowded out its job offers.
const RECEIPTS_IN_FLIGHT_PER_NODE: usize = 8;

/// One semaphore per peer, created on first use and dropped when nobody holds it.
#[derive(Debug)]
struct PerPeerSlots {
    per_peer: usize,
    slots: std::sync::Mutex<HashMap<PeerId, Arc<Semaphore>>>,
}

impl PerPeerSlots {
    fn new(per_peer: usize) -> Self {
        PerPeerSlots {
            per_peer,
            slots: Default::default(),
        }
    }

    /// Waits for one of `peer`'s slots; it is free again when the permit drops.
    async fn acquire(&self, peer: PeerId) -> PeerSlot<'_> {
        let sem = {
            let mut map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(peer)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_peer)))
                .clone()
        };
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = sem.clone().acquire_owned().await.ok();
        PeerSlot {
            owner: self,
            peer,
            sem,
            permit,
        }
    }

    /// Peers with a semaphore (held or waited on).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.slots.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// A held slot of [`PerPeerSlots`].
struct PeerSlot<'a> {
    owner: &'a PerPeerSlots,
    peer: PeerId,
    sem: Arc<Semaphore>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for PeerSlot<'_> {
    fn drop(&mut self) {
        self.permit.take();
        let mut map = self.owner.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's are the only handles left: nobody holds or waits for this peer.
        if Arc::strong_count(&self.sem) == 2 {
            map.remove(&self.peer);
        }
    }
}

impl NetCtx {
    pub(crate) fn new(
        mesh: MeshHandle,
        key: SecretKey,
        validator: Validator,
        inputs: crate::engine::Lanes,
        metrics: Arc<DispatcherMetrics>,
        audits: AuditRunner,
        shutdown: CancellationToken,
    ) -> Self {
        NetCtx {
            address: key.address(),
            net: validator.net.clone(),
            mesh,
            key,
            validator,
            inputs,
            metrics,
            verify_workers: Arc::new(Semaphore::new(VERIFY_WORKERS)),
            audits,
            shutdown,
            receipt_slots: PerPeerSlots::new(RECEIPTS_IN_FLIGHT_PER_NODE),
        }
    }

    /// Signs `body` as the dispatcher.
    pub(crate) fn seal(&self, body: Body) -> Option<Vec<u8>> {
        let m = Message::new(self.net.clone(), self.address, unix_ms_now(), body);
        match Envelope::seal(&m, &self.key) {
            Ok(e) => Some(e.to_bytes()),
            Err(e) => {
                warn!(error = %e, "cannot seal a message");
                None
            }
        }
    }

    /// Checks an envelope. One check is ~75 µs and runs on the calling task (each request and
    /// each offer has its own), at most [`VERIFY_WORKERS`] at once: handing single checks to
    /// the blocking pool cost more in thread wake-ups than the checks (`pocmesh bench
    /// dispatch`: 468 → 606 verified/s when the node stopped doing it).
    async fn verify(
        self: &Arc<Self>,
        bytes: Vec<u8>,
    ) -> Result<pocmesh_protocol::Verified, String> {
        let _permit = self
            .verify_workers
            .acquire()
            .await
            .map_err(|_| "stopping".to_string())?;
        self.validator
            .validate(&bytes, unix_ms_now())
            .map_err(|e| e.to_string())
    }
}

/// What carries out the engine's effects: the mesh (offers, receipts), the recorder (batches)
/// and the audit runner.
pub(crate) struct EngineIo {
    pub(crate) net: Arc<NetCtx>,
    pub(crate) submitter: Arc<dyn ProofSubmitter>,
}

impl EngineIo {
    /// Starts the work in `outgoing` (each on its own task; answers come back as inputs).
    pub(crate) fn flush(&self, outgoing: impl Iterator<Item = Outgoing>) {
        for out in outgoing {
            let net = self.net.clone();
            match out {
                Outgoing::Offers { peer, node, offers } => {
                    tokio::spawn(send_offers(net, peer, node, offers));
                }
                Outgoing::Receipts {
                    peer,
                    receipts,
                    batch,
                } if batch > 1 => {
                    for chunk in receipts.chunks(batch) {
                        let body = Body::Receipts(pocmesh_protocol::Receipts {
                            receipts: chunk.to_vec(),
                        });
                        tokio::spawn(send_receipts(net.clone(), peer.clone(), body, chunk.len()));
                    }
                }
                Outgoing::Receipts { peer, receipts, .. } => {
                    for r in receipts {
                        let body = Body::Receipt(r);
                        tokio::spawn(send_receipts(net.clone(), peer.clone(), body, 1));
                    }
                }
                Outgoing::Record(batch) => {
                    tokio::spawn(record_batch(net, self.submitter.clone(), batch));
                }
                Outgoing::Audit { job, spec } => {
                    net.audits.submit(job, spec, &net.metrics);
                }
            }
        }
    }
}

/// Sends offers to one node — one `job_offer`, or several in one `job_offers` — and gives
/// the engine each offer's answer.
async fn send_offers(net: Arc<NetCtx>, peer: String, node: Address, offers: Vec<JobOffer>) {
    let keys: Vec<(JobId, u32)> = offers.iter().map(|o| (o.job, o.attempt)).collect();
    let body = match <[JobOffer; 1]>::try_from(offers) {
        Ok([offer]) => Body::JobOffer(offer),
        Err(offers) => Body::JobOffers(JobOffers { offers }),
    };
    DispatcherMetrics::count(&net.metrics.job_messages, body.kind().as_str());
    let answers = match ask(&net, &peer, node, body).await {
        Err(why) => vec![OfferAnswer::Unreachable(why); keys.len()],
        Ok(Body::JobReply(r)) if keys.len() == 1 => vec![answer_of(&r, keys[0])],
        Ok(Body::Replies(r)) if r.replies.len() == keys.len() => r
            .replies
            .iter()
            .zip(&keys)
            .map(|(r, k)| answer_of(r, *k))
            .collect(),
        Ok(_) => {
            vec![OfferAnswer::Unreachable("reply does not answer the offers".into()); keys.len()]
        }
    };
    for answer in &answers {
        let label = match answer {
            OfferAnswer::Accepted => "accepted",
            OfferAnswer::Declined(_) => "declined",
            OfferAnswer::Unreachable(_) => "unreachable",
        };
        DispatcherMetrics::count(&net.metrics.offers, label);
    }
    // One input for all of them: the engine takes them in one burst.
    let answers = keys
        .into_iter()
        .zip(answers)
        .map(|((job, attempt), answer)| (job, attempt, answer))
        .collect();
    let _ = net.inputs.send(Input::OffersAnswered { answers }).await;
}

/// Sends one request to `node` at `peer` and returns the body of its checked, signed answer.
async fn ask(net: &Arc<NetCtx>, peer: &str, node: Address, body: Body) -> Result<Body, String> {
    let peer_id = peer
        .parse::<PeerId>()
        .map_err(|e| format!("bad peer id {peer}: {e}"))?;
    let bytes = net.seal(body).ok_or("cannot sign the offer")?;
    let reply = net
        .mesh
        .request(peer_id, None, bytes)
        .await
        .map_err(|e| e.to_string())?;
    let v = net
        .verify(reply)
        .await
        .map_err(|e| format!("invalid reply: {e}"))?;
    if v.message.from != node {
        return Err("reply signed by another key".into());
    }
    Ok(v.message.body)
}

/// What one reply says about the offer of `key`.
fn answer_of(r: &JobReply, key: (JobId, u32)) -> OfferAnswer {
    if (r.job, r.attempt) != key {
        OfferAnswer::Unreachable("reply does not answer the offer".into())
    } else if r.accept {
        OfferAnswer::Accepted
    } else {
        OfferAnswer::Declined(r.reason.unwrap_or(DeclineReason::Other))
    }
}

/// Sends one `receipt` or `receipts` message (carrying `count` receipts) to `peer`.
async fn send_receipts(net: Arc<NetCtx>, peer: String, body: Body, count: usize) {
    let Ok(peer_id) = peer.parse::<PeerId>() else {
        return;
    };
    let Some(bytes) = net.seal(body) else {
        return;
    };
    let _slot = net.receipt_slots.acquire(peer_id).await;
    // Receipts are a courtesy copy of what the chain holds: a few tries, then the node can
    // still prove its credit from the chain.
    for attempt in 0..3u32 {
        if net.shutdown.is_cancelled() {
            return;
        }
        match net.mesh.request(peer_id, None, bytes.clone()).await {
            Ok(_) => {
                net.metrics.receipts_sent.inc_by(count as u64);
                return;
            }
            Err(e) => {
                debug!(%peer, receipts = count, error = %e, "receipts not delivered");
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
        }
    }
}

/// Sends a batch until it is on chain; never gives up (the promise: an unreachable RPC delays
/// recording, it never drops it).
async fn record_batch(
    net: Arc<NetCtx>,
    submitter: Arc<dyn crate::submitter::ProofSubmitter>,
    batch: BatchRow,
) {
    let leaves: Vec<ReceiptLeaf> = batch.credits.iter().map(leaf_of).collect();
    let plan = match BatchPlan::new(leaves) {
        Ok(p) => p,
        Err(e) => {
            warn!(batch = %batch.id, error = %e, "cannot rebuild the batch plan");
            return;
        }
    };
    let mut delay = Duration::from_millis(500);
    loop {
        match submitter.submit(&plan).await {
            Ok(landed) => {
                info!(batch = %batch.id, tx = %landed.tx, block = landed.block, credits = batch.credits.len(), units = plan.total_units(), "batch on chain");
                let _ = net
                    .inputs
                    .send(Input::BatchLanded {
                        batch: batch.id,
                        tx: landed.tx,
                        block: landed.block,
                        gas_used: landed.gas_used,
                    })
                    .await;
                return;
            }
            Err(e) if e.refused.is_some() => {
                let Some(refused) = e.refused else {
                    return;
                };
                net.metrics.chain_errors.inc();
                let _ = net
                    .inputs
                    .send(Input::BatchRefused {
                        batch: batch.id,
                        provider: refused.provider,
                        reason: refused.reason,
                    })
                    .await;
                return;
            }
            Err(e) => {
                net.metrics.chain_errors.inc();
                if !e.retryable {
                    delay = delay.max(Duration::from_secs(30));
                }
                warn!(batch = %batch.id, error = %e, retry_in_ms = delay.as_millis() as u64, "batch not recorded yet; will retry");
                tokio::select! {
                    _ = net.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The receipt leaf of a credit.
pub(crate) fn leaf_of(c: &crate::lifecycle::Credit) -> ReceiptLeaf {
    ReceiptLeaf {
        job: c.job,
        provider: c.wallet,
        node: c.node,
        units: c.units,
        result_hash: c.result_hash,
    }
}

/// Turns mesh events into engine inputs until the mesh stops.
pub(crate) async fn event_loop(net: Arc<NetCtx>, mut events: mpsc::Receiver<MeshEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            MeshEvent::Gossip { message, .. } => {
                let from = message.message.from;
                let input = match message.message.body {
                    Body::Heartbeat(hb) => Input::Heartbeat {
                        from,
                        heartbeat: Box::new(hb),
                    },
                    Body::OptOut(o) => Input::OptOut { from, opt_out: o },
                    _ => continue,
                };
                if matches!(input, Input::Heartbeat { .. }) {
                    // A full lane drops a heartbeat (the node sends another within an
                    // interval) rather than stall the mesh; counted.
                    if let Err(crate::engine::LaneSendError::Full) = net.inputs.try_send(input) {
                        DispatcherMetrics::count(&net.metrics.inputs_dropped, "heartbeat");
                    }
                } else {
                    let _ = net.inputs.send(input).await;
                }
            }
            MeshEvent::Request {
                peer,
                envelope,
                reply,
            } => {
                tokio::spawn(on_request(net.clone(), peer, envelope, reply));
            }
            MeshEvent::PeerConnected { peer, address } => {
                debug!(%peer, %address, "peer connected");
                if let (Some(node), Some(origin)) = (peer_address(&peer), origin_of(&address)) {
                    let _ = net.inputs.send(Input::PeerOrigin { node, origin }).await;
                }
            }
            MeshEvent::PeerDisconnected { peer } => debug!(%peer, "peer disconnected"),
            MeshEvent::Listening { .. } | MeshEvent::GossipDropped { .. } => {}
        }
    }
}

async fn on_request(net: Arc<NetCtx>, peer: PeerId, envelope: Vec<u8>, reply: ReplyToken) {
    let refused = || JobReply::declined(JobId::default(), 0, DeclineReason::InvalidOffer);
    let verified = net.verify(envelope).await;
    if let Ok(v) = &verified
        && matches!(v.message.kind(), Kind::JobResult | Kind::JobResults)
    {
        DispatcherMetrics::count(&net.metrics.job_messages, v.message.kind().as_str());
    }
    let answer = match verified {
        Ok(v) if peer_address(&peer) != Some(v.message.from) => {
            // Counted, logged at debug: a flood of these must not flood the log too.
            DispatcherMetrics::count(&net.metrics.results, "wrong_signer");
            debug!(%peer, "request signed by another key than the peer's");
            Body::JobReply(refused())
        }
        Ok(v) => match v.message.body {
            Body::JobResult(result) => match take_results(&net, v.message.from, vec![result])
                .await
                .map(|mut r| r.pop())
            {
                Some(Some(answer)) => Body::JobReply(answer),
                // The engine stopped before the result was stored: no acknowledgement, so the
                // node sends it again later.
                _ => return,
            },
            Body::JobResults(batch) if batch.results.len() > pocmesh_protocol::MAX_BATCH_ITEMS => {
                DispatcherMetrics::count(&net.metrics.results, "oversized_batch");
                debug!(%peer, results = batch.results.len(), "job_results over the batch size");
                Body::JobReply(refused())
            }
            // One signature for all of them; each result is taken as a single one would be.
            Body::JobResults(batch) => {
                match take_results(&net, v.message.from, batch.results).await {
                    Some(replies) => Body::Replies(Replies { replies }),
                    None => return,
                }
            }
            other => {
                debug!(%peer, kind = %other.kind(), "unexpected request kind");
                Body::JobReply(refused())
            }
        },
        Err(e) => {
            DispatcherMetrics::count(&net.metrics.results, "invalid");
            debug!(%peer, error = %e, "invalid request");
            Body::JobReply(refused())
        }
    };
    if let Some(bytes) = net.seal(answer)
        && let Err(e) = net.mesh.respond(reply, bytes).await
    {
        debug!(%peer, error = %e, "cannot answer a request");
    }
}

/// Hands results from `from` to the engine and waits for each one's answer (given after the
/// burst that took it is on disk). `None` when the engine stopped before answering them all:
/// nothing is acknowledged then, and the node sends them again.
async fn take_results(
    net: &Arc<NetCtx>,
    from: Address,
    results: Vec<pocmesh_protocol::JobResult>,
) -> Option<Vec<JobReply>> {
    let mut waiting = Vec::with_capacity(results.len());
    let mut results_in = Vec::with_capacity(results.len());
    for result in results {
        let (tx, rx) = oneshot::channel();
        results_in.push((result, tx));
        waiting.push(rx);
    }
    // One input for all of them: the engine takes them in one burst, and offers the slots
    // they free again in one message.
    net.inputs
        .send(Input::Results {
            from,
            results: results_in,
        })
        .await
        .ok()?;
    let mut replies = Vec::with_capacity(waiting.len());
    for rx in waiting {
        let answer = rx.await.ok()?;
        // A ShuttingDown refusal must not look like a final answer to the node.
        if answer.reason == Some(DeclineReason::ShuttingDown) {
            return None;
        }
        replies.push(answer);
    }
    Some(replies)
}

/// Announces the dispatcher on gossip every `every` until shutdown.
pub(crate) async fn announce(net: Arc<NetCtx>, contract: Address, every: Duration) {
    let announce = DispatcherAnnounce {
        peer: net.mesh.local_peer().to_string(),
        contract,
        policy: PolicyRef {
            hash: pocmesh_protocol::consent::consent_hash(),
            version: pocmesh_protocol::consent::CONSENT_VERSION,
            url: "https://github.com/pocmesh/pocmesh/blob/main/docs/run-a-node.md#consent".into(),
        },
        job_types: vec![JobType::Hash, JobType::Wasm],
    };
    let mut delay = Duration::from_secs(2);
    loop {
        tokio::select! {
            _ = net.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = every;
        if let Some(bytes) = net.seal(Body::Dispatcher(announce.clone())) {
            match net.mesh.publish(Topic::Dispatcher, bytes).await {
                Ok(()) => debug!("dispatcher announced"),
                Err(e) => debug!(error = %e, "announcement not sent"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_peer_gets_at_most_its_slots_and_the_map_empties_after() {
        let slots = Arc::new(PerPeerSlots::new(2));
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = slots.acquire(a).await;
        let a2 = slots.acquire(a).await;
        // A third slot for `a` waits; `b` is not held up by `a`.
        let waiting = {
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.acquire(a).await;
            })
        };
        let b1 = tokio::time::timeout(Duration::from_secs(1), slots.acquire(b))
            .await
            .expect("another peer's slots are its own");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a third receipt to one peer must wait"
        );
        drop(a1);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("a freed slot lets the waiter in")
            .expect("task");
        drop(b1);
        assert_eq!(slots.tracked(), 1, "only `a` is still held");
        drop(a2);
        assert_eq!(slots.tracked(), 0, "idle peers are forgotten");
    }
}
