//! A job's lifecycle (DESIGN.md) as enums with explicit transitions; an illegal transition is an
//! error, never silently ignored.
//!
//! ```text
//! queued → offered → running (lease) → submitted → verified → recording → recorded (tx, block)
//!             ↘ declined/timeout → queued again (attempt+1) … → failed (after max attempts)
//! submitted → rejected (no verdict possible: nodes disagree and the dispatcher cannot run it)
//! verified → submitted   (reopened: a member was proven wrong elsewhere; re-checked)
//! verified → failed      (every credit quarantined: none can ever be recorded)
//! recording → verified   (the contract refused one wallet of the batch; the rest go again)
//! ```
//! With redundancy k a job runs as up to k attempts at once; the job's state is the furthest
//! point reached, and each attempt has its own [`AttemptState`]. A result proven wrong ends its
//! attempt `rejected`; the job itself goes on with other nodes.

use pocmesh_protocol::{Address, BatchId, DeclineReason, Hash32, JobId, JobSpec, Metering};
use serde::{Deserialize, Serialize};

use crate::policy::{Origin, ResultKey};

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum JobState {
    /// Waiting for nodes.
    Queued,
    /// Offers are out; no node has accepted yet.
    Offered,
    /// At least one node holds a lease.
    Running,
    /// Results arrived; verification is pending (quorum or re-execution).
    Submitted,
    /// A quorum agreed; the credits wait in the outbox.
    Verified,
    /// Its batch is being recorded on chain.
    Recording {
        /// The batch.
        batch: BatchId,
    },
    /// Credited on chain.
    Recorded {
        /// The batch.
        batch: BatchId,
        /// The transaction.
        tx: Hash32,
        /// Its block.
        block: u64,
    },
    /// Gave up: no attempt succeeded within the limits.
    Failed {
        /// Why.
        reason: String,
    },
    /// The results were wrong and the job cannot be retried.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// The state names, for the API's `?state=` filter and the status counts.
pub const STATE_NAMES: [&str; 9] = [
    "queued",
    "offered",
    "running",
    "submitted",
    "verified",
    "recording",
    "recorded",
    "failed",
    "rejected",
];

/// An illegal transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job cannot go from {from} to {to}")]
pub struct IllegalTransition {
    /// The current state.
    pub from: &'static str,
    /// The requested one.
    pub to: &'static str,
}

impl JobState {
    /// The state's name.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Offered => "offered",
            JobState::Running => "running",
            JobState::Submitted => "submitted",
            JobState::Verified => "verified",
            JobState::Recording { .. } => "recording",
            JobState::Recorded { .. } => "recorded",
            JobState::Failed { .. } => "failed",
            JobState::Rejected { .. } => "rejected",
        }
    }

    /// Whether the job is finished for good.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobState::Recorded { .. } | JobState::Failed { .. } | JobState::Rejected { .. }
        )
    }

    /// Whether the job still needs nodes (it can take more attempts).
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            JobState::Queued | JobState::Offered | JobState::Running | JobState::Submitted
        )
    }

    /// Moves to `next` if the lifecycle allows it.
    pub fn advance(&mut self, next: JobState) -> Result<(), IllegalTransition> {
        use JobState::*;
        let ok = match (&*self, &next) {
            (a, b) if a == b => true,
            (Queued | Offered | Running | Submitted, Queued | Offered | Running | Submitted) => {
                true
            }
            (
                Queued | Offered | Running | Submitted,
                Verified | Failed { .. } | Rejected { .. },
            ) => true,
            (Verified, Recording { .. }) => true,
            (Verified, Submitted | Failed { .. }) => true,
            (Recording { .. }, Recorded { .. } | Verified) => true,
            _ => false,
        };
        if ok {
            *self = next;
            Ok(())
        } else {
            Err(IllegalTransition {
                from: self.name(),
                to: next.name(),
            })
        }
    }
}

/// Where one attempt (one node's copy of a job) stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AttemptState {
    /// The offer is on its way.
    Offered,
    /// Accepted; the node holds a lease until `lease_until_ms`.
    Running {
        /// Lease deadline, unix ms.
        lease_until_ms: u64,
    },
    /// A result arrived and waits for verification.
    Submitted,
    /// Its result was part of the verified quorum.
    Accepted,
    /// The node declined.
    Declined {
        /// Why.
        reason: DeclineReason,
    },
    /// The node could not be reached.
    Unreachable,
    /// The lease ran out (or the node went offline) before a result came.
    TimedOut,
    /// The node reported a failure.
    Failed {
        /// The node's error.
        error: String,
    },
    /// The result was proven wrong.
    Rejected {
        /// Why.
        reason: String,
    },
    /// The result agreed with the verified one but is not credited (no blame): another attempt
    /// of the same operator is, or independent nodes outvoted it.
    NotCredited {
        /// Why.
        reason: String,
    },
}

impl AttemptState {
    /// Whether this attempt still counts toward the job's redundancy.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            AttemptState::Offered
                | AttemptState::Running { .. }
                | AttemptState::Submitted
                | AttemptState::Accepted
        )
    }

    /// The state's name.
    pub fn name(&self) -> &'static str {
        match self {
            AttemptState::Offered => "offered",
            AttemptState::Running { .. } => "running",
            AttemptState::Submitted => "submitted",
            AttemptState::Accepted => "accepted",
            AttemptState::Declined { .. } => "declined",
            AttemptState::Unreachable => "unreachable",
            AttemptState::TimedOut => "timed_out",
            AttemptState::Failed { .. } => "failed",
            AttemptState::Rejected { .. } => "rejected",
            AttemptState::NotCredited { .. } => "not_credited",
        }
    }
}

/// What a node returned for an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedResult {
    /// keccak256 of the output.
    pub result_hash: Hash32,
    /// Resources reported.
    pub metering: Metering,
    /// The output.
    #[serde(with = "crate::lifecycle::hex_bytes")]
    pub output: Vec<u8>,
    /// When it arrived, unix ms.
    pub received_ms: u64,
}

/// One node's attempt at a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Attempt number, from 1, unique within the job.
    pub n: u32,
    /// The node.
    pub node: Address,
    /// The wallet it credits.
    pub wallet: Address,
    /// The node's PeerId.
    pub peer: String,
    /// Where the node's connection came from when it was offered, if known.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// Where it stands.
    pub state: AttemptState,
    /// When it was offered, unix ms.
    pub offered_ms: u64,
    /// Its result, once submitted.
    pub result: Option<SubmittedResult>,
}

/// A credit the outbox holds until its batch is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// The job.
    pub job: JobId,
    /// The node that did the work.
    pub node: Address,
    /// The node's PeerId (for the receipt).
    pub peer: String,
    /// The wallet credited.
    pub wallet: Address,
    /// Units.
    pub units: u64,
    /// The verified result hash.
    pub result_hash: Hash32,
}

/// The dispatcher's own run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "audit")]
pub enum AuditRecord {
    /// It ran: this is the right answer.
    Done {
        /// Its result.
        key: ResultKey,
        /// When, unix ms.
        at_ms: u64,
    },
    /// It could not run (timeout, crash, shed under load): no verdict from it.
    Unavailable {
        /// Why.
        reason: String,
        /// When, unix ms.
        at_ms: u64,
    },
}

/// A verified credit that can never be recorded, set aside so it holds nothing else back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedCredit {
    /// The credit.
    pub credit: Credit,
    /// Why it cannot be recorded.
    pub reason: String,
    /// When it was set aside, unix ms.
    pub at_ms: u64,
}

/// A job as the dispatcher keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What to run.
    pub spec: JobSpec,
    /// How many nodes must agree.
    pub redundancy: u32,
    /// When it was submitted, unix ms.
    pub submitted_ms: u64,
    /// When it last changed, unix ms.
    pub updated_ms: u64,
    /// Where it stands.
    pub state: JobState,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
    /// The verified result hash.
    pub result_hash: Option<Hash32>,
    /// Credits given for it (one per agreeing node).
    pub credits: Vec<Credit>,
    /// The dispatcher's own run, if it ran one.
    #[serde(default)]
    pub audit: Option<AuditRecord>,
    /// Reopened because a member was proven wrong elsewhere: accepted again only after a run here.
    #[serde(default)]
    pub reverify: bool,
    /// Credits set aside because they can never be recorded.
    #[serde(default)]
    pub quarantined: Vec<QuarantinedCredit>,
}

impl Job {
    /// A job just accepted: queued, no attempts, results or credits yet.
    pub fn queued(id: JobId, spec: JobSpec, redundancy: u32, submitted_ms: u64) -> Job {
        Job {
            id,
            spec,
            redundancy,
            submitted_ms,
            updated_ms: submitted_ms,
            state: JobState::Queued,
            attempts: Vec::new(),
            result_hash: None,
            credits: Vec::new(),
            audit: None,
            reverify: false,
            quarantined: Vec::new(),
        }
    }

    /// Attempts still counting toward redundancy.
    pub fn active_attempts(&self) -> usize {
        self.attempts.iter().filter(|a| a.state.is_active()).count()
    }

    /// Nodes that have held this job (they are not offered it again).
    pub fn nodes_tried(&self) -> Vec<Address> {
        self.attempts.iter().map(|a| a.node).collect()
    }

    /// The attempt numbered `n`.
    pub fn attempt_mut(&mut self, n: u32) -> Option<&mut Attempt> {
        self.attempts.iter_mut().find(|a| a.n == n)
    }

    /// The job's state from its attempts, while it is open.
    pub fn open_state(&self) -> JobState {
        let has = |f: fn(&AttemptState) -> bool| self.attempts.iter().any(|a| f(&a.state));
        if has(|s| matches!(s, AttemptState::Submitted)) {
            JobState::Submitted
        } else if has(|s| matches!(s, AttemptState::Running { .. })) {
            JobState::Running
        } else if has(|s| matches!(s, AttemptState::Offered)) {
            JobState::Offered
        } else {
            JobState::Queued
        }
    }
}

/// Hex text for byte vectors in JSON, raw bytes in CBOR.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        pocmesh_protocol::Bytes(v.to_vec()).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        pocmesh_protocol::Bytes::deserialize(d).map(|b| b.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_allows_only_its_arrows() {
        let mut s = JobState::Queued;
        s.advance(JobState::Offered).expect("offer");
        s.advance(JobState::Running).expect("run");
        s.advance(JobState::Submitted).expect("submit");
        s.advance(JobState::Verified).expect("verify");
        let batch = BatchId::from([1u8; 32]);
        assert!(
            s.clone().advance(JobState::Queued).is_err(),
            "verified never goes back"
        );
        s.advance(JobState::Recording { batch }).expect("record");
        s.advance(JobState::Recorded {
            batch,
            tx: Hash32([2u8; 32]),
            block: 3,
        })
        .expect("recorded");
        assert!(s.is_final());
        let e = s
            .advance(JobState::Failed { reason: "x".into() })
            .expect_err("final");
        assert_eq!(e.from, "recorded");
        let mut q = JobState::Queued;
        assert!(
            q.advance(JobState::Recording { batch }).is_err(),
            "must verify first"
        );
        q.advance(JobState::Failed {
            reason: "max attempts".into(),
        })
        .expect("fail");
        assert!(q.advance(JobState::Queued).is_err());
    }
}
