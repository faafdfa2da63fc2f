//! Result delivery: every stored result is sent to its dispatcher until the dispatcher answers
//! with a signed reply, with exponential backoff between tries, across restarts (the results
//! live in the store's outbox).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use pocmesh_mesh::identity::peer_address;
use pocmesh_protocol::{
    BATCH_PAYLOAD_BYTES, Body, JobId, JobResults, MAX_BATCH_ITEMS, unix_ms_now,
};
use rand::Rng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::daemon::{NodeCore, job_label};
use crate::store::PendingResult;

/// Deliveries in flight at once.
const DELIVERY_CONCURRENCY: usize = 32;
/// How often the outbox is looked at when nothing wakes the task.
const POLL: Duration = Duration::from_millis(500);

/// The delay before try number `tries + 1`: base × 2^tries, capped, with ±25 % jitter.
pub fn backoff(tries: u32, base_ms: u64, max_ms: u64, rng: &mut impl Rng) -> u64 {
    let exp = base_ms.saturating_mul(1u64 << tries.min(20)).min(max_ms);
    let spread = exp / 4;
    rng.gen_range(exp - spread..=exp + spread)
}

/// Delivers results until `stop`.
pub(crate) async fn run(core: Arc<NodeCore>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = core.results_ready.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        // A dispatcher that never answers holds a try for the whole request timeout (30 s);
        // stopping does not wait for it: the result stays in the outbox for the next start.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = deliver_due(&core, false) => {}
        }
    }
}

/// Sends every result that is due (all of them when `all`), concurrently, and waits for the
/// round to finish. Results for a dispatcher that batches its offers travel together, up to
/// [`MAX_BATCH_ITEMS`] in one `job_results` message.
pub(crate) async fn deliver_due(core: &Arc<NodeCore>, all: bool) {
    let pending = match core.store.pending_results() {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "cannot read the result outbox");
            return;
        }
    };
    let now = unix_ms_now();
    let batching = core.batching.lock().map(|b| b.clone()).unwrap_or_default();
    let mut singles = Vec::new();
    let mut groups: HashMap<PeerId, Vec<PendingResult>> = HashMap::new();
    for p in pending {
        if !all && p.next_try_ms > now {
            continue;
        }
        if let Ok(mut set) = core.delivering.lock()
            && !set.insert((p.job, p.attempt))
        {
            continue;
        }
        match p.dispatcher_peer.parse::<PeerId>() {
            Ok(peer) if batching.contains(&peer) => groups.entry(peer).or_default().push(p),
            _ => singles.push(p),
        }
    }
    let limit = Arc::new(Semaphore::new(DELIVERY_CONCURRENCY));
    let mut tasks = Vec::new();
    let mut start = |core: &Arc<NodeCore>, peer: Option<PeerId>, chunk: Vec<PendingResult>| {
        let (core, limit) = (core.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            let keys: Vec<(JobId, u32)> = chunk.iter().map(|p| (p.job, p.attempt)).collect();
            match peer {
                Some(peer) => deliver_batch(&core, peer, chunk).await,
                None => {
                    for p in chunk {
                        deliver(&core, p).await;
                    }
                }
            }
            if let Ok(mut set) = core.delivering.lock() {
                for key in &keys {
                    set.remove(key);
                }
            }
        }));
    };
    for p in singles {
        start(core, None, vec![p]);
    }
    for (peer, results) in groups {
        for chunk in chunks(results) {
            start(core, Some(peer), chunk);
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Splits results into messages of at most [`MAX_BATCH_ITEMS`] and about
/// [`BATCH_PAYLOAD_BYTES`] each (a result larger than that travels alone).
fn chunks(results: Vec<PendingResult>) -> Vec<Vec<PendingResult>> {
    let mut out: Vec<Vec<PendingResult>> = Vec::new();
    let mut bytes = 0;
    for p in results {
        let size = p.result.payload_bytes();
        match out.last_mut() {
            Some(last) if last.len() < MAX_BATCH_ITEMS && bytes + size <= BATCH_PAYLOAD_BYTES => {
                bytes += size;
                last.push(p);
            }
            _ => {
                bytes = size;
                out.push(vec![p]);
            }
        }
    }
    out
}

/// Sends `chunk` to `peer` as one `job_results` message; each answer settles its own result.
async fn deliver_batch(core: &Arc<NodeCore>, peer: PeerId, chunk: Vec<PendingResult>) {
    let body = Body::JobResults(JobResults {
        results: chunk.iter().map(|p| p.result.clone()).collect(),
    });
    let Some(envelope) = crate::jobs::seal(core, body) else {
        return;
    };
    let answers = match core.mesh.request(peer, None, envelope).await {
        Ok(bytes) => check_replies(core, &chunk, peer, &bytes),
        Err(e) => Err(e.to_string()),
    };
    let answers = match answers {
        Ok(a) => a,
        Err(reason) => {
            for p in chunk {
                retry(core, p, &reason);
            }
            return;
        }
    };
    let mut settled = Vec::new();
    for (p, answer) in chunk.into_iter().zip(answers) {
        match answer {
            Some(accepted) => {
                if !accepted {
                    warn!(job = %job_label(&p.job, p.attempt), "the dispatcher refused the result; it will not be sent again");
                } else if p.tries > 0 {
                    info!(job = %job_label(&p.job, p.attempt), tries = p.tries + 1, "result delivered");
                }
                settled.push((p.job, p.attempt));
            }
            None => retry(core, p, "the dispatcher answered without taking the result"),
        }
    }
    if settled.is_empty() {
        return;
    }
    match core.store.results_acknowledged(&settled) {
        Ok(()) => {
            core.metrics.results_delivered.inc_by(settled.len() as u64);
            debug!(results = settled.len(), %peer, "results delivered");
        }
        Err(e) => warn!(results = settled.len(), error = %e, "cannot record the acknowledgements"),
    }
}

/// The body of the dispatcher's answer, checked: a valid envelope signed by `peer`'s key.
fn signed_answer(core: &NodeCore, peer: PeerId, bytes: &[u8]) -> Result<Body, String> {
    let verified = core
        .validator
        .validate(bytes, unix_ms_now())
        .map_err(|e| format!("invalid reply: {e}"))?;
    if peer_address(&peer) != Some(verified.message.from) {
        return Err("reply not signed by the dispatcher's key".into());
    }
    Ok(verified.message.body)
}

/// The dispatcher's signed `replies` to a `job_results` message: per result, `Some(true)`
/// acknowledged, `Some(false)` refused for good, `None` not answered (try again). `Err` when
/// the answer as a whole is not one (try them all again; a dispatcher that refuses the kind
/// gets single results from now on).
fn check_replies(
    core: &NodeCore,
    chunk: &[PendingResult],
    peer: PeerId,
    bytes: &[u8],
) -> Result<Vec<Option<bool>>, String> {
    match signed_answer(core, peer, bytes)? {
        Body::Replies(r) if r.replies.len() == chunk.len() => Ok(chunk
            .iter()
            .zip(r.replies)
            .map(|(p, r)| (r.job == p.job && r.attempt == p.attempt).then_some(r.accept))
            .collect()),
        other => {
            if let Ok(mut batching) = core.batching.lock() {
                batching.remove(&peer);
            }
            Err(format!(
                "the dispatcher did not answer a job_results message ({}); sending singly",
                other.kind()
            ))
        }
    }
}

/// Schedules the next try of a result that was not delivered.
fn retry(core: &NodeCore, mut p: PendingResult, reason: &str) {
    let settings = &core.config.delivery;
    let wait = backoff(
        p.tries,
        settings.retry_base_ms,
        settings.retry_max_ms,
        &mut rand::thread_rng(),
    );
    p.tries += 1;
    p.next_try_ms = unix_ms_now() + wait;
    core.metrics.delivery_retries.inc();
    warn!(job = %job_label(&p.job, p.attempt), tries = p.tries, retry_in_ms = wait, %reason, "result not delivered; will retry");
    if let Err(e) = core.store.reschedule(&p) {
        warn!(job = %job_label(&p.job, p.attempt), error = %e, "cannot reschedule the delivery");
    }
}

async fn deliver(core: &Arc<NodeCore>, p: PendingResult) {
    let label = job_label(&p.job, p.attempt);
    let Ok(peer) = p.dispatcher_peer.parse::<PeerId>() else {
        warn!(job = %label, peer = %p.dispatcher_peer, "stored dispatcher id is unreadable; dropping the result");
        let _ = core.store.result_acknowledged(&p.job, p.attempt);
        return;
    };
    let Some(envelope) = crate::jobs::seal(core, Body::JobResult(p.result.clone())) else {
        return;
    };
    let outcome = match core.mesh.request(peer, None, envelope).await {
        Ok(bytes) => check_reply(core, &p, peer, &bytes),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(accepted) => {
            if let Err(e) = core.store.result_acknowledged(&p.job, p.attempt) {
                warn!(job = %label, error = %e, "cannot record the acknowledgement");
                return;
            }
            core.metrics.results_delivered.inc();
            if accepted && p.tries == 0 {
                debug!(job = %label, "result delivered");
            } else if accepted {
                info!(job = %label, tries = p.tries + 1, "result delivered");
            } else {
                warn!(job = %label, "the dispatcher refused the result; it will not be sent again");
            }
        }
        Err(reason) => retry(core, p, &reason),
    }
}

/// The dispatcher's signed answer: `Ok(true)` acknowledged, `Ok(false)` refused for good,
/// `Err` not a valid answer (try again).
fn check_reply(
    core: &NodeCore,
    p: &PendingResult,
    peer: PeerId,
    bytes: &[u8],
) -> Result<bool, String> {
    match signed_answer(core, peer, bytes)? {
        Body::JobReply(r) if r.job == p.job && r.attempt == p.attempt => Ok(r.accept),
        // A refusal that names no job (the envelope was unreadable to the dispatcher, e.g. a
        // clock problem) is not final: the result is kept and sent again.
        Body::JobReply(r) => Err(format!(
            "the dispatcher answered without taking the result (reason: {:?})",
            r.reason
        )),
        _ => Err("reply does not answer this result".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn pending(i: u32, output: usize) -> PendingResult {
        let job = JobId::from([i as u8; 32]);
        PendingResult {
            job,
            attempt: i,
            dispatcher_peer: "peer".into(),
            result: pocmesh_protocol::JobResult {
                job,
                attempt: i,
                status: pocmesh_protocol::ResultStatus::Ok,
                output: Some(pocmesh_protocol::Bytes(vec![0; output])),
                result_hash: Default::default(),
                metering: Default::default(),
                error: None,
            },
            tries: 0,
            next_try_ms: 0,
        }
    }

    #[test]
    fn results_are_cut_into_messages_by_count_and_by_size() {
        let sizes = |c: Vec<Vec<PendingResult>>| c.iter().map(Vec::len).collect::<Vec<_>>();
        let many: Vec<_> = (0..150).map(|i| pending(i, 32)).collect();
        assert_eq!(sizes(chunks(many)), vec![64, 64, 22]);
        // Large outputs: about a megabyte a message; one over it travels alone.
        let big: Vec<_> = (0..5)
            .map(|i| {
                pending(
                    i,
                    if i == 2 {
                        BATCH_PAYLOAD_BYTES + 1
                    } else {
                        400_000
                    },
                )
            })
            .collect();
        assert_eq!(sizes(chunks(big)), vec![2, 1, 2]);
        assert!(chunks(Vec::new()).is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let b0 = backoff(0, 1_000, 60_000, &mut rng);
        assert!((750..=1_250).contains(&b0), "{b0}");
        let b3 = backoff(3, 1_000, 60_000, &mut rng);
        assert!((6_000..=10_000).contains(&b3), "{b3}");
        let b30 = backoff(30, 1_000, 60_000, &mut rng);
        assert!((45_000..=75_000).contains(&b30), "{b30}");
    }
}
