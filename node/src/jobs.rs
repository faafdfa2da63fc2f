//! Offers in, results out: validates job-protocol requests, decides on offers
//! ([`crate::intake`]), runs accepted jobs on blocking workers, signs their results and stores
//! them durably for delivery; stores receipts (checked later by [`crate::receipts`]).

use std::collections::HashSet;
use std::sync::Arc;

use libp2p::PeerId;
use pocmesh_mesh::{ReplyToken, identity::peer_address};
use pocmesh_protocol::{
    Body, Bytes, DeclineReason, Envelope, JobId, JobOffer, JobReply, JobResult, JobSpec,
    MAX_BATCH_ITEMS, Message, Metering, Receipt, Replies, ResultStatus, unix_ms_now,
};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info, warn};

use crate::daemon::{NodeCore, job_label, remember_dispatcher};
use crate::intake::{IntakeState, evaluate};
use crate::receipts::{ReceiptState, arrival_state};
use crate::status::NodeMetrics;
use crate::store::{Arriving, JobRecord, JobState, PendingResult, StoreError};
use pocmesh_executor::{Execution, Executors};

/// Signs `body` as this node.
pub(crate) fn seal(core: &NodeCore, body: Body) -> Option<Vec<u8>> {
    let message = Message::new(core.net.clone(), core.address, unix_ms_now(), body);
    match Envelope::seal(&message, &core.key) {
        Ok(e) => Some(e.to_bytes()),
        Err(e) => {
            warn!(error = %e, "cannot seal a message");
            None
        }
    }
}

/// Handles one inbound job-protocol request and answers it; the jobs of a `job_offers` message
/// that are quick to run are then run on this same task.
pub(crate) async fn on_request(
    core: Arc<NodeCore>,
    peer: PeerId,
    envelope: Vec<u8>,
    reply: ReplyToken,
) {
    // One signature check (~75 µs) on this request's own task: handing it to the blocking pool
    // costs more in thread wake-ups than the check itself.
    let refused = || {
        Body::JobReply(JobReply::declined(
            JobId::default(),
            0,
            DeclineReason::InvalidOffer,
        ))
    };
    let mut taken = Vec::new();
    let answer = match core.validator.validate(&envelope, unix_ms_now()) {
        Ok(verified) if peer_address(&peer) != Some(verified.message.from) => {
            warn!(%peer, from = %verified.message.from, "request signed by another key than the peer's; refused");
            refused()
        }
        Ok(verified) => {
            let from = verified.message.from;
            match verified.message.body {
                Body::JobOffer(offer) => Body::JobReply(on_offer(&core, peer, from, offer).await),
                Body::JobOffers(batch) if batch.offers.len() > MAX_BATCH_ITEMS => {
                    warn!(%peer, offers = batch.offers.len(), max = MAX_BATCH_ITEMS, "job_offers message over the announced size; refused");
                    refused()
                }
                Body::JobOffers(batch) => {
                    let (replies, accepted) = on_offers(&core, peer, from, batch.offers).await;
                    taken = accepted;
                    Body::Replies(Replies { replies })
                }
                Body::Receipt(receipt) => Body::JobReply(
                    on_receipts(&core, from, vec![receipt])
                        .await
                        .pop()
                        .unwrap_or_else(|| {
                            JobReply::declined(JobId::default(), 0, DeclineReason::Busy)
                        }),
                ),
                Body::Receipts(batch) if batch.receipts.len() > MAX_BATCH_ITEMS => {
                    warn!(%peer, receipts = batch.receipts.len(), max = MAX_BATCH_ITEMS, "receipts message over the announced size; refused");
                    refused()
                }
                // One signature checked for all of them; each checked as a single one would
                // be, all stored in one write, answered in order.
                Body::Receipts(batch) => Body::Replies(Replies {
                    replies: on_receipts(&core, from, batch.receipts).await,
                }),
                other => {
                    warn!(%peer, kind = %other.kind(), "unexpected request kind");
                    refused()
                }
            }
        }
        Err(e) => {
            warn!(%peer, error = %e, "invalid request");
            refused()
        }
    };
    if let Some(bytes) = seal(&core, answer)
        && let Err(e) = core.mesh.respond(reply, bytes).await
    {
        warn!(%peer, error = %e, "cannot answer a request");
    }
    run_taken(&core, taken).await;
}

/// An offer this node decided to take, not yet durable.
pub(crate) struct Taken {
    record: JobRecord,
    spec: JobSpec,
    permit: OwnedSemaphorePermit,
}

/// Decides on one offer: the slot it would run in, or the answer that declines it. `seen`
/// holds the attempts taken earlier in the same message (not yet in the store).
async fn decide(
    core: &Arc<NodeCore>,
    peer: PeerId,
    from: pocmesh_protocol::Address,
    offer: JobOffer,
    seen: &HashSet<(JobId, u32)>,
) -> Result<Taken, JobReply> {
    let label = job_label(&offer.job, offer.attempt);
    let trusted = core.trust.is_trusted(from).await;
    let repeated = seen.contains(&(offer.job, offer.attempt))
        || core
            .store
            .knows_attempt(&offer.job, offer.attempt)
            .unwrap_or(true);
    let permit = core.slots.clone().try_acquire_owned().ok();
    let enabled = core.executors.enabled();
    let decision = evaluate(
        &offer,
        &IntakeState {
            enabled: &enabled,
            caps: &core.caps,
            free_slots: u32::from(permit.is_some()),
            shutting_down: core.is_shutting_down(),
            opted_out: core.consent.borrow().is_opted_out(),
            targets: &core.targets,
            trusted,
            repeated,
        },
    );
    let (Ok(()), Some(permit)) = (decision, permit) else {
        let reason = decision.err().unwrap_or(DeclineReason::Busy);
        NodeMetrics::count(&core.metrics.offers, reason_name(reason));
        // The target's refusal says which host and why; the reply can only say "refused".
        let target = matches!(
            reason,
            DeclineReason::TargetRefused | DeclineReason::InvalidOffer
        )
        .then(|| core.targets.check_params(&offer.spec.params).err())
        .flatten()
        .map(|refusal| refusal.to_string());
        info!(job = %label, dispatcher = %from, ?reason, target, "offer declined");
        return Err(JobReply::declined(offer.job, offer.attempt, reason));
    };
    let record = JobRecord {
        job: offer.job,
        attempt: offer.attempt,
        dispatcher: from,
        dispatcher_peer: peer.to_string(),
        job_type: offer.spec.params.job_type(),
        state: JobState::Running,
        accepted_ms: unix_ms_now(),
        finished_ms: None,
        result_hash: None,
        error: None,
    };
    Ok(Taken {
        record,
        spec: offer.spec,
        permit,
    })
}

/// Counts and logs a taken offer once it is durable.
fn accepted(core: &Arc<NodeCore>, taken: &Taken) {
    NodeMetrics::count(&core.metrics.offers, "accepted");
    // Per-job chatter at debug: a busy node accepts hundreds a second; "job finished" says it.
    debug!(job = %job_label(&taken.record.job, taken.record.attempt), dispatcher = %taken.record.dispatcher, kind = taken.record.job_type.as_str(), "job accepted");
}

async fn on_offer(
    core: &Arc<NodeCore>,
    peer: PeerId,
    from: pocmesh_protocol::Address,
    offer: JobOffer,
) -> JobReply {
    let (job, attempt) = (offer.job, offer.attempt);
    let taken = match decide(core, peer, from, offer, &HashSet::new()).await {
        Ok(taken) => taken,
        Err(reply) => return reply,
    };
    // Durable before the acceptance leaves: after a crash the node knows it owed this job.
    if let Err(e) = core.store.job_accepted(&taken.record).await {
        warn!(job = %job_label(&job, attempt), error = %e, "cannot record the job; declining");
        return JobReply::declined(job, attempt, DeclineReason::Busy);
    }
    remember_dispatcher(core, from, &peer.to_string());
    accepted(core, &taken);
    let core = core.clone();
    tokio::spawn(async move { run_taken(&core, vec![taken]).await });
    JobReply::accepted(job, attempt)
}

/// Decides on every offer of a `job_offers` message, makes the taken ones durable in one
/// write, and returns the answers in the offers' order with the jobs to run once answered.
async fn on_offers(
    core: &Arc<NodeCore>,
    peer: PeerId,
    from: pocmesh_protocol::Address,
    offers: Vec<JobOffer>,
) -> (Vec<JobReply>, Vec<Taken>) {
    let mut replies = Vec::with_capacity(offers.len());
    let mut taken: Vec<Taken> = Vec::new();
    let mut seen = HashSet::new();
    for offer in offers {
        let (job, attempt) = (offer.job, offer.attempt);
        match decide(core, peer, from, offer, &seen).await {
            Ok(t) => {
                seen.insert((job, attempt));
                replies.push(JobReply::accepted(job, attempt));
                taken.push(t);
            }
            Err(reply) => replies.push(reply),
        }
    }
    if taken.is_empty() {
        return (replies, taken);
    }
    let records: Vec<JobRecord> = taken.iter().map(|t| t.record.clone()).collect();
    // Durable before the acceptances leave, all in one write and one flush.
    if let Err(e) = core.store.jobs_accepted(&records).await {
        warn!(jobs = records.len(), error = %e, "cannot record the jobs; declining them");
        for reply in replies.iter_mut().filter(|r| r.accept) {
            *reply = JobReply::declined(reply.job, reply.attempt, DeclineReason::Busy);
        }
        return (replies, Vec::new());
    }
    remember_dispatcher(core, from, &peer.to_string());
    // A dispatcher this node works for (not any peer that sends the kind): it gets its results
    // back as `job_results`.
    if let Ok(mut batching) = core.batching.lock() {
        batching.insert(peer);
    }
    for t in &taken {
        accepted(core, t);
    }
    (replies, taken)
}

/// Runs taken jobs: the quick ones here, one after another, the others each on a blocking
/// worker; every result is stored for delivery.
async fn run_taken(core: &Arc<NodeCore>, taken: Vec<Taken>) {
    let mut done = Vec::new();
    for t in taken {
        core.metrics.jobs_running.inc();
        if Executors::is_quick(&t.spec) {
            let execution = core.executors.run(&t.spec);
            core.metrics.jobs_running.dec();
            done.push((t, execution));
            continue;
        }
        let core = core.clone();
        tokio::spawn(async move {
            let executors = core.executors.clone();
            let spec = t.spec.clone();
            let execution = tokio::task::spawn_blocking(move || executors.run(&spec))
                .await
                .unwrap_or_else(|e| {
                    Execution::failed(format!("the executor crashed: {e}"), Metering::default())
                });
            core.metrics.jobs_running.dec();
            finish(&core, t.record, execution).await;
            drop(t.permit);
        });
    }
    // Stored together in one write, then one wake-up: the delivery task sends them as one
    // message.
    if done.is_empty() {
        return;
    }
    let (rows, permits): (Vec<_>, Vec<_>) = done
        .into_iter()
        .map(|(t, execution)| ((t.record, execution), t.permit))
        .unzip();
    let any = store_results(core, rows);
    drop(permits);
    if any {
        core.results_ready.notify_one();
    }
}

fn reason_name(reason: DeclineReason) -> &'static str {
    match reason {
        DeclineReason::Busy => "busy",
        DeclineReason::UntrustedDispatcher => "untrusted_dispatcher",
        DeclineReason::JobTypeDisabled => "job_type_disabled",
        DeclineReason::LimitsTooHigh => "limits_too_high",
        DeclineReason::OptedOut => "opted_out",
        DeclineReason::ShuttingDown => "shutting_down",
        DeclineReason::InvalidOffer => "invalid_offer",
        DeclineReason::TargetRefused => "target_refused",
        DeclineReason::Other => "other",
    }
}

/// Stores the result of `record`'s attempt for delivery and wakes the delivery task.
pub(crate) async fn finish(core: &Arc<NodeCore>, record: JobRecord, execution: Execution) {
    if store_result(core, record, execution) {
        core.results_ready.notify_one();
    }
}

/// Stores the result of `record`'s attempt for delivery (signed when it is sent); whether it
/// was stored.
fn store_result(core: &Arc<NodeCore>, record: JobRecord, execution: Execution) -> bool {
    let finished = finished(record, &execution);
    let outcome = core.store.job_finished(&finished.0, &finished.1);
    stored(core, &finished.0, &execution, outcome)
}

/// Stores several results in one write; whether any was stored.
fn store_results(core: &Arc<NodeCore>, done: Vec<(JobRecord, Execution)>) -> bool {
    let rows: Vec<(JobRecord, PendingResult)> =
        done.iter().map(|(r, e)| finished(r.clone(), e)).collect();
    match core.store.jobs_finished(&rows) {
        Ok(outcomes) => outcomes.into_iter().zip(rows.iter().zip(&done)).fold(
            false,
            |any, (outcome, ((record, _), (_, execution)))| {
                stored(core, record, execution, outcome) || any
            },
        ),
        Err(e) => {
            warn!(jobs = rows.len(), error = %e, "cannot store the results");
            false
        }
    }
}

/// The finished record of `record`'s attempt and its result for the outbox.
fn finished(mut record: JobRecord, execution: &Execution) -> (JobRecord, PendingResult) {
    let result_hash = execution.result_hash();
    let result = JobResult {
        job: record.job,
        attempt: record.attempt,
        status: execution.status,
        output: Some(Bytes(execution.output.clone())),
        result_hash,
        metering: execution.metering,
        error: execution.error.clone(),
    };
    record.state = JobState::AwaitingAck {
        status: execution.status,
    };
    record.finished_ms = Some(unix_ms_now());
    record.result_hash = Some(result_hash);
    record.error = execution.error.clone();
    let pending = PendingResult {
        job: record.job,
        attempt: record.attempt,
        dispatcher_peer: record.dispatcher_peer.clone(),
        result,
        tries: 0,
        next_try_ms: 0,
    };
    (record, pending)
}

/// Counts and logs how storing a result went; whether it was stored.
fn stored(
    core: &NodeCore,
    record: &JobRecord,
    execution: &Execution,
    outcome: Result<(), StoreError>,
) -> bool {
    let label = job_label(&record.job, record.attempt);
    match outcome {
        Ok(()) => {
            let status = match execution.status {
                ResultStatus::Ok => "ok",
                ResultStatus::Failed => "failed",
            };
            NodeMetrics::count(&core.metrics.jobs_finished, status);
            // A busy node finishes hundreds of jobs a second: the good ones are summed up in
            // the activity line each minute, a failure is worth a line of its own.
            match execution.status {
                ResultStatus::Ok => debug!(
                    job = %label,
                    fuel = execution.metering.fuel,
                    ms = execution.metering.ms,
                    "job finished"
                ),
                ResultStatus::Failed => info!(
                    job = %label,
                    status,
                    ms = execution.metering.ms,
                    error = execution.error.as_deref().unwrap_or(""),
                    "job finished"
                ),
            }
            true
        }
        // Handed back while it ran (opt-out, shutdown): the failed result already stands.
        Err(StoreError::WrongState { .. }) => {
            info!(
                job = %label,
                "the attempt was handed back while it ran; its late result is dropped"
            );
            false
        }
        Err(e) => {
            warn!(job = %label, error = %e, "cannot store the result");
            false
        }
    }
}

/// Gives an attempt that cannot finish back to its dispatcher as a failed result.
pub(crate) async fn hand_back(core: &Arc<NodeCore>, record: &JobRecord, why: &str) {
    warn!(job = %job_label(&record.job, record.attempt), why, "handing the job back");
    finish(
        core,
        record.clone(),
        Execution::failed(why.to_string(), Metering::default()),
    )
    .await;
}

/// Whether `receipt` is for a job this node ran for `from`, and in which state it is stored:
/// the receipt ready to store, or the refusal to send.
fn receipt_arrival(
    core: &NodeCore,
    from: pocmesh_protocol::Address,
    receipt: Receipt,
    now: u64,
) -> Result<Arriving, JobReply> {
    // Only the dispatcher that ran the job may tell us about its credit.
    let attempt = core
        .store
        .attempt_with_result(&receipt.job, &receipt.result_hash)
        .ok()
        .flatten();
    let ours = attempt
        .and_then(|a| core.store.job(&receipt.job, a).ok().flatten())
        .is_some_and(|r| r.dispatcher == from);
    if !ours {
        warn!(job = %receipt.job, dispatcher = %from, "receipt for a job this node did not run for that dispatcher");
        return Err(JobReply::declined(
            receipt.job,
            0,
            DeclineReason::InvalidOffer,
        ));
    }
    // Stored first and acknowledged at once; the check against the chain comes after, in the
    // receipts task, so the dispatcher never waits on this node's RPC.
    let state = arrival_state(&receipt, core.wallet, core.receipt_checker.is_some(), now);
    Ok(Arriving {
        receipt,
        attempt: Some(attempt.unwrap_or(0)),
        state,
    })
}

/// Counts and logs a stored receipt (when it was new).
fn receipt_stored(core: &NodeCore, from: pocmesh_protocol::Address, a: &Arriving) {
    let receipt = &a.receipt;
    core.metrics.count_receipt(a.state.name());
    match &a.state {
        ReceiptState::Pending { .. } => {
            debug!(job = %receipt.job, units = receipt.units, batch = %receipt.batch, tx = %receipt.tx, "receipt stored; checking it on chain");
        }
        ReceiptState::Unchecked => {
            debug!(job = %receipt.job, units = receipt.units, batch = %receipt.batch, tx = %receipt.tx, "receipt stored unchecked");
        }
        ReceiptState::Failed { reason, .. } => {
            warn!(job = %receipt.job, units = receipt.units, batch = %receipt.batch, dispatcher = %from, %reason, "receipt refused; its units do not count");
        }
        ReceiptState::Verified { .. } => {}
    }
}

/// Stores the receipts of one `receipt` or `receipts` message that are this node's, in one
/// write and one flush, and answers each in order.
async fn on_receipts(
    core: &NodeCore,
    from: pocmesh_protocol::Address,
    receipts: Vec<Receipt>,
) -> Vec<JobReply> {
    let now = unix_ms_now();
    let mut replies = Vec::with_capacity(receipts.len());
    let mut arriving = Vec::new();
    for receipt in receipts {
        match receipt_arrival(core, from, receipt, now) {
            Ok(a) => {
                replies.push(JobReply::accepted(a.receipt.job, a.attempt.unwrap_or(0)));
                arriving.push(a);
            }
            Err(refusal) => replies.push(refusal),
        }
    }
    if arriving.is_empty() {
        return replies;
    }
    match core.store.receipts_durable(&arriving, now).await {
        Ok(new) => {
            let mut pending = false;
            let (mut unchecked, mut unchecked_units) = (0usize, 0u64);
            for (a, new) in arriving.iter().zip(new) {
                if new {
                    receipt_stored(core, from, a);
                    pending |= matches!(a.state, ReceiptState::Pending { .. });
                    if matches!(a.state, ReceiptState::Unchecked) {
                        unchecked += 1;
                        unchecked_units = unchecked_units.saturating_add(a.receipt.units);
                    }
                }
            }
            if unchecked > 0 {
                info!(
                    receipts = unchecked,
                    units = unchecked_units,
                    "receipts stored unchecked (no --rpc/--contract): their units are unconfirmed"
                );
            }
            if let Ok(totals) = core.store.totals() {
                core.metrics.set_receipt_totals(&totals);
            }
            if pending {
                core.receipts_ready.notify_one();
            }
        }
        Err(e) => {
            warn!(receipts = arriving.len(), error = %e, "cannot store the receipts");
            for reply in replies.iter_mut().filter(|r| r.accept) {
                *reply = JobReply::declined(reply.job, reply.attempt, DeclineReason::Busy);
            }
        }
    }
    replies
}
