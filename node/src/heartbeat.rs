//! The heartbeat task: a signed `heartbeat` on the gossip topic every interval, jittered so a
//! mesh of many nodes spreads its load (DESIGN.md), with a sequence number made durable before
//! it is published and the hash of the consent text the volunteer accepted as its `policy`.
//!
//! While the volunteer is opted out no heartbeat goes out (a newer one would re-join); an
//! `opt_out` no peer has heard yet (the node started opted out, or had no peer at the time) goes
//! out at the next beat instead, once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pocmesh_protocol::{Body, Capabilities, Heartbeat, OptOut, Topic};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::daemon::NodeCore;
use crate::jobs::seal;

/// The delay before the next beat: `interval` ± `jitter_percent`.
pub fn next_delay(interval_ms: u64, jitter_percent: u8, rng: &mut impl Rng) -> Duration {
    let spread = interval_ms * u64::from(jitter_percent) / 100;
    let ms = if spread == 0 {
        interval_ms
    } else {
        rng.gen_range(interval_ms - spread..=interval_ms + spread)
    };
    Duration::from_millis(ms.max(1))
}

/// Publishes heartbeats until `stop`.
pub(crate) async fn run(core: Arc<NodeCore>, stop: CancellationToken) {
    let settings = core.config.heartbeat.clone();
    let mut consent = core.consent.subscribe();
    // A first beat soon after start (once a peer is there), then jittered intervals.
    let mut delay = next_delay(settings.interval_ms / 5, 50, &mut rand::thread_rng());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
            _ = core.beat_now.notified() => {
                // Give the new connection a moment to exchange subscriptions.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // An opt-in beats at once (an opt-out was announced by the participation task).
            changed = consent.changed() => {
                if changed.is_err() {
                    return;
                }
                consent.borrow_and_update();
            }
        }
        if core.opt_out_unannounced.load(Ordering::SeqCst) {
            announce_opt_out(&core).await;
        } else {
            beat(&core).await;
        }
        delay = next_delay(
            settings.interval_ms,
            settings.jitter_percent,
            &mut rand::thread_rng(),
        );
    }
}

/// Publishes a signed `opt_out` with sequence number `seq` (already durable); whether a peer
/// took it.
pub(crate) async fn publish_opt_out(core: &Arc<NodeCore>, seq: u64) -> bool {
    let Some(bytes) = seal(
        core,
        Body::OptOut(OptOut {
            wallet: core.wallet,
            seq,
        }),
    ) else {
        return false;
    };
    match core.mesh.publish(Topic::Heartbeat, bytes).await {
        Ok(()) => {
            info!(seq, "opt_out published");
            true
        }
        Err(pocmesh_mesh::MeshError::Publish { no_peers: true, .. }) => {
            debug!(seq, "no peer subscribed yet; opt_out not published");
            false
        }
        Err(e) => {
            warn!(seq, error = %e, "opt_out not published");
            false
        }
    }
}

/// An `opt_out` no peer has heard yet (the node started opted out, or had no peer when the
/// volunteer opted out), with a fresh sequence number; once one goes out, no more.
async fn announce_opt_out(core: &Arc<NodeCore>) {
    let _publishing = core.publishing.lock().await;
    if !core.consent.borrow().is_opted_out() {
        core.opt_out_unannounced.store(false, Ordering::SeqCst);
        return;
    }
    if let Some(seq) = next_seq(core).await
        && publish_opt_out(core, seq).await
    {
        core.opt_out_unannounced.store(false, Ordering::SeqCst);
    }
}

async fn next_seq(core: &Arc<NodeCore>) -> Option<u64> {
    let store = core.store.clone();
    match tokio::task::spawn_blocking(move || store.next_seq()).await {
        Ok(Ok(seq)) => Some(seq),
        Ok(Err(e)) => {
            warn!(error = %e, "cannot persist the heartbeat sequence; skipping a beat");
            None
        }
        Err(e) => {
            warn!(error = %e, "heartbeat worker failed");
            None
        }
    }
}

async fn beat(core: &Arc<NodeCore>) {
    // Held from the sequence number to the publication, so an opt-out in between cannot be
    // followed by a heartbeat that re-joins.
    let _publishing = core.publishing.lock().await;
    let Some(policy) = core.consent.borrow().heartbeat_policy() else {
        return;
    };
    let Some(seq) = next_seq(core).await else {
        return;
    };
    let free = if core.is_shutting_down() {
        0
    } else {
        core.slots.available_permits() as u32
    };
    let heartbeat = Heartbeat {
        seq,
        wallet: core.wallet,
        peer: core.mesh.local_peer().to_string(),
        caps: Capabilities {
            cores: core.machine.cores,
            mem_mb: core
                .machine
                .mem_mb
                .min(core.caps.max_mem_mb * u64::from(core.slots_total)),
            gpu: core.machine.gpu.clone(),
            job_types: core.executors.enabled(),
            slots_total: core.slots_total,
            slots_free: free,
            receipts_batch: pocmesh_protocol::MAX_BATCH_ITEMS as u32,
            jobs_batch: pocmesh_protocol::MAX_BATCH_ITEMS as u32,
        },
        policy,
        sw: concat!("pocmesh/", env!("CARGO_PKG_VERSION")).to_string(),
    };
    let Some(bytes) = seal(core, Body::Heartbeat(heartbeat)) else {
        return;
    };
    match core.mesh.publish(Topic::Heartbeat, bytes).await {
        Ok(()) => {
            core.metrics.heartbeats_sent.inc();
            debug!(seq, "heartbeat sent");
        }
        Err(pocmesh_mesh::MeshError::Publish { no_peers: true, .. }) => {
            debug!(seq, "no peer subscribed yet; heartbeat skipped");
        }
        Err(e) => warn!(seq, error = %e, "heartbeat not sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delays_stay_within_the_jitter_and_spread_out() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let delays: Vec<u64> = (0..200)
            .map(|_| next_delay(5_000, 20, &mut rng).as_millis() as u64)
            .collect();
        assert!(
            delays.iter().all(|d| (4_000..=6_000).contains(d)),
            "{delays:?}"
        );
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "jitter spreads beats");
        assert_eq!(next_delay(5_000, 0, &mut rng), Duration::from_millis(5_000));
    }
}
