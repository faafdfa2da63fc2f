//! Verification: a result counts only if it is signed by the node that holds the attempt,
//! arrives within its lease, fits the job's output limit and hashes to its `result_hash`; a
//! job is verified when a quorum of its attempts agree on `result_hash` and metering, and —
//! for single-node jobs and a sample of the rest — when the dispatcher's own re-execution
//! agrees too. Wrong results are rejected, not credited, and cost the node reliability.

use std::collections::HashMap;

use pocmesh_protocol::{
    Address, DeclineReason, Hash32, JobId, JobReply, JobResult, ResultStatus, keccak256,
    unix_ms_now,
};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::engine::{Ack, Engine};
use crate::lifecycle::{AttemptState, Credit, JobState, SubmittedResult};
use crate::metrics::DispatcherMetrics;
use crate::net::Outgoing;
use crate::registry::Outcome;

/// What a quorum compares: the result hash, the fuel (or iterations) and the output size.
/// Wall-clock time differs between machines and is not compared.
type QuorumKey = (Hash32, u64, u64);

fn refused(job: JobId, attempt: u32) -> JobReply {
    JobReply::declined(job, attempt, DeclineReason::InvalidOffer)
}

impl Engine {
    /// A node delivered a result.
    pub(crate) fn on_result(
        &mut self,
        from: Address,
        result: JobResult,
        reply: oneshot::Sender<JobReply>,
    ) {
        let (id, n) = (result.job, result.attempt);
        let Some(job) = self.jobs.get(&id) else {
            // Finished or unknown: a repeat of a result we hold is acknowledged again.
            let known = self
                .store
                .job(&id)
                .ok()
                .flatten()
                .is_some_and(|j| j.attempts.iter().any(|a| a.n == n && a.node == from));
            DispatcherMetrics::count(
                &self.metrics.results,
                if known { "repeat" } else { "unknown" },
            );
            let _ = reply.send(if known {
                JobReply::accepted(id, n)
            } else {
                refused(id, n)
            });
            return;
        };
        let Some(attempt) = job.attempts.iter().find(|a| a.n == n && a.node == from) else {
            DispatcherMetrics::count(&self.metrics.results, "unknown");
            let _ = reply.send(refused(id, n));
            return;
        };
        match &attempt.state {
            AttemptState::Offered | AttemptState::Running { .. } => {}
            AttemptState::Submitted | AttemptState::Accepted | AttemptState::Failed { .. } => {
                DispatcherMetrics::count(&self.metrics.results, "repeat");
                let _ = reply.send(JobReply::accepted(id, n));
                return;
            }
            _ => {
                DispatcherMetrics::count(&self.metrics.results, "late");
                info!(job = %id, attempt = n, node = %from, "late result refused");
                let _ = reply.send(refused(id, n));
                return;
            }
        }
        let limit = job.spec.limits.max_output_bytes;
        let output = result.output.map(|b| b.0).unwrap_or_default();
        if result.status == ResultStatus::Failed {
            DispatcherMetrics::count(&self.metrics.results, "failed");
            let error = result.error.unwrap_or_else(|| "no reason given".into());
            info!(job = %id, attempt = n, node = %from, %error, "attempt failed on the node");
            self.end_attempt(
                id,
                n,
                AttemptState::Failed { error },
                Some(Outcome::Failure),
            );
            self.acks
                .push(Ack::Result(reply, JobReply::accepted(id, n)));
            return;
        }
        let problem = if output.len() as u64 > limit {
            Some(format!(
                "output of {} bytes is over the job's {limit}-byte limit",
                output.len()
            ))
        } else if Hash32(keccak256(&output)) != result.result_hash {
            Some("result_hash is not the keccak256 of the output".to_string())
        } else {
            None
        };
        if let Some(reason) = problem {
            DispatcherMetrics::count(&self.metrics.results, "rejected");
            warn!(job = %id, attempt = n, node = %from, %reason, "result rejected");
            self.end_attempt(
                id,
                n,
                AttemptState::Rejected { reason },
                Some(Outcome::Rejected),
            );
            self.acks.push(Ack::Result(reply, refused(id, n)));
            return;
        }
        DispatcherMetrics::count(&self.metrics.results, "submitted");
        if let Some(a) = self.jobs.get_mut(&id).and_then(|j| j.attempt_mut(n)) {
            a.state = AttemptState::Submitted;
            a.result = Some(SubmittedResult {
                result_hash: result.result_hash,
                metering: result.metering,
                output,
                received_ms: unix_ms_now(),
            });
        }
        let _ = self.registry.release(from);
        self.touch(id);
        self.refresh_open_state(id);
        self.acks
            .push(Ack::Result(reply, JobReply::accepted(id, n)));
        self.evaluate(id);
    }

    /// The biggest group of agreeing submitted results of a job.
    fn best_group(&self, id: JobId) -> Option<(QuorumKey, Vec<u32>)> {
        let job = self.jobs.get(&id)?;
        let mut groups: HashMap<QuorumKey, Vec<u32>> = HashMap::new();
        for a in &job.attempts {
            if let (AttemptState::Submitted, Some(r)) = (&a.state, &a.result) {
                groups
                    .entry((r.result_hash, r.metering.fuel, r.metering.bytes))
                    .or_default()
                    .push(a.n);
            }
        }
        groups.into_iter().max_by_key(|(_, v)| v.len())
    }

    fn needs_reexecution(&self, id: &JobId, redundancy: u32) -> bool {
        let v = &self.config.verify;
        if redundancy == 1 && v.reexecute_single {
            return true;
        }
        let b = id.as_bytes();
        let draw = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as f64 / u32::MAX as f64;
        draw < v.reexecute_sample
    }

    /// Verifies a job if a quorum agrees; asks for more results if they disagree.
    pub(crate) fn evaluate(&mut self, id: JobId) {
        if self.reexecuting.contains(&id) {
            return;
        }
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        if !job.state.is_open() {
            return;
        }
        let quorum = job.redundancy as usize / 2 + 1;
        let submitted = job
            .attempts
            .iter()
            .filter(|a| a.state == AttemptState::Submitted)
            .count();
        let outstanding = job
            .attempts
            .iter()
            .filter(|a| {
                matches!(
                    a.state,
                    AttemptState::Offered | AttemptState::Running { .. }
                )
            })
            .count();
        let redundancy = job.redundancy;
        let spec = job.spec.clone();
        match self.best_group(id) {
            Some((key, group)) if group.len() >= quorum => {
                if self.needs_reexecution(&id, redundancy) {
                    self.reexecuting.insert(id);
                    self.outgoing.push(Outgoing::ReExecute { job: id, spec });
                } else {
                    self.accept(id, key);
                }
            }
            _ if outstanding == 0 && submitted >= redundancy as usize => {
                // They disagree: one more independent result decides.
                // Up to the cap (scheduler::MAX_REDUNDANCY and the config); then no quorum
                // can be had and the job is rejected.
                let cap = self
                    .config
                    .jobs
                    .max_redundancy
                    .min(crate::scheduler::MAX_REDUNDANCY);
                if redundancy < cap
                    && let Some(job) = self.jobs.get_mut(&id)
                {
                    job.redundancy += 1;
                    warn!(job = %id, redundancy = job.redundancy, "results disagree; asking one more node");
                    self.touch(id);
                    self.make_runnable(id);
                } else {
                    self.reject_job(id, "results of independent nodes disagree".into());
                }
            }
            _ => {}
        }
    }

    /// The dispatcher's own run of a job finished.
    pub(crate) fn on_reexecuted(&mut self, id: JobId, own_hash: Hash32) {
        self.reexecuting.remove(&id);
        let Some((key, group)) = self.best_group(id) else {
            return;
        };
        if key.0 == own_hash {
            DispatcherMetrics::count(&self.metrics.reexecutions, "match");
            self.accept(id, key);
            return;
        }
        DispatcherMetrics::count(&self.metrics.reexecutions, "mismatch");
        warn!(job = %id, nodes = group.len(), "results differ from the dispatcher's re-execution; rejected");
        for n in group {
            self.end_attempt(
                id,
                n,
                AttemptState::Rejected {
                    reason: "differs from the dispatcher's re-execution".into(),
                },
                Some(Outcome::Rejected),
            );
        }
        self.evaluate(id);
    }

    /// The quorum `key` is the job's verified result: its nodes are credited, dissenters
    /// rejected, the credits enter the outbox.
    fn accept(&mut self, id: JobId, key: QuorumKey) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let job_type = job.spec.params.job_type();
        let mut credits = Vec::new();
        let mut outcomes = Vec::new();
        for a in &mut job.attempts {
            let Some(r) = &a.result else {
                continue;
            };
            if a.state != AttemptState::Submitted {
                continue;
            }
            if (r.result_hash, r.metering.fuel, r.metering.bytes) == key {
                a.state = AttemptState::Accepted;
                outcomes.push((a.node, Outcome::Success));
                credits.push(Credit {
                    job: id,
                    node: a.node,
                    peer: a.peer.clone(),
                    wallet: a.wallet,
                    units: Engine::units(job_type, &r.metering),
                    result_hash: r.result_hash,
                });
            } else {
                a.state = AttemptState::Rejected {
                    reason: "disagrees with the quorum".into(),
                };
                outcomes.push((a.node, Outcome::Rejected));
            }
        }
        job.result_hash = Some(key.0);
        job.credits = credits.clone();
        for (node, outcome) in outcomes {
            let _ = self.registry.record_outcome(node, outcome);
        }
        self.release_held(id);
        let now = unix_ms_now();
        for credit in credits {
            self.counters.outbox_seq += 1;
            let seq = self.counters.outbox_seq;
            self.changes.outbox_add.push((seq, credit.clone()));
            self.outbox.push_back((seq, credit));
        }
        self.changes.counters = Some(self.counters);
        if self.outbox_since_ms.is_none() {
            self.outbox_since_ms = Some(now);
        }
        self.metrics.outbox.set(self.outbox.len() as i64);
        self.metrics.jobs_verified.inc();
        self.set_state(id, JobState::Verified);
    }

    /// Ends a job as rejected, rejecting every submitted result.
    fn reject_job(&mut self, id: JobId, reason: String) {
        warn!(job = %id, %reason, "job rejected");
        let mut nodes = Vec::new();
        if let Some(job) = self.jobs.get_mut(&id) {
            for a in &mut job.attempts {
                if a.state == AttemptState::Submitted {
                    a.state = AttemptState::Rejected {
                        reason: reason.clone(),
                    };
                    nodes.push(a.node);
                }
            }
        }
        for node in nodes {
            let _ = self.registry.record_outcome(node, Outcome::Rejected);
        }
        self.metrics.jobs_rejected.inc();
        self.release_held(id);
        self.set_state(id, JobState::Rejected { reason });
    }
}
