//! Assignment: picks nodes for runnable jobs (through the pure [`crate::scheduler`]), records
//! the attempts, answers to offers, and takes leases back when they run out or the node goes
//! offline.

use pocmesh_protocol::{Address, JobId, JobOffer};
use tracing::{debug, info, warn};

use crate::engine::Outgoing;
use crate::engine::{Engine, OfferAnswer};
use crate::lifecycle::{Attempt, AttemptState, JobState};
use crate::policy::{Delivery, Member};
use crate::registry::NodeView;
use crate::scheduler::pick;

/// An offer not answered after this long is treated as unanswered (the request itself times
/// out after 30 s).
const OFFER_TIMEOUT_MS: u64 = 40_000;

/// A per-job number that spreads equal nodes differently for different jobs.
fn tiebreak(id: &JobId) -> u64 {
    let b = id.as_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl Engine {
    /// How long a node holds an accepted attempt of a job with these limits.
    pub(crate) fn lease_ms(&self, limits: &pocmesh_protocol::Limits) -> u64 {
        limits.max_ms + self.config.jobs.lease_margin_ms
    }

    /// After a restart: attempts whose offer answer was lost are assumed accepted (their lease
    /// runs from the offer), and the job is queued for whatever it still needs.
    pub(crate) fn recover_open_job(&mut self, id: JobId) {
        let margin = self.config.jobs.lease_margin_ms;
        if let Some(job) = self.jobs.get_mut(&id) {
            // Offers since the job's last write were lost with their numbers: at most one
            // per node the job needs (an attempt that ends writes the job at once).
            let last = job.attempts.iter().map(|a| a.n).max().unwrap_or(0);
            self.attempt_floor
                .insert(id, last.saturating_add(job.redundancy.max(1)));
            let lease = job.spec.limits.max_ms + margin;
            for a in &mut job.attempts {
                if a.state == AttemptState::Offered {
                    a.state = AttemptState::Running {
                        lease_until_ms: a.offered_ms + lease,
                    };
                }
            }
        }
        self.make_runnable(id);
    }

    /// Offers runnable jobs to free nodes.
    pub(crate) fn schedule(&mut self) {
        if self.runnable.is_empty() || self.shutdown.is_cancelled() {
            return;
        }
        let now = self.now();
        let mut snapshot = self.registry.snapshot(now);
        for view in &mut snapshot {
            view.unverified = self.unverified.get(&view.address).copied().unwrap_or(0);
        }
        let mut waiting = Vec::new();
        let mut rounds = self.runnable.len();
        // Jobs that found no node in a row: past `SCHEDULE_MISSES`, the nodes with room are ones
        // these jobs cannot use (busy elsewhere, on probation, the wrong type), and looking
        // through the rest of a long queue on every burst would cost more than the burst. The
        // jobs passed over go to the back, so the next burst looks at the next ones.
        let mut misses = 0;
        while rounds > 0 && misses < SCHEDULE_MISSES && has_room(&snapshot) {
            rounds -= 1;
            let Some(id) = self.runnable.pop_front() else {
                break;
            };
            self.runnable_set.remove(&id);
            match self.assign(id, &mut snapshot, now) {
                Assigned::Done => misses = 0,
                Assigned::NeedsMore => {
                    misses += 1;
                    waiting.push(id);
                }
            }
        }
        for id in waiting {
            self.make_runnable(id);
        }
    }

    fn assign(&mut self, id: JobId, snapshot: &mut [NodeView], now: u64) -> Assigned {
        let max_attempts = self.config.jobs.max_attempts as usize;
        let Some(job) = self.jobs.get(&id) else {
            return Assigned::Done;
        };
        if !job.state.is_open() {
            return Assigned::Done;
        }
        let need = (job.redundancy as usize).saturating_sub(job.active_attempts());
        if need == 0 {
            return Assigned::Done;
        }
        // Attempts that ended without the node being at fault for it (busy, stopping) do not
        // use up the job's attempts.
        let ended = job
            .attempts
            .iter()
            .filter(|a| !a.state.is_active() && !no_fault(&a.state))
            .count();
        if ended >= max_attempts {
            let last = job
                .attempts
                .iter()
                .rev()
                .find(|a| !a.state.is_active())
                .map(describe)
                .unwrap_or_default();
            self.fail(
                id,
                format!("no node finished it in {ended} attempts (last: {last})"),
            );
            return Assigned::Done;
        }
        // Fresh nodes first; then nodes whose earlier attempt ended without blame (declined,
        // timed out, failed), never one holding this job now or one whose result was rejected.
        // Every pick is independent of the job's attempts that still count (one operator never
        // holds two places in a quorum).
        let tried = job.nodes_tried();
        let members: Vec<Member> = job
            .attempts
            .iter()
            .filter(|a| a.state.is_active())
            .map(|a| Member {
                attempt: a.n,
                node: a.node,
                wallet: a.wallet,
                origin: a.origin,
            })
            .collect();
        let mut picks = pick(
            snapshot,
            &job.spec,
            need,
            &tried,
            &members,
            &self.policy,
            tiebreak(&id),
        );
        if picks.len() < need {
            let blocked: Vec<Address> = job
                .attempts
                .iter()
                .filter(|a| a.state.is_active() || matches!(a.state, AttemptState::Rejected { .. }))
                .map(|a| a.node)
                .chain(picks.iter().copied())
                .collect();
            let mut held = members.clone();
            held.extend(
                snapshot
                    .iter()
                    .filter(|v| picks.contains(&v.address))
                    .map(crate::scheduler::member_of),
            );
            let more = pick(
                snapshot,
                &job.spec,
                need - picks.len(),
                &blocked,
                &held,
                &self.policy,
                tiebreak(&id),
            );
            picks.extend(more);
        }
        if picks.is_empty() {
            return Assigned::NeedsMore;
        }
        let lease_ms = self.lease_ms(&job.spec.limits);
        let spec = job.spec.clone();
        if crate::community::target_domain(&spec.params).is_some() {
            // One request to a domain per crawl delay: one attempt at a time, when its slot is due.
            picks.truncate(1);
            if !self.crawl_slot(&spec, now) {
                return Assigned::NeedsMore;
            }
        }
        let mut offers = Vec::new();
        for node in &picks {
            let Some(view) = snapshot.iter_mut().find(|v| v.address == *node) else {
                continue;
            };
            view.in_flight += 1;
            view.free_slots = view.free_slots.saturating_sub(1);
            view.assignments_last_minute += 1;
            offers.push((view.address, view.wallet, view.peer.clone(), view.origin));
        }
        let got = offers.len();
        let floor = self.attempt_floor.get(&id).copied().unwrap_or(0);
        if let Some(job) = self.jobs.get_mut(&id) {
            for (node, wallet, peer, origin) in offers {
                let n = job
                    .attempts
                    .iter()
                    .map(|a| a.n)
                    .max()
                    .unwrap_or(0)
                    .max(floor)
                    + 1;
                job.attempts.push(Attempt {
                    n,
                    node,
                    wallet,
                    peer: peer.clone(),
                    origin,
                    state: AttemptState::Offered,
                    offered_ms: now,
                    result: None,
                });
                let _ = self.registry.record_assignment(node, now);
                debug!(job = %id, attempt = n, %node, "offering");
                self.outgoing.push(Outgoing::Offers {
                    peer,
                    node,
                    offers: vec![JobOffer {
                        job: id,
                        spec: spec.clone(),
                        lease_ms,
                        attempt: n,
                    }],
                });
            }
        }
        // The offers wait for the job's next write (its acceptance does too): a restart before
        // it offers the job again, under new numbers. The first offers after a restart are
        // written at once, so a second restart counts from them.
        if self.attempt_floor.remove(&id).is_some() {
            self.touch(id);
            self.refresh_open_state(id);
        } else {
            self.touch_later(id);
            self.refresh_open_state_later(id);
        }
        if got < need {
            Assigned::NeedsMore
        } else {
            Assigned::Done
        }
    }

    /// Sets an open job's state from its attempts.
    pub(crate) fn refresh_open_state(&mut self, id: JobId) {
        self.refresh_open_state_as(id, false);
    }

    /// [`Engine::refresh_open_state`] for a change a restart recovers without (written with
    /// the job's next change, or within [`LAZY_WRITE_MS`](crate::engine::LAZY_WRITE_MS)).
    pub(crate) fn refresh_open_state_later(&mut self, id: JobId) {
        self.refresh_open_state_as(id, true);
    }

    fn refresh_open_state_as(&mut self, id: JobId, later: bool) {
        let Some(next) = self
            .jobs
            .get(&id)
            .filter(|j| j.state.is_open())
            .map(|j| j.open_state())
        else {
            return;
        };
        if later {
            self.set_state_later(id, next);
        } else {
            self.set_state(id, next);
        }
    }

    /// Ends an attempt that will bring no result, and frees its node.
    pub(crate) fn end_attempt(
        &mut self,
        id: JobId,
        n: u32,
        state: AttemptState,
        delivery: Option<Delivery>,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let Some(a) = job.attempt_mut(n) else {
            return;
        };
        let node = a.node;
        let held = matches!(
            a.state,
            AttemptState::Offered | AttemptState::Running { .. }
        );
        a.state = state;
        if held {
            let _ = self.registry.release(node);
        }
        if let Some(d) = delivery {
            self.registry.record_delivery(node, d, self.now());
        }
        self.touch(id);
        self.refresh_open_state(id);
        self.make_runnable(id);
    }

    /// A node answered (or did not answer) an offer.
    pub(crate) fn on_offer_answered(&mut self, id: JobId, n: u32, answer: OfferAnswer) {
        let now = self.now();
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let lease = self.lease_ms(&job.spec.limits);
        let Some(a) = job.attempts.iter().find(|a| a.n == n) else {
            return;
        };
        if a.state != AttemptState::Offered {
            return;
        }
        let node = a.node;
        match answer {
            OfferAnswer::Accepted => {
                if let Some(a) = self.jobs.get_mut(&id).and_then(|j| j.attempt_mut(n)) {
                    a.state = AttemptState::Running {
                        lease_until_ms: now + lease,
                    };
                }
                // A restart assumes an offered attempt accepted (`recover_open_job`): this
                // change waits for the job's next write (its result, for a quick job).
                self.touch_later(id);
                self.refresh_open_state_later(id);
            }
            OfferAnswer::Declined(reason) => {
                debug!(job = %id, attempt = n, %node, ?reason, "offer declined");
                let state = AttemptState::Declined { reason };
                let delivery = (!no_fault(&state)).then_some(Delivery::Declined);
                self.end_attempt(id, n, state, delivery);
            }
            OfferAnswer::Unreachable(why) => {
                info!(job = %id, attempt = n, %node, %why, "node unreachable");
                self.end_attempt(id, n, AttemptState::Unreachable, Some(Delivery::Timeout));
            }
        }
    }

    /// Takes back leases that ran out and attempts of nodes that went offline.
    pub(crate) fn expire_leases(&mut self, now: u64) {
        let mut expired: Vec<(JobId, u32, bool)> = Vec::new();
        for job in self.jobs.values() {
            if !job.state.is_open() {
                continue;
            }
            for a in &job.attempts {
                let offline = self
                    .registry
                    .view_of(&a.node, now)
                    .is_some_and(|v| !v.online);
                match a.state {
                    AttemptState::Running { lease_until_ms } if now > lease_until_ms || offline => {
                        expired.push((job.id, a.n, true));
                    }
                    AttemptState::Offered if now > a.offered_ms + OFFER_TIMEOUT_MS || offline => {
                        expired.push((job.id, a.n, false));
                    }
                    _ => {}
                }
            }
        }
        for (id, n, was_running) in expired {
            self.metrics.lease_timeouts.inc();
            warn!(job = %id, attempt = n, "lease taken back (deadline passed or node offline)");
            let state = if was_running {
                AttemptState::TimedOut
            } else {
                AttemptState::Unreachable
            };
            self.end_attempt(id, n, state, Some(Delivery::Timeout));
        }
    }

    /// Ends a job as failed.
    pub(crate) fn fail(&mut self, id: JobId, reason: String) {
        warn!(job = %id, %reason, "job failed");
        self.metrics.jobs_failed.inc();
        self.record_health_failure(id, &reason);
        let all: Vec<u32> = self
            .jobs
            .get(&id)
            .map(|j| j.attempts.iter().map(|a| a.n).collect())
            .unwrap_or_default();
        self.discard_claims(id, &all, &reason);
        self.release_held(id);
        self.set_state(id, JobState::Failed { reason });
    }

    /// A node withdrew: the attempts it holds end without blame and their jobs go elsewhere.
    pub(crate) fn hand_back(&mut self, node: Address) {
        let held: Vec<(JobId, u32)> = self
            .jobs
            .values()
            .flat_map(|j| j.attempts.iter().map(move |a| (j.id, a)))
            .filter(|(_, a)| {
                a.node == node
                    && matches!(
                        a.state,
                        AttemptState::Offered | AttemptState::Running { .. }
                    )
            })
            .map(|(id, a)| (id, a.n))
            .collect();
        for (id, n) in held {
            info!(job = %id, attempt = n, %node, "lease handed back: the node opted out");
            self.end_attempt(
                id,
                n,
                AttemptState::Failed {
                    error: "the node opted out".into(),
                },
                None,
            );
        }
    }

    /// Frees the nodes still holding attempts of a job that no longer needs them.
    pub(crate) fn release_held(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let mut freed = Vec::new();
        for a in &mut job.attempts {
            if matches!(
                a.state,
                AttemptState::Offered | AttemptState::Running { .. }
            ) {
                a.state = AttemptState::Failed {
                    error: "not needed any more".into(),
                };
                freed.push(a.node);
            }
        }
        for node in freed {
            let _ = self.registry.release(node);
        }
        self.touch(id);
    }
}

enum Assigned {
    Done,
    NeedsMore,
}

/// An attempt that ended because the node was full or stopping: no blame, no attempt used.
fn no_fault(state: &AttemptState) -> bool {
    matches!(
        state,
        AttemptState::Declined {
            reason: pocmesh_protocol::DeclineReason::Busy
                | pocmesh_protocol::DeclineReason::ShuttingDown
        }
    )
}

/// Jobs in a row that may find no node before a burst's scheduling stops looking.
const SCHEDULE_MISSES: usize = 64;

fn has_room(snapshot: &[NodeView]) -> bool {
    snapshot
        .iter()
        .any(|n| n.online && n.free_slots > 0 && !n.opted_out && !n.excluded)
}

/// A short description of how an attempt ended.
fn describe(a: &Attempt) -> String {
    match &a.state {
        AttemptState::Declined { reason } => format!("declined by {}: {reason:?}", a.node),
        AttemptState::Failed { error } => format!("failed on {}: {error}", a.node),
        AttemptState::Rejected { reason } => format!("rejected from {}: {reason}", a.node),
        other => format!("{} on {}", other.name(), a.node),
    }
}
