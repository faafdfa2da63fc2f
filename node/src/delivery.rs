//! Result delivery: every stored result is sent to its dispatcher until the dispatcher answers
//! with a signed reply, with exponential backoff between tries, across restarts (the results
//! live in the store's outbox).

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use pocmesh_mesh::identity::peer_address;
use pocmesh_protocol::{Body, unix_ms_now};
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
/// round to finish.
pub(crate) async fn deliver_due(core: &Arc<NodeCore>, all: bool) {
    let pending = match core.store.pending_results() {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "cannot read the result outbox");
            return;
        }
    };
    let now = unix_ms_now();
    let limit = Arc::new(Semaphore::new(DELIVERY_CONCURRENCY));
    let mut tasks = Vec::new();
    for p in pending {
        if !all && p.next_try_ms > now {
            continue;
        }
        let key = (p.job, p.attempt);
        if let Ok(mut set) = core.delivering.lock()
            && !set.insert(key)
        {
            continue;
        }
        let core = core.clone();
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            deliver(&core, p).await;
            if let Ok(mut set) = core.delivering.lock() {
                set.remove(&key);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn deliver(core: &Arc<NodeCore>, mut p: PendingResult) {
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
        Err(reason) => {
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
            warn!(job = %label, tries = p.tries, retry_in_ms = wait, %reason, "result not delivered; will retry");
            if let Err(e) = core.store.reschedule(&p) {
                warn!(job = %label, error = %e, "cannot reschedule the delivery");
            }
        }
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
    let verified = core
        .validator
        .validate(bytes, unix_ms_now())
        .map_err(|e| format!("invalid reply: {e}"))?;
    if peer_address(&peer) != Some(verified.message.from) {
        return Err("reply not signed by the dispatcher's key".into());
    }
    match verified.message.body {
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
