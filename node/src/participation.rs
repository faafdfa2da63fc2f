//! Opting out and back in while the node runs: the task that carries out the control requests
//! of [`crate::control`], one at a time.
//!
//! Opting out, in this order: a sequence number from the durable counter, the opted-out state
//! written to the data directory (so a restart stays out), the in-memory state switched (offers
//! are declined with `opted_out` from here, heartbeats stop), a signed `opt_out` published on
//! the heartbeat topic (dispatchers drop the node on an `opt_out` whose seq is at least its last
//! heartbeat's), and running jobs handed back as failed, as at shutdown. Opting in accepts the
//! current consent text again and lets heartbeats resume, with higher sequence numbers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use pocmesh_protocol::unix_ms_now;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::consent::{CONSENT_VERSION, ConsentError, ConsentState, Participation};
use crate::control::{ControlCommand, ControlFailure, ControlRequest, ParticipationReply};
use crate::daemon::NodeCore;
use crate::store::JobState;
use crate::{heartbeat, jobs};

/// What a handed-back job's failed result says.
pub(crate) const OPTED_OUT: &str = "opted out";

/// Carries out control requests until `stop` or until the channel closes.
pub(crate) async fn run(
    core: Arc<NodeCore>,
    mut commands: mpsc::Receiver<ControlCommand>,
    stop: CancellationToken,
) {
    loop {
        let command = tokio::select! {
            _ = stop.cancelled() => return,
            command = commands.recv() => match command {
                Some(c) => c,
                None => return,
            },
        };
        let answer = match command.request {
            ControlRequest::OptOut => opt_out(&core).await,
            ControlRequest::OptIn { policy } => opt_in(&core, policy).await,
        };
        // The requester may have given up waiting; the change stands either way.
        let _ = command.reply.send(answer);
    }
}

fn reply(state: &ConsentState, changed: bool) -> ParticipationReply {
    let (since_ms, seq) = match state.participation {
        Participation::OptedOut { since_ms, seq } => (Some(since_ms), Some(seq)),
        Participation::Active => (None, None),
    };
    ParticipationReply {
        changed,
        opted_out: since_ms.is_some(),
        since_ms,
        seq,
        announced: false,
        handed_back: 0,
        policy: state.heartbeat_policy(),
        policy_version: state.heartbeat_policy().map(|_| CONSENT_VERSION),
    }
}

async fn save(core: &NodeCore, state: ConsentState) -> Result<(), ControlFailure> {
    let dir = core.config.data_dir.clone();
    tokio::task::spawn_blocking(move || state.save(&dir))
        .await
        .map_err(|e| ControlFailure::Failed(format!("the consent writer failed: {e}")))?
        .map_err(|e| ControlFailure::Failed(e.to_string()))
}

async fn opt_out(core: &Arc<NodeCore>) -> Result<ParticipationReply, ControlFailure> {
    // Held across seq, state and publication: no heartbeat can slip in between with a
    // sequence number below the opt_out's, or after it.
    let publishing = core.publishing.lock().await;
    let current = *core.consent.borrow();
    if current.is_opted_out() {
        return Ok(reply(&current, false));
    }
    let store = core.store.clone();
    let seq = tokio::task::spawn_blocking(move || store.next_seq())
        .await
        .map_err(|e| ControlFailure::Failed(format!("the store worker failed: {e}")))?
        .map_err(|e| ControlFailure::Failed(e.to_string()))?;
    let mut next = current;
    next.opt_out(unix_ms_now(), seq)
        .map_err(|e| ControlFailure::Failed(e.to_string()))?;
    save(core, next).await?;
    core.consent.send_replace(next);
    let announced = heartbeat::publish_opt_out(core, seq).await;
    // Unheard (no peer yet): the heartbeat task sends one at its next beat.
    core.opt_out_unannounced.store(!announced, Ordering::SeqCst);
    drop(publishing);
    let running = core
        .store
        .jobs_in(|s| matches!(s, JobState::Running))
        .map_err(|e| ControlFailure::Failed(e.to_string()))?;
    for record in &running {
        jobs::hand_back(core, record, OPTED_OUT).await;
    }
    info!(
        seq,
        announced,
        handed_back = running.len(),
        "opted out: no more heartbeats, offers declined until `pocmesh node opt-in`"
    );
    Ok(ParticipationReply {
        announced,
        handed_back: running.len() as u64,
        ..reply(&next, true)
    })
}

async fn opt_in(
    core: &Arc<NodeCore>,
    policy: pocmesh_protocol::Hash32,
) -> Result<ParticipationReply, ControlFailure> {
    let _publishing = core.publishing.lock().await;
    let current = *core.consent.borrow();
    let mut next = current;
    match next.opt_in(policy, unix_ms_now()) {
        Ok(()) => {}
        Err(ConsentError::NotOptedOut) => return Ok(reply(&current, false)),
        Err(e @ ConsentError::WrongHash { .. }) => {
            warn!(%policy, "opt-in refused: not the hash of this node's consent text");
            return Err(ControlFailure::Refused(e.to_string()));
        }
        Err(e) => return Err(ControlFailure::Failed(e.to_string())),
    }
    save(core, next).await?;
    core.opt_out_unannounced.store(false, Ordering::SeqCst);
    // The heartbeat task watches this and beats at once.
    core.consent.send_replace(next);
    info!(%policy, version = CONSENT_VERSION, "opted in: heartbeats resume");
    Ok(reply(&next, true))
}
