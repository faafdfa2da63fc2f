//! Receipts in the store. Each receipt is stored once, keyed by job, in exactly one
//! [`ReceiptState`]; every change of state rewrites the row, the per-state totals, the queue of
//! pending checks (ordered by due time, so a pass reads only what is due) and the index of
//! failures (ordered by time, for `/status`) in one transaction.

use pocmesh_protocol::{JobId, Receipt};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{NodeStore, StoreError, TOTALS, Totals, attempt_key, decode, encode};
use crate::receipts::{
    CheckOutcome, FailedReceipt, ReceiptState, ReceiptTransitionError, RecheckPolicy, StoredReceipt,
};
use crate::store::{JobRecord, JobState};

/// Marks a store whose receipt rows all carry a state (see [`NodeStore::upgrade_receipts`]).
const RECEIPTS_SCHEMA: &[u8] = b"receipts_schema";
const RECEIPTS_SCHEMA_VERSION: &[u8] = &[2];

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Key of a time-ordered index: unix ms (big-endian) then the job id.
fn timed_key(ms: u64, job: &JobId) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&ms.to_be_bytes());
    key[8..].copy_from_slice(job.as_bytes());
    key
}

fn split_timed_key(key: &[u8]) -> Option<(u64, JobId)> {
    let ms = <[u8; 8]>::try_from(key.get(..8)?).ok()?;
    let job = <[u8; 32]>::try_from(key.get(8..)?).ok()?;
    Some((u64::from_be_bytes(ms), JobId::from(job)))
}

/// What a receipt was before a write.
enum Was<'a> {
    /// Nothing: the receipt is new.
    New,
    /// A row written before receipts had states: its units were added to `units_earned`
    /// unchecked.
    Legacy,
    /// A stored state.
    In(&'a ReceiptState),
}

impl Totals {
    /// The receipt counter and, except for failed receipts, the units total of `state`.
    fn bucket(&mut self, state: &ReceiptState) -> (&mut u64, Option<&mut u64>) {
        match state {
            ReceiptState::Pending { .. } => {
                (&mut self.receipts_pending, Some(&mut self.units_pending))
            }
            ReceiptState::Verified { .. } => {
                (&mut self.receipts_verified, Some(&mut self.units_earned))
            }
            ReceiptState::Failed { .. } => (&mut self.receipts_failed, None),
            ReceiptState::Unchecked => (
                &mut self.receipts_unchecked,
                Some(&mut self.units_unconfirmed),
            ),
        }
    }

    fn enter(&mut self, state: &ReceiptState, units: u64) {
        let (count, total) = self.bucket(state);
        *count = count.saturating_add(1);
        if let Some(total) = total {
            *total = total.saturating_add(units);
        }
    }

    fn leave(&mut self, was: &Was<'_>, units: u64) {
        match was {
            Was::New => self.receipts = self.receipts.saturating_add(1),
            Was::Legacy => self.units_earned = self.units_earned.saturating_sub(units),
            Was::In(state) => {
                let (count, total) = self.bucket(state);
                *count = count.saturating_sub(1);
                if let Some(total) = total {
                    *total = total.saturating_sub(units);
                }
            }
        }
    }
}

/// The trees a receipt write touches, inside one transaction.
struct ReceiptTx<'a> {
    receipts: &'a TransactionalTree,
    checks: &'a TransactionalTree,
    failures: &'a TransactionalTree,
    meta: &'a TransactionalTree,
}

impl ReceiptTx<'_> {
    fn row(&self, job: &JobId) -> TxResult<Option<StoredReceipt>> {
        match self.receipts.get(job.as_bytes())? {
            Some(b) => decode("receipts", &b)
                .map(Some)
                .map_err(ConflictableTransactionError::Abort),
            None => Ok(None),
        }
    }

    /// Writes `row`, which was `was`, keeping the totals and both indexes in step.
    fn put(&self, was: Was<'_>, row: &StoredReceipt) -> TxResult<()> {
        let job = row.receipt.job;
        let units = row.receipt.units;
        if let Was::In(old) = &was
            && let Some(due) = old.next_check_ms()
        {
            self.checks.remove(&timed_key(due, &job)[..])?;
        }
        if let Some(due) = row.state.next_check_ms() {
            self.checks
                .insert(&timed_key(due, &job)[..], Vec::<u8>::new())?;
        }
        if let ReceiptState::Failed { reason, at_ms } = &row.state {
            let failed = FailedReceipt {
                job,
                batch: row.receipt.batch,
                units,
                reason: reason.clone(),
                at_ms: *at_ms,
            };
            self.failures
                .insert(&timed_key(*at_ms, &job)[..], encode(&failed))?;
        }
        let mut totals: Totals = match self.meta.get(TOTALS)? {
            Some(b) => decode("meta", &b).map_err(ConflictableTransactionError::Abort)?,
            None => Totals::default(),
        };
        totals.leave(&was, units);
        totals.enter(&row.state, units);
        self.meta.insert(TOTALS, encode(&totals))?;
        self.receipts.insert(&job.as_bytes()[..], encode(row))?;
        Ok(())
    }
}

/// Pending receipts due for a check, and when the next one falls due.
#[derive(Debug, Clone, PartialEq)]
pub struct DueReceipts {
    /// Receipts due now, earliest first.
    pub due: Vec<StoredReceipt>,
    /// When the next receipt not in `due` falls due (now, if the limit cut the list short).
    pub next_due_ms: Option<u64>,
}

/// A receipt as it arrives, with the attempt it credits and the state it is stored in.
#[derive(Debug, Clone)]
pub struct Arriving {
    /// The receipt.
    pub receipt: Receipt,
    /// The attempt of this node's it credits, if known.
    pub attempt: Option<u32>,
    /// Pending, unchecked or failed (never verified: only a check makes it so).
    pub state: ReceiptState,
}

impl NodeStore {
    fn receipt_tx<T>(&self, f: impl Fn(&ReceiptTx<'_>) -> TxResult<T>) -> Result<T, StoreError> {
        (
            &self.receipts,
            &self.receipt_checks,
            &self.receipt_failures,
            &self.meta,
        )
            .transaction(|(receipts, checks, failures, meta)| {
                f(&ReceiptTx {
                    receipts,
                    checks,
                    failures,
                    meta,
                })
            })
            .map_err(|e| self.tx_err(e))
    }

    /// A receipt arrived: stored once in state `initial` (pending, unchecked, or failed when
    /// the node can tell at once), flushed before it returns, so it can be acknowledged. The
    /// attempt it credits is marked credited and leaves the outbox (a receipt implies the
    /// result arrived, even if its ack was lost). Returns whether it was new; a repeat changes
    /// nothing. A receipt is never stored as verified: only a check makes it so.
    pub fn receipt(
        &self,
        receipt: &Receipt,
        attempt: Option<u32>,
        initial: ReceiptState,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let new = self.receipt_written(receipt, attempt, initial, now_ms)?;
        self.flush()?;
        Ok(new)
    }

    /// [`NodeStore::receipt`] for async callers: the flush runs on a blocking thread, shared
    /// with other writers, and the caller's thread stays free meanwhile.
    pub async fn receipt_durable(
        &self,
        receipt: &Receipt,
        attempt: Option<u32>,
        initial: ReceiptState,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let new = self.receipt_written(receipt, attempt, initial, now_ms)?;
        self.flush_async().await?;
        Ok(new)
    }

    /// Several arriving receipts (see [`NodeStore::receipt`]) in one transaction and one
    /// flush, as for a `receipts` message: whether each was new, in order.
    pub async fn receipts_durable(
        &self,
        arriving: &[Arriving],
        now_ms: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let new = self.receipts_written(arriving, now_ms)?;
        self.flush_async().await?;
        Ok(new)
    }

    /// Writes an arriving receipt (see [`NodeStore::receipt`]) without flushing.
    fn receipt_written(
        &self,
        receipt: &Receipt,
        attempt: Option<u32>,
        initial: ReceiptState,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let arriving = [Arriving {
            receipt: receipt.clone(),
            attempt,
            state: initial,
        }];
        Ok(self
            .receipts_written(&arriving, now_ms)?
            .pop()
            .unwrap_or(false))
    }

    /// Writes arriving receipts in one transaction without flushing: whether each was new.
    fn receipts_written(
        &self,
        arriving: &[Arriving],
        now_ms: u64,
    ) -> Result<Vec<bool>, StoreError> {
        if let Some(a) = arriving
            .iter()
            .find(|a| matches!(a.state, ReceiptState::Verified { .. }))
        {
            return Err(StoreError::ReceiptState {
                job: a.receipt.job,
                source: ReceiptTransitionError {
                    from: "new",
                    to: "verified",
                },
            });
        }
        (
            &self.receipts,
            &self.receipt_checks,
            &self.receipt_failures,
            &self.meta,
            &self.jobs,
            &self.outbox,
        )
            .transaction(|(receipts, checks, failures, meta, jobs, outbox)| {
                let tx = ReceiptTx {
                    receipts,
                    checks,
                    failures,
                    meta,
                };
                let mut new = Vec::with_capacity(arriving.len());
                for a in arriving {
                    let receipt = &a.receipt;
                    // A repeat (also within one message) changes nothing.
                    if receipts.get(receipt.job.as_bytes())?.is_some() {
                        new.push(false);
                        continue;
                    }
                    let row = StoredReceipt {
                        receipt: receipt.clone(),
                        received_ms: now_ms,
                        state: a.state.clone(),
                    };
                    tx.put(Was::New, &row)?;
                    if let Some(attempt) = a.attempt {
                        let key = attempt_key(&receipt.job, attempt);
                        outbox.remove(&key[..])?;
                        if let Some(b) = jobs.get(&key[..])? {
                            let mut r: JobRecord =
                                decode("jobs", &b).map_err(ConflictableTransactionError::Abort)?;
                            r.state = JobState::Credited {
                                units: receipt.units,
                            };
                            jobs.insert(&key[..], encode(&r))?;
                        }
                    }
                    new.push(true);
                }
                Ok(new)
            })
            .map_err(|e| self.tx_err(e))
    }

    /// Applies a check's outcome to the pending receipt of `job` and returns its new state.
    /// Not flushed: a check lost in a crash is simply made again.
    pub fn receipt_checked(
        &self,
        job: &JobId,
        outcome: &CheckOutcome,
        policy: &RecheckPolicy,
        now_ms: u64,
    ) -> Result<ReceiptState, StoreError> {
        self.receipt_transition(job, |row| {
            row.state.after_check(&row.receipt, outcome, policy, now_ms)
        })
    }

    /// Moves the receipt of `job` to the state `next` computes from its row, in one
    /// transaction.
    fn receipt_transition(
        &self,
        job: &JobId,
        next: impl Fn(&StoredReceipt) -> Result<ReceiptState, ReceiptTransitionError>,
    ) -> Result<ReceiptState, StoreError> {
        self.receipt_tx(|tx| {
            let Some(row) = tx.row(job)? else {
                return Err(ConflictableTransactionError::Abort(StoreError::NoReceipt {
                    job: *job,
                }));
            };
            let state = next(&row).map_err(|source| {
                ConflictableTransactionError::Abort(StoreError::ReceiptState { job: *job, source })
            })?;
            let updated = StoredReceipt {
                state: state.clone(),
                ..row.clone()
            };
            tx.put(Was::In(&row.state), &updated)?;
            Ok(state)
        })
    }

    /// Pending receipts due at `now_ms`, earliest first, at most `limit`.
    pub fn receipts_due(&self, now_ms: u64, limit: usize) -> Result<DueReceipts, StoreError> {
        let mut due = Vec::new();
        let mut next_due_ms = None;
        for entry in self.receipt_checks.iter() {
            let (key, _) = entry.map_err(|e| self.err(e))?;
            let Some((at, job)) = split_timed_key(&key) else {
                return Err(StoreError::Corrupt {
                    tree: "receipt_checks",
                    reason: format!("key of {} bytes", key.len()),
                });
            };
            if at > now_ms {
                next_due_ms = Some(at);
                break;
            }
            if due.len() >= limit {
                next_due_ms = Some(now_ms);
                break;
            }
            match self.stored_receipt(&job)? {
                Some(row) if row.state.next_check_ms() == Some(at) => due.push(row),
                // Written in the same transaction as its row, so never stale; were it so, a
                // stale entry would come back every pass.
                _ => {
                    self.receipt_checks.remove(&key).map_err(|e| self.err(e))?;
                }
            }
        }
        Ok(DueReceipts { due, next_due_ms })
    }

    /// The stored receipt of `job`.
    pub fn stored_receipt(&self, job: &JobId) -> Result<Option<StoredReceipt>, StoreError> {
        match self.receipts.get(job.as_bytes()).map_err(|e| self.err(e))? {
            Some(b) => decode("receipts", &b).map(Some),
            None => Ok(None),
        }
    }

    /// Failed receipts, newest first, at most `limit`.
    pub fn failed_receipts(&self, limit: usize) -> Result<Vec<FailedReceipt>, StoreError> {
        let mut out = Vec::new();
        for entry in self.receipt_failures.iter().rev().take(limit) {
            let (_, v) = entry.map_err(|e| self.err(e))?;
            out.push(decode("receipt_failures", &v)?);
        }
        Ok(out)
    }

    /// Brings stored receipts in line with how the node runs now: with a chain to ask
    /// (`checking`), unchecked receipts are queued for a check; without one, pending receipts
    /// become unchecked (nothing could ever settle them). Returns how many moved.
    pub fn reconcile_receipts(&self, checking: bool, now_ms: u64) -> Result<u64, StoreError> {
        let totals = self.totals()?;
        let mut jobs = Vec::new();
        if checking && totals.receipts_unchecked > 0 {
            for entry in self.receipts.iter() {
                let (_, v) = entry.map_err(|e| self.err(e))?;
                let row: StoredReceipt = decode("receipts", &v)?;
                if row.state == ReceiptState::Unchecked {
                    jobs.push(row.receipt.job);
                }
            }
        } else if !checking && totals.receipts_pending > 0 {
            for entry in self.receipt_checks.iter() {
                let (key, _) = entry.map_err(|e| self.err(e))?;
                if let Some((_, job)) = split_timed_key(&key) {
                    jobs.push(job);
                }
            }
        }
        for job in &jobs {
            self.receipt_transition(job, |row| {
                if checking {
                    row.state.requeued(now_ms)
                } else {
                    row.state.unqueued()
                }
            })?;
        }
        if !jobs.is_empty() {
            self.flush()?;
        }
        Ok(jobs.len() as u64)
    }

    /// Rows written before receipts had states hold a bare receipt whose units were added to
    /// `units_earned` unchecked: each becomes a pending receipt, its units taken back out of
    /// `units_earned` until a check confirms them. Runs once per store.
    pub(super) fn upgrade_receipts(&self, now_ms: u64) -> Result<(), StoreError> {
        if self
            .meta
            .get(RECEIPTS_SCHEMA)
            .map_err(|e| self.err(e))?
            .is_some()
        {
            return Ok(());
        }
        let mut legacy = Vec::new();
        for entry in self.receipts.iter() {
            let (_, v) = entry.map_err(|e| self.err(e))?;
            if decode::<StoredReceipt>("receipts", &v).is_err() {
                legacy.push(decode::<Receipt>("receipts", &v)?);
            }
        }
        for receipt in &legacy {
            let row = StoredReceipt {
                receipt: receipt.clone(),
                received_ms: now_ms,
                state: ReceiptState::pending(now_ms),
            };
            self.receipt_tx(|tx| tx.put(Was::Legacy, &row))?;
        }
        self.meta
            .insert(RECEIPTS_SCHEMA, RECEIPTS_SCHEMA_VERSION)
            .map_err(|e| self.err(e))?;
        self.flush()?;
        if !legacy.is_empty() {
            tracing::info!(
                receipts = legacy.len(),
                "receipts stored by an earlier version will be checked on chain before they count"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use pocmesh_protocol::{Address, BatchId, Hash32};

    use super::*;
    use crate::receipts::ReceiptFailure;

    fn receipt(n: u8, units: u64) -> Receipt {
        Receipt {
            job: JobId::from([n; 32]),
            batch: BatchId::from([100u8; 32]),
            tx: Hash32([3u8; 32]),
            block: 5,
            units,
            provider: Address::from([8u8; 20]),
            result_hash: Hash32([n; 32]),
            proof: vec![],
        }
    }

    const POLICY: RecheckPolicy = RecheckPolicy {
        retry_base_ms: 1_000,
        retry_max_ms: 8_000,
        not_recorded_tries: 2,
        not_recorded_grace_ms: 5_000,
    };

    #[test]
    fn only_verified_receipts_reach_units_earned() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = NodeStore::open(dir.path()).expect("open");
        let (good, bad, later) = (receipt(1, 3), receipt(2, 40), receipt(3, 500));
        for r in [&good, &bad, &later] {
            assert!(
                s.receipt(r, None, ReceiptState::pending(0), 0)
                    .expect("store")
            );
        }
        let t = s.totals().expect("totals");
        assert_eq!(
            (t.receipts, t.receipts_pending, t.units_pending),
            (3, 3, 543)
        );
        assert_eq!(t.units_earned, 0);

        let due = s.receipts_due(0, 10).expect("due");
        assert_eq!(due.due.len(), 3);
        assert_eq!(due.next_due_ms, None);
        let cut = s.receipts_due(0, 2).expect("due");
        assert_eq!(cut.due.len(), 2, "bounded work per pass");
        assert_eq!(cut.next_due_ms, Some(0), "the rest is due now");

        let v = s
            .receipt_checked(&good.job, &CheckOutcome::Verified, &POLICY, 10)
            .expect("check");
        assert_eq!(v, ReceiptState::Verified { at_ms: 10 });
        let reason = ReceiptFailure::ProofMismatch {
            batch: bad.batch,
            root: Hash32([9u8; 32]),
        };
        s.receipt_checked(&bad.job, &CheckOutcome::Failed(reason.clone()), &POLICY, 11)
            .expect("check");
        let p = s
            .receipt_checked(
                &later.job,
                &CheckOutcome::Unavailable {
                    reason: "rpc down".into(),
                },
                &POLICY,
                12,
            )
            .expect("check");
        assert_eq!(p.next_check_ms(), Some(12 + POLICY.retry_base_ms));

        let t = s.totals().expect("totals");
        assert_eq!(t.units_earned, 3, "only the verified receipt's units");
        assert_eq!(
            (t.receipts_verified, t.receipts_failed, t.receipts_pending),
            (1, 1, 1)
        );
        assert_eq!(t.units_pending, 500);
        assert_eq!(t.receipts, 3);
        assert_eq!(
            s.failed_receipts(20).expect("failed"),
            vec![FailedReceipt {
                job: bad.job,
                batch: bad.batch,
                units: 40,
                reason,
                at_ms: 11
            }]
        );

        // Nothing is due until the retry time; then only the pending receipt.
        let due = s.receipts_due(500, 10).expect("due");
        assert!(due.due.is_empty());
        assert_eq!(due.next_due_ms, Some(1_012));
        let due = s.receipts_due(1_012, 10).expect("due");
        assert_eq!(
            due.due.iter().map(|r| r.receipt.job).collect::<Vec<_>>(),
            vec![later.job]
        );

        // Settled receipts are not checked again, and nothing moved.
        let e = s
            .receipt_checked(&good.job, &CheckOutcome::Verified, &POLICY, 20)
            .expect_err("verified is final");
        assert!(matches!(e, StoreError::ReceiptState { .. }), "{e}");
        assert_eq!(s.totals().expect("totals"), t);

        // And it all survives a restart.
        drop(s);
        let s = crate::store::reopen(dir.path());
        assert_eq!(s.totals().expect("totals"), t);
        assert_eq!(
            s.stored_receipt(&good.job).expect("get").map(|r| r.state),
            Some(ReceiptState::Verified { at_ms: 10 })
        );
    }

    #[test]
    fn a_receipt_is_never_stored_as_verified() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = NodeStore::open(dir.path()).expect("open");
        let e = s
            .receipt(&receipt(1, 3), None, ReceiptState::Verified { at_ms: 0 }, 0)
            .expect_err("verified without a check");
        assert!(matches!(e, StoreError::ReceiptState { .. }), "{e}");
        assert_eq!(s.totals().expect("totals"), Totals::default());
    }

    #[test]
    fn unchecked_receipts_are_unconfirmed_until_a_chain_is_configured() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = NodeStore::open(dir.path()).expect("open");
        let r = receipt(1, 7);
        s.receipt(&r, None, ReceiptState::Unchecked, 0)
            .expect("store");
        let t = s.totals().expect("totals");
        assert_eq!(
            (t.receipts_unchecked, t.units_unconfirmed, t.units_earned),
            (1, 7, 0)
        );
        assert!(s.receipts_due(u64::MAX, 10).expect("due").due.is_empty());

        assert_eq!(s.reconcile_receipts(true, 50).expect("reconcile"), 1);
        let t = s.totals().expect("totals");
        assert_eq!((t.receipts_unchecked, t.units_unconfirmed), (0, 0));
        assert_eq!((t.receipts_pending, t.units_pending), (1, 7));
        assert_eq!(s.receipts_due(50, 10).expect("due").due.len(), 1);
        assert_eq!(s.reconcile_receipts(true, 60).expect("again"), 0);

        assert_eq!(s.reconcile_receipts(false, 70).expect("reconcile"), 1);
        let t = s.totals().expect("totals");
        assert_eq!(
            (
                t.receipts_unchecked,
                t.units_unconfirmed,
                t.receipts_pending
            ),
            (1, 7, 0)
        );
        assert!(s.receipts_due(u64::MAX, 10).expect("due").due.is_empty());
    }

    /// `Totals` as written before receipts had states.
    #[derive(serde::Serialize)]
    struct OldTotals {
        jobs_done: u64,
        jobs_failed: u64,
        units_earned: u64,
        receipts: u64,
    }

    #[test]
    fn receipts_stored_by_an_earlier_version_are_checked_before_they_count() {
        let dir = tempfile::tempdir().expect("tmp");
        let old = receipt(1, 9);
        {
            let s = NodeStore::open(dir.path()).expect("open");
            // Rewind the store to the earlier layout: a bare receipt, counted as earned.
            s.meta.remove(RECEIPTS_SCHEMA).expect("unmark");
            s.receipts
                .insert(old.job.as_bytes(), encode(&old))
                .expect("row");
            let totals = OldTotals {
                jobs_done: 2,
                jobs_failed: 1,
                units_earned: 9,
                receipts: 1,
            };
            s.meta.insert(TOTALS, encode(&totals)).expect("totals");
            s.flush().expect("flush");
        }
        let s = crate::store::reopen(dir.path());
        let t = s.totals().expect("old totals read");
        assert_eq!((t.jobs_done, t.jobs_failed, t.receipts), (2, 1, 1));
        assert_eq!(t.units_earned, 0, "not earned until checked");
        assert_eq!((t.receipts_pending, t.units_pending), (1, 9));
        let row = s.stored_receipt(&old.job).expect("get").expect("row");
        assert_eq!(row.receipt, old);
        assert_eq!(row.state.name(), "pending");
        drop(s);
        // Once only.
        let s = crate::store::reopen(dir.path());
        assert_eq!(s.totals().expect("totals"), t);
    }
}
