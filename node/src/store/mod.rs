//! The node's durable state (sled): the heartbeat sequence, job history, results waiting for
//! the dispatcher's acknowledgement, receipts, and running totals. Every change that a peer will
//! hear about is flushed before the message leaves, so a crash never un-happens what was said.
//! Receipts and their check states live in [`receipts`](self::receipts).

use std::path::Path;

use pocmesh_protocol::{Address, Hash32, JobId, JobType, ResultStatus};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (disk full, corrupt file, permissions).
    #[error(
        "node store at {path}: {source}; check free disk space and permissions of the data dir"
    )]
    Sled {
        /// The store's directory.
        path: String,
        /// sled's error.
        source: sled::Error,
    },
    /// A stored row could not be decoded.
    #[error("node store row in `{tree}` is unreadable: {reason}")]
    Corrupt {
        /// The tree.
        tree: &'static str,
        /// Why.
        reason: String,
    },
    /// A job was not where the caller expected it.
    #[error("job {job} attempt {attempt} is not in state {expected}")]
    WrongState {
        /// The job.
        job: JobId,
        /// The attempt.
        attempt: u32,
        /// The state the caller needed.
        expected: &'static str,
    },
    /// A receipt was asked to change state in a way its lifecycle does not allow.
    #[error("receipt for job {job}: {source}")]
    ReceiptState {
        /// The job.
        job: JobId,
        /// The refused transition.
        source: crate::receipts::ReceiptTransitionError,
    },
    /// No receipt is stored for the job.
    #[error("no receipt is stored for job {job}")]
    NoReceipt {
        /// The job.
        job: JobId,
    },
}

/// Where one attempt of a job stands on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum JobState {
    /// Accepted and executing.
    Running,
    /// Finished; the signed result waits for the dispatcher's acknowledgement.
    AwaitingAck {
        /// How it ended.
        status: ResultStatus,
    },
    /// The dispatcher acknowledged the result.
    Delivered {
        /// How it ended.
        status: ResultStatus,
    },
    /// A receipt for the attempt arrived; whether it checks out on chain is the receipt's state
    /// ([`crate::receipts::ReceiptState`]).
    Credited {
        /// Units credited.
        units: u64,
    },
}

impl JobState {
    /// The state's name, for the status API.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::AwaitingAck { .. } => "awaiting_ack",
            JobState::Delivered { .. } => "delivered",
            JobState::Credited { .. } => "credited",
        }
    }
}

/// One attempt of a job as the node remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job.
    pub job: JobId,
    /// The attempt.
    pub attempt: u32,
    /// The dispatcher that offered it.
    pub dispatcher: Address,
    /// The dispatcher's PeerId, to deliver the result to.
    pub dispatcher_peer: String,
    /// Its type.
    pub job_type: JobType,
    /// Where it stands.
    pub state: JobState,
    /// When it was accepted, unix ms.
    pub accepted_ms: u64,
    /// When it finished, unix ms.
    pub finished_ms: Option<u64>,
    /// The result's hash, once finished.
    pub result_hash: Option<Hash32>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A finished result waiting for the dispatcher's acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingResult {
    /// The job.
    pub job: JobId,
    /// The attempt.
    pub attempt: u32,
    /// The dispatcher's PeerId.
    pub dispatcher_peer: String,
    /// The result; it is signed afresh for every try, so a delivery after a long outage still
    /// passes the receiver's clock check.
    pub result: pocmesh_protocol::JobResult,
    /// Deliveries tried so far.
    pub tries: u32,
    /// Not before this time, unix ms.
    pub next_try_ms: u64,
}

/// Running totals shown by `/status`. Every receipt is in exactly one state; its units are in
/// the units total of that state (failed receipts' units count nowhere). Fields added later
/// read as 0 from rows written before them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Attempts that finished with a result.
    pub jobs_done: u64,
    /// Attempts that failed (limits, traps, shutdown).
    pub jobs_failed: u64,
    /// Units of verified receipts: their proofs check against the batch roots on chain.
    pub units_earned: u64,
    /// Units of unchecked receipts (the node has no `--rpc`/`--contract`): claimed, unconfirmed.
    pub units_unconfirmed: u64,
    /// Units of receipts waiting for their check.
    pub units_pending: u64,
    /// Receipts received, in all states.
    pub receipts: u64,
    /// Receipts verified on chain.
    pub receipts_verified: u64,
    /// Receipts waiting for their check.
    pub receipts_pending: u64,
    /// Receipts that failed their check (never counted).
    pub receipts_failed: u64,
    /// Receipts not checked (no chain configured).
    pub receipts_unchecked: u64,
}

const SEQ: &[u8] = b"seq";
const TOTALS: &[u8] = b"totals";

/// The node's sled database with typed trees.
#[derive(Clone)]
pub struct NodeStore {
    path: String,
    db: sled::Db,
    meta: sled::Tree,
    jobs: sled::Tree,
    outbox: sled::Tree,
    /// Job id → [`crate::receipts::StoredReceipt`].
    receipts: sled::Tree,
    /// Pending receipts by due time: next check (unix ms, BE) ‖ job id → nothing.
    receipt_checks: sled::Tree,
    /// Failed receipts by time: failed at (unix ms, BE) ‖ job id → [`crate::receipts::FailedReceipt`].
    receipt_failures: sled::Tree,
    /// Flushes shared between concurrent writers.
    group: std::sync::Arc<GroupFlush>,
}

impl std::fmt::Debug for NodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStore")
            .field("path", &self.path)
            .finish()
    }
}

/// The key of one attempt: job id then attempt, big-endian, so a job's attempts sort together.
fn attempt_key(job: &JobId, attempt: u32) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..32].copy_from_slice(job.as_bytes());
    key[32..].copy_from_slice(&attempt.to_be_bytes());
    key
}

mod group_flush;
mod receipts;

use group_flush::GroupFlush;
pub use receipts::{Arriving, DueReceipts};

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs into a Vec cannot fail.
    serde_cbor::to_vec(value).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_cbor::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

impl NodeStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        let sled_err = |source| StoreError::Sled {
            path: path.clone(),
            source,
        };
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(sled_err)?;
        let store = NodeStore {
            meta: db.open_tree("meta").map_err(sled_err)?,
            jobs: db.open_tree("jobs").map_err(sled_err)?,
            outbox: db.open_tree("outbox").map_err(sled_err)?,
            receipts: db.open_tree("receipts").map_err(sled_err)?,
            receipt_checks: db.open_tree("receipt_checks").map_err(sled_err)?,
            receipt_failures: db.open_tree("receipt_failures").map_err(sled_err)?,
            db,
            path,
            group: Default::default(),
        };
        store.upgrade_receipts(pocmesh_protocol::unix_ms_now())?;
        Ok(store)
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    fn tx_err(&self, e: TransactionError<StoreError>) -> StoreError {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => self.err(e),
        }
    }

    /// Makes everything written so far durable.
    /// Writers that call this while another flush is under way share the next one.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.group
            .after_write(|| self.db.flush().map(|_| ()).map_err(|e| self.err(e)))
    }

    /// The next heartbeat sequence number, durable before it is returned: a restarted node
    /// never reuses one it may have published.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let next = self
            .meta
            .update_and_fetch(SEQ, |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                Some(n.saturating_add(1).to_be_bytes().to_vec())
            })
            .map_err(|e| self.err(e))?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(1);
        self.flush()?;
        Ok(next)
    }

    /// The last sequence number handed out (0 if none).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(SEQ)
            .map_err(|e| self.err(e))?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Running totals.
    pub fn totals(&self) -> Result<Totals, StoreError> {
        match self.meta.get(TOTALS).map_err(|e| self.err(e))? {
            Some(b) => decode("meta", &b),
            None => Ok(Totals::default()),
        }
    }

    /// Records an accepted offer as running, durable when this returns (before the acceptance
    /// is sent). The flush runs on a blocking thread, shared with other writers.
    pub async fn job_accepted(&self, record: &JobRecord) -> Result<(), StoreError> {
        self.jobs
            .insert(attempt_key(&record.job, record.attempt), encode(record))
            .map_err(|e| self.err(e))?;
        self.flush_async().await
    }

    /// Records several accepted offers as running in one write, durable when this returns
    /// (one flush for all of them, as for a `job_offers` message).
    pub async fn jobs_accepted(&self, records: &[JobRecord]) -> Result<(), StoreError> {
        // Plain inserts, not a batch: each acceptance stands on its own, and a sled batch (or
        // transaction) forces a log write of its own before the flush writes another.
        for r in records {
            self.jobs
                .insert(attempt_key(&r.job, r.attempt), encode(r))
                .map_err(|e| self.err(e))?;
        }
        self.flush_async().await
    }

    /// [`NodeStore::flush`] on a blocking thread, so an async caller's thread keeps serving
    /// the network while the disk works.
    pub async fn flush_async(&self) -> Result<(), StoreError> {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(result) => result,
            // The blocking pool only fails to run this when the runtime is going away.
            Err(_) => self.flush(),
        }
    }

    /// One attempt's record.
    pub fn job(&self, job: &JobId, attempt: u32) -> Result<Option<JobRecord>, StoreError> {
        match self
            .jobs
            .get(attempt_key(job, attempt))
            .map_err(|e| self.err(e))?
        {
            Some(b) => decode("jobs", &b).map(Some),
            None => Ok(None),
        }
    }

    /// Whether this node already holds any attempt of `job` (a repeated offer is declined).
    pub fn knows_attempt(&self, job: &JobId, attempt: u32) -> Result<bool, StoreError> {
        self.jobs
            .contains_key(attempt_key(job, attempt))
            .map_err(|e| self.err(e))
    }

    /// Every attempt in one state.
    pub fn jobs_in(&self, state: fn(&JobState) -> bool) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = Vec::new();
        for row in self.jobs.iter() {
            let (_, v) = row.map_err(|e| self.err(e))?;
            let r: JobRecord = decode("jobs", &v)?;
            if state(&r.state) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The most recent attempts, newest first, at most `limit`.
    pub fn recent_jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let mut all = self.jobs_in(|_| true)?;
        all.sort_by_key(|r| std::cmp::Reverse(r.accepted_ms));
        all.truncate(limit);
        Ok(all)
    }

    /// A job finished: its record moves to awaiting-ack and the signed result enters the
    /// outbox, in one transaction. `WrongState` when the attempt is no longer running.
    pub fn job_finished(
        &self,
        record: &JobRecord,
        pending: &PendingResult,
    ) -> Result<(), StoreError> {
        let mut outcome = self.jobs_finished(&[(record.clone(), pending.clone())])?;
        outcome.pop().unwrap_or(Ok(()))
    }

    /// [`NodeStore::job_finished`] for several jobs in one transaction (one log write instead
    /// of one each): each one's outcome, in order; an attempt no longer running is left as it
    /// is (`WrongState`) and the others are still stored.
    pub fn jobs_finished(
        &self,
        done: &[(JobRecord, PendingResult)],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        (&self.jobs, &self.outbox, &self.meta)
            .transaction(|(jobs, outbox, meta)| {
                let mut outcomes = Vec::with_capacity(done.len());
                let mut totals: Totals = match meta.get(TOTALS)? {
                    Some(b) => decode("meta", &b).map_err(ConflictableTransactionError::Abort)?,
                    None => Totals::default(),
                };
                for (record, pending) in done {
                    let key = attempt_key(&record.job, record.attempt);
                    // Only a running attempt finishes: one handed back at shutdown stays
                    // handed back.
                    let current: Option<JobRecord> = match jobs.get(&key[..])? {
                        Some(b) => {
                            Some(decode("jobs", &b).map_err(ConflictableTransactionError::Abort)?)
                        }
                        None => None,
                    };
                    if current.is_some_and(|c| c.state != JobState::Running) {
                        outcomes.push(Err(StoreError::WrongState {
                            job: record.job,
                            attempt: record.attempt,
                            expected: "running",
                        }));
                        continue;
                    }
                    jobs.insert(&key[..], encode(record))?;
                    outbox.insert(&key[..], encode(pending))?;
                    if matches!(
                        record.state,
                        JobState::AwaitingAck {
                            status: ResultStatus::Failed
                        }
                    ) {
                        totals.jobs_failed += 1;
                    } else {
                        totals.jobs_done += 1;
                    }
                    outcomes.push(Ok(()));
                }
                meta.insert(TOTALS, encode(&totals))?;
                Ok(outcomes)
            })
            .map_err(|e| self.tx_err(e))
        // Not flushed here (sled writes it out within half a second): if the node dies before
        // that, the attempt is still `running` in the store and is handed back as failed at
        // the next start; a dispatcher that got the result keeps it. Nothing is lost, and one
        // fsync per job is saved.
    }

    /// Results not yet acknowledged, in key order.
    pub fn pending_results(&self) -> Result<Vec<PendingResult>, StoreError> {
        let mut out = Vec::new();
        for row in self.outbox.iter() {
            let (_, v) = row.map_err(|e| self.err(e))?;
            out.push(decode("outbox", &v)?);
        }
        Ok(out)
    }

    /// Schedules the next delivery try of a pending result.
    pub fn reschedule(&self, pending: &PendingResult) -> Result<(), StoreError> {
        let key = attempt_key(&pending.job, pending.attempt);
        // Only if still pending: an acknowledgement may have raced this.
        if self.outbox.contains_key(key).map_err(|e| self.err(e))? {
            self.outbox
                .insert(key, encode(pending))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The dispatcher acknowledged a result: it leaves the outbox and the job is delivered.
    pub fn result_acknowledged(&self, job: &JobId, attempt: u32) -> Result<(), StoreError> {
        self.results_acknowledged(&[(*job, attempt)])
    }

    /// [`NodeStore::result_acknowledged`] for several results (the answers to one
    /// `job_results` message). Plain writes, not a transaction (which forces a log write of its
    /// own): each job is marked delivered before its result leaves the outbox, so a crash in
    /// between can only make the node send a result once more, which the dispatcher answers
    /// as a repeat.
    pub fn results_acknowledged(&self, attempts: &[(JobId, u32)]) -> Result<(), StoreError> {
        for (job, attempt) in attempts {
            let key = attempt_key(job, *attempt);
            if let Some(b) = self.jobs.get(key).map_err(|e| self.err(e))? {
                let mut r: JobRecord = decode("jobs", &b)?;
                if let JobState::AwaitingAck { status } = r.state {
                    r.state = JobState::Delivered { status };
                    // Only over the row just read: a receipt that credited it meanwhile wins.
                    let _ = self
                        .jobs
                        .compare_and_swap(key, Some(b), Some(encode(&r)))
                        .map_err(|e| self.err(e))?;
                }
            }
            self.outbox.remove(key).map_err(|e| self.err(e))?;
        }
        Ok(())
        // Not flushed: lost only in a crash within half a second, and then the result is sent
        // once more and acknowledged again (the dispatcher answers repeats).
    }

    /// The attempt of `job` this node ran that produced `result_hash`, if any.
    pub fn attempt_with_result(
        &self,
        job: &JobId,
        result_hash: &Hash32,
    ) -> Result<Option<u32>, StoreError> {
        for row in self.jobs.scan_prefix(job.as_bytes()) {
            let (_, v) = row.map_err(|e| self.err(e))?;
            let r: JobRecord = decode("jobs", &v)?;
            if r.result_hash.as_ref() == Some(result_hash) {
                return Ok(Some(r.attempt));
            }
        }
        Ok(None)
    }
}

/// Opens the store at `dir` again in the same process: sled's flusher thread may hold the file
/// lock for a moment after the previous handle is dropped (a restarted node is a new process and
/// never sees this).
#[cfg(test)]
pub(crate) fn reopen(dir: &Path) -> NodeStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match NodeStore::open(dir) {
            Ok(s) => return s,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(job: JobId, attempt: u32, state: JobState) -> JobRecord {
        JobRecord {
            job,
            attempt,
            dispatcher: Address::from([7u8; 20]),
            dispatcher_peer: "peer".into(),
            job_type: JobType::Hash,
            state,
            accepted_ms: 1,
            finished_ms: None,
            result_hash: None,
            error: None,
        }
    }

    #[test]
    fn seq_survives_reopen_and_only_grows() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let s = NodeStore::open(dir.path()).expect("open");
            assert_eq!(s.next_seq().expect("seq"), 1);
            assert_eq!(s.next_seq().expect("seq"), 2);
        }
        let s = reopen(dir.path());
        assert_eq!(s.last_seq().expect("last"), 2);
        assert_eq!(s.next_seq().expect("seq"), 3);
    }

    fn finished_pair(job: JobId, attempt: u32) -> (JobRecord, PendingResult) {
        let mut done = record(
            job,
            attempt,
            JobState::AwaitingAck {
                status: ResultStatus::Ok,
            },
        );
        done.result_hash = Some(Hash32([attempt as u8; 32]));
        let pending = PendingResult {
            job,
            attempt,
            dispatcher_peer: "peer".into(),
            result: pocmesh_protocol::JobResult {
                job,
                attempt,
                status: ResultStatus::Ok,
                output: None,
                result_hash: Hash32([attempt as u8; 32]),
                metering: Default::default(),
                error: None,
            },
            tries: 0,
            next_try_ms: 0,
        };
        (done, pending)
    }

    #[tokio::test]
    async fn a_message_of_jobs_is_accepted_finished_and_acknowledged_in_one_write_each() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = NodeStore::open(dir.path()).expect("open");
        let jobs: Vec<JobId> = (1..=4u8).map(|i| JobId::from([i; 32])).collect();
        let running: Vec<JobRecord> = jobs
            .iter()
            .map(|j| record(*j, 1, JobState::Running))
            .collect();
        s.jobs_accepted(&running).await.expect("accept");
        for j in &jobs {
            assert!(s.knows_attempt(j, 1).expect("read"));
        }
        // The third was handed back meanwhile: it stays handed back, the others finish.
        let mut handed = running[2].clone();
        handed.state = JobState::AwaitingAck {
            status: ResultStatus::Failed,
        };
        s.jobs
            .insert(attempt_key(&jobs[2], 1), encode(&handed))
            .expect("write");
        let done: Vec<_> = jobs.iter().map(|j| finished_pair(*j, 1)).collect();
        let outcomes = s.jobs_finished(&done).expect("finish");
        assert_eq!(outcomes.len(), 4);
        assert!(outcomes[0].is_ok() && outcomes[1].is_ok() && outcomes[3].is_ok());
        assert!(matches!(outcomes[2], Err(StoreError::WrongState { .. })));
        assert_eq!(s.totals().expect("totals").jobs_done, 3);
        assert_eq!(s.pending_results().expect("pending").len(), 3);
        let acked: Vec<(JobId, u32)> = vec![(jobs[0], 1), (jobs[3], 1)];
        s.results_acknowledged(&acked).expect("ack");
        let left: Vec<JobId> = s
            .pending_results()
            .expect("pending")
            .into_iter()
            .map(|p| p.job)
            .collect();
        assert_eq!(left, vec![jobs[1]]);
        assert_eq!(
            s.job(&jobs[3], 1).expect("get").expect("row").state,
            JobState::Delivered {
                status: ResultStatus::Ok
            }
        );
    }

    #[tokio::test]
    async fn a_result_stays_pending_until_acknowledged_and_counts_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = NodeStore::open(dir.path()).expect("open");
        let job = JobId::from([1u8; 32]);
        s.job_accepted(&record(job, 1, JobState::Running))
            .await
            .expect("accept");
        let mut done = record(
            job,
            1,
            JobState::AwaitingAck {
                status: ResultStatus::Ok,
            },
        );
        done.result_hash = Some(Hash32([9u8; 32]));
        let pending = PendingResult {
            job,
            attempt: 1,
            dispatcher_peer: "peer".into(),
            result: pocmesh_protocol::JobResult {
                job,
                attempt: 1,
                status: ResultStatus::Ok,
                output: None,
                result_hash: Hash32([9u8; 32]),
                metering: Default::default(),
                error: None,
            },
            tries: 0,
            next_try_ms: 0,
        };
        s.job_finished(&done, &pending).expect("finish");
        assert_eq!(s.pending_results().expect("pending"), vec![pending.clone()]);
        assert_eq!(s.totals().expect("totals").jobs_done, 1);
        s.result_acknowledged(&job, 1).expect("ack");
        assert!(s.pending_results().expect("pending").is_empty());
        // A late reschedule after the ack must not resurrect it.
        s.reschedule(&pending).expect("reschedule");
        assert!(s.pending_results().expect("pending").is_empty());
        let r = s.job(&job, 1).expect("get").expect("exists");
        assert_eq!(
            r.state,
            JobState::Delivered {
                status: ResultStatus::Ok
            }
        );
        let receipt = pocmesh_protocol::Receipt {
            job,
            batch: pocmesh_protocol::BatchId::from([2u8; 32]),
            tx: Hash32([3u8; 32]),
            block: 5,
            units: 4,
            provider: Address::from([8u8; 20]),
            result_hash: Hash32([9u8; 32]),
            proof: vec![],
        };
        let pending = crate::receipts::ReceiptState::pending(10);
        assert!(
            s.receipt(&receipt, Some(1), pending.clone(), 10)
                .expect("receipt")
        );
        assert!(
            !s.receipt(&receipt, Some(1), pending, 11).expect("again"),
            "stored once"
        );
        let totals = s.totals().expect("totals");
        assert_eq!((totals.receipts, totals.receipts_pending), (1, 1));
        assert_eq!(totals.units_pending, 4);
        assert_eq!(totals.units_earned, 0, "not earned before its check");
        assert_eq!(
            s.job(&job, 1).expect("get").expect("exists").state,
            JobState::Credited { units: 4 }
        );
    }
}
