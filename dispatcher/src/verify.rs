//! Verification in the engine: checks each result on its own (signed by the node holding the
//! attempt, within its lease, within the output limit, hashing to its `result_hash`, and
//! claiming only metering the units rule allows), then asks the pure policy
//! ([`crate::policy::decide`]) what the job's results decide and carries the decision out:
//! re-execute here, prove results wrong, ask more nodes, or accept and credit.
//!
//! Units are the dispatcher's figure ([`pocmesh_protocol::credited_units`]); a credit that can
//! never be recorded is quarantined where it would enter the outbox, so it holds nothing back.
//! A result proven wrong resets its node's trust and reopens that node's credits that are not
//! on chain yet, which are then re-executed before they count again.

use pocmesh_protocol::{
    Address, DeclineReason, Hash32, JobId, JobReply, JobResult, ResultStatus, UnitsRule,
    check_metering, credited_units, http_check, keccak256,
};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::engine::Outgoing;
use crate::engine::{Ack, Engine};
use crate::lifecycle::{
    AttemptState, AuditRecord, Credit, JobState, QuarantinedCredit, SubmittedResult,
};
use crate::metrics::DispatcherMetrics;
use crate::policy::{
    AuditState, Claim, Decision, Delivery, JobFacts, Member, ResultKey, SetAside, decide,
};

/// How the dispatcher's own run of a job went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuditOutcome {
    /// It ran to completion: its result.
    Ran(ResultKey),
    /// It could not run here (timeout, crash, shed, failure): no verdict.
    Unavailable(String),
}

fn refused(job: JobId, attempt: u32) -> JobReply {
    JobReply::declined(job, attempt, DeclineReason::InvalidOffer)
}

/// The key a result is compared by, under the units rule of its job type: the output hash,
/// fuel and size for deterministic types; for HTTP checks, what independent fetches can agree
/// on ([`pocmesh_protocol::http_check::comparable`]).
pub(crate) fn result_key(
    job_type: pocmesh_protocol::JobType,
    result_hash: Hash32,
    metering: &pocmesh_protocol::Metering,
    output: &[u8],
) -> ResultKey {
    if !http_check::reexecutable(job_type) {
        return ResultKey {
            result_hash: http_check::comparable(job_type, output).unwrap_or(result_hash),
            fuel: 0,
            bytes: 0,
        };
    }
    let compared = UnitsRule::of(job_type).fuel_is_compared();
    ResultKey {
        result_hash,
        fuel: if compared { metering.fuel } else { 0 },
        bytes: metering.bytes,
    }
}

/// Why a credit can never be recorded, if so: the contract refuses the zero address and zero
/// units, and crediting the contract itself is nobody's reward.
pub(crate) fn unrecordable(credit: &Credit, contract: Option<Address>) -> Option<String> {
    if credit.wallet == Address::ZERO {
        return Some("the wallet is the zero address, which the contract refuses".into());
    }
    if Some(credit.wallet) == contract {
        return Some("the wallet is the ProofOfCompute contract's own address".into());
    }
    if credit.units == 0 {
        return Some("the credit is for zero units, which the contract refuses".into());
    }
    None
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
        let now = self.now();
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
        // Bound to the attempt: this node, this attempt number, offered by us.
        let Some(attempt) = job.attempts.iter().find(|a| a.n == n && a.node == from) else {
            DispatcherMetrics::count(&self.metrics.results, "unknown");
            info!(job = %id, attempt = n, node = %from, "result for an attempt this node was not offered; refused");
            let _ = reply.send(refused(id, n));
            return;
        };
        match &attempt.state {
            AttemptState::Offered | AttemptState::Running { .. } => {}
            AttemptState::Submitted
            | AttemptState::Accepted
            | AttemptState::Failed { .. }
            | AttemptState::NotCredited { .. }
            | AttemptState::Rejected { .. } => {
                // The first copy may have arrived in this very burst: the answer waits for the
                // burst's write like the first one's.
                DispatcherMetrics::count(&self.metrics.results, "repeat");
                self.acks
                    .push(Ack::Result(reply, JobReply::accepted(id, n)));
                return;
            }
            _ => {
                DispatcherMetrics::count(&self.metrics.results, "late");
                info!(job = %id, attempt = n, node = %from, "late result refused");
                let _ = reply.send(refused(id, n));
                return;
            }
        }
        let spec = job.spec.clone();
        let output = result.output.map(|b| b.0).unwrap_or_default();
        if result.status == ResultStatus::Failed {
            DispatcherMetrics::count(&self.metrics.results, "failed");
            let error = result.error.unwrap_or_else(|| "no reason given".into());
            info!(job = %id, attempt = n, node = %from, %error, "attempt failed on the node");
            self.end_attempt(
                id,
                n,
                AttemptState::Failed { error },
                Some(Delivery::Failure),
            );
            self.acks
                .push(Ack::Result(reply, JobReply::accepted(id, n)));
            return;
        }
        let limit = spec.limits.max_output_bytes;
        let output_len = output.len() as u64;
        let problem = if output_len > limit {
            Some(format!(
                "output of {output_len} bytes is over the job's {limit}-byte limit"
            ))
        } else if Hash32(keccak256(&output)) != result.result_hash {
            Some("result_hash is not the keccak256 of the output".to_string())
        } else if let Err(e) = check_metering(&spec, output_len, &result.metering) {
            Some(format!("metering contradicts the job: {e}"))
        } else if !http_check::reexecutable(spec.params.job_type())
            && let Err(e) = http_check::check_report(&spec, &output)
        {
            Some(format!("not an answer to this job: {e}"))
        } else {
            None
        };
        let _ = self.registry.release(from);
        if let Some(reason) = problem {
            // Provably wrong on its own: no comparison needed.
            DispatcherMetrics::count(&self.metrics.results, "rejected");
            warn!(job = %id, attempt = n, node = %from, %reason, "result rejected");
            self.prove_wrong(id, n, reason);
            self.acks.push(Ack::Result(reply, refused(id, n)));
            self.refresh_open_state(id);
            self.make_runnable(id);
            self.evaluate(id);
            return;
        }
        DispatcherMetrics::count(&self.metrics.results, "submitted");
        self.registry.record_delivery(from, Delivery::Success, now);
        let origin = self.registry.origin(&from);
        if let Some(a) = self.jobs.get_mut(&id).and_then(|j| j.attempt_mut(n)) {
            a.state = AttemptState::Submitted;
            // The connection that delivered the result is known by now, even when the offer
            // went out before it was.
            a.origin = a.origin.or(origin);
            a.result = Some(SubmittedResult {
                result_hash: result.result_hash,
                metering: result.metering,
                output,
                received_ms: now,
            });
        }
        self.claim_opened(id, from);
        self.touch(id);
        self.refresh_open_state(id);
        self.acks
            .push(Ack::Result(reply, JobReply::accepted(id, n)));
        self.evaluate(id);
    }

    /// Ends attempt `n` of job `id` as proven wrong: its node loses its trust (and is excluded
    /// when the policy says so), and its credits not on chain yet are reopened.
    pub(crate) fn prove_wrong(&mut self, id: JobId, n: u32, reason: String) {
        let now = self.now();
        let Some(a) = self.jobs.get_mut(&id).and_then(|j| j.attempt_mut(n)) else {
            return;
        };
        let (node, wallet) = (a.node, a.wallet);
        let was_claim = a.state == AttemptState::Submitted;
        a.state = AttemptState::Rejected {
            reason: reason.clone(),
        };
        if was_claim {
            self.claim_settled(id, node);
        }
        self.touch(id);
        self.metrics.results_wrong.inc();
        warn!(job = %id, attempt = n, %node, %reason, "result proven wrong");
        if self.registry.record_wrong(node, wallet, &reason, now) {
            self.metrics.nodes_excluded.inc();
        }
        self.reopen_credits_of(node);
    }

    /// Takes back the not-yet-batched credits of `node` that no re-execution confirmed: their
    /// jobs are checked again before anything counts.
    fn reopen_credits_of(&mut self, node: Address) {
        let reopen: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| {
                j.state == JobState::Verified
                    && !matches!(j.audit, Some(AuditRecord::Done { .. }))
                    && j.credits.iter().any(|c| c.node == node)
            })
            .map(|j| j.id)
            .collect();
        for id in reopen {
            let seqs: Vec<u64> = self
                .outbox
                .iter()
                .filter(|(_, c)| c.job == id)
                .map(|(seq, _)| *seq)
                .collect();
            self.outbox.retain(|(_, c)| c.job != id);
            self.changes.outbox_remove.extend(seqs);
            let mut reopened = Vec::new();
            if let Some(job) = self.jobs.get_mut(&id) {
                job.credits.clear();
                job.reverify = true;
                job.audit = None;
                for a in &mut job.attempts {
                    if a.state == AttemptState::Accepted {
                        a.state = AttemptState::Submitted;
                        reopened.push(a.node);
                    }
                }
            }
            for n in reopened {
                self.claim_opened(id, n);
            }
            warn!(job = %id, %node, "credit reopened: its node was proven wrong elsewhere");
            self.metrics.credits_reopened.inc();
            self.set_state(id, JobState::Submitted);
            self.evaluate(id);
        }
        self.metrics.outbox.set(self.outbox.len() as i64);
    }

    /// Asks the policy what the job's results decide, and carries it out, until it waits.
    pub(crate) fn evaluate(&mut self, id: JobId) {
        // Each round settles at least one result or returns; bounded all the same.
        for _ in 0..64 {
            let Some(job) = self.jobs.get(&id) else {
                return;
            };
            if !job.state.is_open() {
                return;
            }
            // An excluded node's word counts for nothing, not even as a vote.
            let discredited: Vec<u32> = job
                .attempts
                .iter()
                .filter(|a| {
                    a.state == AttemptState::Submitted && self.registry.is_excluded(&a.node)
                })
                .map(|a| a.n)
                .collect();
            if !discredited.is_empty() {
                self.discard_claims(id, &discredited, "its node is excluded");
                self.refresh_open_state(id);
                self.make_runnable(id);
                continue;
            }
            let job_type = job.spec.params.job_type();
            let claims: Vec<Claim> = job
                .attempts
                .iter()
                .filter(|a| a.state == AttemptState::Submitted)
                .filter_map(|a| {
                    let r = a.result.as_ref()?;
                    let units = credited_units(&job.spec, &r.metering);
                    Some(Claim {
                        member: Member {
                            attempt: a.n,
                            node: a.node,
                            wallet: a.wallet,
                            origin: a.origin,
                        },
                        key: result_key(job_type, r.result_hash, &r.metering, &r.output),
                        audit_rate: self.registry.audit_rate(&a.node, &a.wallet, units),
                    })
                })
                .collect();
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
            let audit = if self.audits.contains(&id) {
                AuditState::Running
            } else {
                match &job.audit {
                    None => AuditState::NotRun,
                    Some(AuditRecord::Done { key, .. }) => AuditState::Done(*key),
                    Some(AuditRecord::Unavailable { .. }) => AuditState::Unavailable,
                }
            };
            let facts = JobFacts {
                job: id,
                redundancy: job.redundancy,
                max_redundancy: self.max_redundancy(),
                outstanding,
                audit,
                reverify: job.reverify,
                reexecutable: http_check::reexecutable(job_type),
                claims: &claims,
            };
            match decide(&facts, &self.independence, &self.audit_key) {
                Decision::Wait => return,
                Decision::Audit => {
                    if self.audits.insert(id) {
                        let spec = job.spec.clone();
                        self.outgoing.push(Outgoing::Audit { job: id, spec });
                    }
                    return;
                }
                Decision::Wrong { attempts } => {
                    for n in attempts {
                        self.prove_wrong(
                            id,
                            n,
                            "differs from the dispatcher's re-execution".into(),
                        );
                    }
                    self.refresh_open_state(id);
                    self.make_runnable(id);
                }
                Decision::Reassign => {
                    self.make_runnable(id);
                    return;
                }
                Decision::TieBreak => {
                    if let Some(job) = self.jobs.get_mut(&id) {
                        job.redundancy += 1;
                        // The dispatcher tries its own run again once the tie-breaker answers.
                        job.audit = None;
                        info!(job = %id, redundancy = job.redundancy, "no verdict here; asking one more node");
                    }
                    self.touch(id);
                    self.make_runnable(id);
                    return;
                }
                Decision::GiveUp { reason } => {
                    self.reject_job(id, reason);
                    return;
                }
                Decision::Accept {
                    key,
                    members,
                    checked,
                    audited,
                    set_aside,
                } => {
                    self.accept(id, key, &members, checked, audited, &set_aside);
                    return;
                }
            }
        }
        warn!(job = %id, "verification did not settle; it is looked at again with the next result");
    }

    /// The highest redundancy a tie-break may reach.
    fn max_redundancy(&self) -> u32 {
        self.config
            .jobs
            .max_redundancy
            .min(crate::scheduler::MAX_REDUNDANCY)
    }

    /// The dispatcher's own run of a job finished (or could not run).
    pub(crate) fn on_audited(&mut self, id: JobId, outcome: AuditOutcome) {
        self.audits.remove(&id);
        let now = self.now();
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let record = match outcome {
            AuditOutcome::Ran(key) => {
                let matched = job
                    .attempts
                    .iter()
                    .filter(|a| a.state == AttemptState::Submitted)
                    .filter_map(|a| a.result.as_ref())
                    .all(|r| {
                        result_key(
                            job.spec.params.job_type(),
                            r.result_hash,
                            &r.metering,
                            &r.output,
                        ) == key
                    });
                DispatcherMetrics::count(
                    &self.metrics.reexecutions,
                    if matched { "match" } else { "mismatch" },
                );
                AuditRecord::Done { key, at_ms: now }
            }
            AuditOutcome::Unavailable(reason) => {
                DispatcherMetrics::count(&self.metrics.reexecutions, "unavailable");
                warn!(job = %id, %reason, "re-execution unavailable; another node breaks the tie");
                AuditRecord::Unavailable { reason, at_ms: now }
            }
        };
        job.audit = Some(record);
        self.touch(id);
        self.evaluate(id);
    }

    /// The verified result `key`: credits its `members`, sets aside the rest without blame,
    /// and sends the credits to the outbox (or to quarantine, when they can never be recorded).
    fn accept(
        &mut self,
        id: JobId,
        key: ResultKey,
        members: &[u32],
        checked: bool,
        audited: bool,
        set_aside: &[(u32, SetAside)],
    ) {
        let now = self.now();
        let contract = self.config.contract;
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        // A job taken back and accepted again earns its members no second helping of trust.
        let again = job.reverify;
        let mut credits = Vec::new();
        let mut accepted_nodes = Vec::new();
        let mut settled = Vec::new();
        for a in &mut job.attempts {
            if a.state != AttemptState::Submitted {
                continue;
            }
            settled.push(a.node);
            if members.contains(&a.n) {
                let Some(r) = &a.result else {
                    continue;
                };
                a.state = AttemptState::Accepted;
                let units = credited_units(&job.spec, &r.metering);
                accepted_nodes.push((a.node, units));
                credits.push(Credit {
                    job: id,
                    node: a.node,
                    peer: a.peer.clone(),
                    wallet: a.wallet,
                    units,
                    result_hash: r.result_hash,
                });
            } else {
                let reason = match set_aside.iter().find(|(n, _)| *n == a.n) {
                    Some((_, SetAside::SameOperator { as_attempt })) => format!(
                        "agrees, but attempt {as_attempt} of the same operator (node, wallet or network) is credited"
                    ),
                    Some((_, SetAside::Outvoted)) => {
                        "outvoted by independent nodes while the dispatcher could not re-execute the job".into()
                    }
                    None => "not part of the verified result".into(),
                };
                a.state = AttemptState::NotCredited { reason };
            }
        }
        job.result_hash = Some(key.result_hash);
        job.reverify = false;
        let http = !http_check::reexecutable(job.spec.params.job_type());
        let mut outbox_credits = Vec::new();
        let mut quarantined = Vec::new();
        for credit in credits {
            match unrecordable(&credit, contract) {
                Some(reason) => quarantined.push(QuarantinedCredit {
                    credit,
                    reason,
                    at_ms: now,
                }),
                None => outbox_credits.push(credit),
            }
        }
        job.credits = outbox_credits.clone();
        job.quarantined.extend(quarantined.iter().cloned());
        for node in settled {
            self.claim_settled(id, node);
        }
        if !again {
            for (node, units) in accepted_nodes {
                self.registry
                    .record_accepted(node, checked, audited, units, now);
            }
        }
        if http && !again {
            self.record_health(id);
        }
        self.release_held(id);
        for q in quarantined {
            self.quarantine(q);
        }
        if outbox_credits.is_empty() {
            self.set_state(id, JobState::Verified);
            self.metrics.jobs_verified.inc();
            self.fail(
                id,
                "verified, but none of its credits can ever be recorded (see its quarantined credits)"
                    .into(),
            );
            return;
        }
        for credit in outbox_credits {
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

    /// Sets a credit aside for good, with its reason.
    pub(crate) fn quarantine(&mut self, q: QuarantinedCredit) {
        warn!(job = %q.credit.job, wallet = %q.credit.wallet, units = q.credit.units, reason = %q.reason, "credit quarantined");
        self.counters.credits_quarantined += 1;
        self.counters.units_quarantined = self
            .counters
            .units_quarantined
            .saturating_add(q.credit.units);
        self.changes.counters = Some(self.counters);
        self.metrics.credits_quarantined.inc();
        self.changes.quarantine.push(q);
    }

    /// Sets aside, without blame or credit, the submitted results of these attempts.
    pub(crate) fn discard_claims(&mut self, id: JobId, attempts: &[u32], reason: &str) {
        let mut settled = Vec::new();
        if let Some(job) = self.jobs.get_mut(&id) {
            for a in &mut job.attempts {
                if a.state == AttemptState::Submitted && attempts.contains(&a.n) {
                    a.state = AttemptState::NotCredited {
                        reason: reason.to_string(),
                    };
                    settled.push(a.node);
                }
            }
        }
        for node in settled {
            self.claim_settled(id, node);
        }
        self.touch(id);
    }

    /// Ends a job without a verdict: nobody is blamed, nobody credited.
    fn reject_job(&mut self, id: JobId, reason: String) {
        warn!(job = %id, %reason, "job rejected");
        let open: Vec<u32> = self
            .jobs
            .get(&id)
            .map(|j| j.attempts.iter().map(|a| a.n).collect())
            .unwrap_or_default();
        self.discard_claims(id, &open, &reason);
        self.metrics.jobs_rejected.inc();
        self.release_held(id);
        self.set_state(id, JobState::Rejected { reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pocmesh_protocol::{JobType, Metering};

    fn credit(wallet: Address, units: u64) -> Credit {
        Credit {
            job: JobId::from([1; 32]),
            node: Address([2; 20]),
            peer: String::new(),
            wallet,
            units,
            result_hash: Hash32::ZERO,
        }
    }

    #[test]
    fn unrecordable_credits_are_named() {
        let contract = Address([9; 20]);
        assert!(
            unrecordable(&credit(Address::ZERO, 1), Some(contract))
                .is_some_and(|r| r.contains("zero address"))
        );
        assert!(
            unrecordable(&credit(contract, 1), Some(contract))
                .is_some_and(|r| r.contains("contract"))
        );
        assert!(
            unrecordable(&credit(Address([3; 20]), 0), None)
                .is_some_and(|r| r.contains("zero units"))
        );
        assert_eq!(
            unrecordable(&credit(Address([3; 20]), 1), Some(contract)),
            None
        );
    }

    #[test]
    fn fuel_is_compared_only_where_the_units_rule_says() {
        let m = Metering {
            fuel: 77,
            ms: 5,
            bytes: 3,
        };
        assert_eq!(result_key(JobType::Wasm, Hash32::ZERO, &m, &[]).fuel, 77);
        assert_eq!(result_key(JobType::Hash, Hash32::ZERO, &m, &[]).fuel, 77);
        assert_eq!(
            result_key(JobType::LinkHealth, Hash32::ZERO, &m, &[]).fuel,
            0
        );
        let other_ms = Metering { ms: 900, ..m };
        assert_eq!(
            result_key(JobType::Wasm, Hash32::ZERO, &m, &[]),
            result_key(JobType::Wasm, Hash32::ZERO, &other_ms, &[]),
            "wall-clock time is never compared"
        );
    }
}
