//! Offers in, results out: validates job-protocol requests, decides on offers
//! ([`crate::intake`]), runs accepted jobs on blocking workers, signs their results and stores
//! them durably for delivery; stores receipts (checked later by [`crate::receipts`]).

use std::sync::Arc;

use libp2p::PeerId;
use pocmesh_mesh::{ReplyToken, identity::peer_address};
use pocmesh_protocol::{
    Body, Bytes, DeclineReason, Envelope, JobId, JobOffer, JobReply, JobResult, MAX_BATCH_ITEMS,
    Message, Metering, Receipt, Replies, ResultStatus, unix_ms_now,
};
use tracing::{debug, info, warn};

use crate::daemon::{NodeCore, job_label, remember_dispatcher};
use crate::intake::{IntakeState, evaluate};
use crate::receipts::{ReceiptState, arrival_state};
use crate::status::NodeMetrics;
use crate::store::{JobRecord, JobState, PendingResult, StoreError};
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

/// Handles one inbound job-protocol request and answers it.
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
    let answer = match core.validator.validate(&envelope, unix_ms_now()) {
        Ok(verified) if peer_address(&peer) != Some(verified.message.from) => {
            warn!(%peer, from = %verified.message.from, "request signed by another key than the peer's; refused");
            refused()
        }
        Ok(verified) => {
            let from = verified.message.from;
            match verified.message.body {
                Body::JobOffer(offer) => Body::JobReply(on_offer(&core, peer, from, offer).await),
                Body::Receipt(receipt) => Body::JobReply(on_receipt(&core, from, receipt).await),
                Body::Receipts(batch) if batch.receipts.len() > MAX_BATCH_ITEMS => {
                    warn!(%peer, receipts = batch.receipts.len(), max = MAX_BATCH_ITEMS, "receipts message over the announced size; refused");
                    refused()
                }
                // One signature checked for all of them; each stored as a single one would be
                // (concurrently, so their flushes are shared), answered in order.
                Body::Receipts(batch) => {
                    let n = batch.receipts.len();
                    let mut tasks = tokio::task::JoinSet::new();
                    for (i, r) in batch.receipts.into_iter().enumerate() {
                        let core = core.clone();
                        tasks.spawn(async move { (i, on_receipt(&core, from, r).await) });
                    }
                    let mut replies =
                        vec![JobReply::declined(JobId::default(), 0, DeclineReason::Busy); n];
                    while let Some(done) = tasks.join_next().await {
                        if let Ok((i, reply)) = done {
                            replies[i] = reply;
                        }
                    }
                    Body::Replies(Replies { replies })
                }
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
}

async fn on_offer(
    core: &Arc<NodeCore>,
    peer: PeerId,
    from: pocmesh_protocol::Address,
    offer: JobOffer,
) -> JobReply {
    let label = job_label(&offer.job, offer.attempt);
    let trusted = core.trust.is_trusted(from).await;
    let repeated = core
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
        return JobReply::declined(offer.job, offer.attempt, reason);
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
    // Durable before the acceptance leaves: after a crash the node knows it owed this job.
    if let Err(e) = core.store.job_accepted(&record).await {
        warn!(job = %label, error = %e, "cannot record the job; declining");
        return JobReply::declined(offer.job, offer.attempt, DeclineReason::Busy);
    }
    remember_dispatcher(core, from, &peer.to_string());
    NodeMetrics::count(&core.metrics.offers, "accepted");
    // Per-job chatter at debug: a busy node accepts hundreds a second; "job finished" says it.
    debug!(job = %label, dispatcher = %from, kind = offer.spec.params.job_type().as_str(), "job accepted");
    let core = core.clone();
    tokio::spawn(async move {
        core.metrics.jobs_running.inc();
        let executors = core.executors.clone();
        let spec = offer.spec;
        let execution = if Executors::is_quick(&spec) {
            executors.run(&spec)
        } else {
            tokio::task::spawn_blocking(move || executors.run(&spec))
                .await
                .unwrap_or_else(|e| {
                    Execution::failed(format!("the executor crashed: {e}"), Metering::default())
                })
        };
        core.metrics.jobs_running.dec();
        finish(&core, record, execution).await;
        drop(permit);
    });
    JobReply::accepted(offer.job, offer.attempt)
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

/// Signs the result of `record`'s attempt and stores it for delivery.
pub(crate) async fn finish(core: &Arc<NodeCore>, mut record: JobRecord, execution: Execution) {
    let label = job_label(&record.job, record.attempt);
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
    match core.store.job_finished(&record, &pending) {
        Ok(()) => {
            let status = match execution.status {
                ResultStatus::Ok => "ok",
                ResultStatus::Failed => "failed",
            };
            NodeMetrics::count(&core.metrics.jobs_finished, status);
            info!(
                job = %label,
                status,
                fuel = execution.metering.fuel,
                ms = execution.metering.ms,
                error = execution.error.as_deref().unwrap_or(""),
                "job finished"
            );
            core.results_ready.notify_one();
        }
        // Handed back while it ran (opt-out, shutdown): the failed result already stands.
        Err(StoreError::WrongState { .. }) => info!(
            job = %label,
            "the attempt was handed back while it ran; its late result is dropped"
        ),
        Err(e) => warn!(job = %label, error = %e, "cannot store the result"),
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

async fn on_receipt(
    core: &NodeCore,
    from: pocmesh_protocol::Address,
    receipt: Receipt,
) -> JobReply {
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
        return JobReply::declined(receipt.job, 0, DeclineReason::InvalidOffer);
    }
    let attempt = attempt.unwrap_or(0);
    let now = unix_ms_now();
    // Stored first and acknowledged at once; the check against the chain comes after, in the
    // receipts task, so the dispatcher never waits on this node's RPC.
    let state = arrival_state(&receipt, core.wallet, core.receipt_checker.is_some(), now);
    match core
        .store
        .receipt_durable(&receipt, Some(attempt), state.clone(), now)
        .await
    {
        Ok(true) => {
            core.metrics.count_receipt(state.name());
            if let Ok(totals) = core.store.totals() {
                core.metrics.set_receipt_totals(&totals);
            }
            match &state {
                ReceiptState::Pending { .. } => {
                    debug!(job = %receipt.job, units = receipt.units, batch = %receipt.batch, tx = %receipt.tx, "receipt stored; checking it on chain");
                    core.receipts_ready.notify_one();
                }
                ReceiptState::Unchecked => {
                    info!(job = %receipt.job, units = receipt.units, batch = %receipt.batch, tx = %receipt.tx, "receipt stored unchecked (no --rpc/--contract): its units are unconfirmed");
                }
                ReceiptState::Failed { reason, .. } => {
                    warn!(job = %receipt.job, units = receipt.units, batch = %receipt.batch, dispatcher = %from, %reason, "receipt refused; its units do not count");
                }
                ReceiptState::Verified { .. } => {}
            }
        }
        Ok(false) => {}
        Err(e) => {
            warn!(job = %receipt.job, error = %e, "cannot store the receipt");
            return JobReply::declined(receipt.job, attempt, DeclineReason::Busy);
        }
    }
    JobReply::accepted(receipt.job, attempt)
}
