//! The outbox → chain path: verified credits wait in the outbox until there are enough of them
//! (or the oldest is old enough); then one batch is cut at a job boundary, persisted with a
//! content-derived id, and handed to the recorder. When it lands, its jobs are `recorded` and
//! each node gets its receipt with the Merkle proof. One batch is in flight at a time, so
//! transactions from this key never race each other.
//!
//! No credit holds the others back: what the contract would refuse is screened out when a batch
//! is cut (the same rules as `BatchPlan`), and whatever the contract still refuses when the
//! recorder asks it first (`eth_call`) is quarantined by wallet while the rest go again.

use std::collections::{HashMap, HashSet};

use pocmesh_protocol::{Address, BatchId, BatchPlan, Hash32, JobId, Receipt};
use tracing::{info, warn};

use crate::engine::Engine;
use crate::engine::Outgoing;
use crate::lifecycle::{Credit, JobState, QuarantinedCredit};
use crate::net::leaf_of;
use crate::store::{BatchRow, BatchStatus};
use crate::verify::unrecordable;

/// An outbox entry: its sequence number and the credit.
type Entry = (u64, Credit);

/// Splits credits into those a batch can carry and those it never can, with the reason: the
/// contract's refusals (zero wallet, zero units), the contract's own address, and a second
/// credit of one node for one job.
pub(crate) fn screen(
    credits: Vec<Entry>,
    contract: Option<Address>,
) -> (Vec<Entry>, Vec<(Entry, String)>) {
    let mut seen: HashSet<(JobId, Address)> = HashSet::new();
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for (seq, c) in credits {
        if let Some(reason) = unrecordable(&c, contract) {
            refused.push(((seq, c), reason));
        } else if !seen.insert((c.job, c.node)) {
            refused.push(((seq, c), "a second credit of this node for this job".into()));
        } else {
            ok.push((seq, c));
        }
    }
    (ok, refused)
}

impl Engine {
    /// Cuts a batch when the outbox is full enough or old enough.
    pub(crate) fn maybe_batch(&mut self) {
        if self.batch_in_flight.is_some() || self.outbox.is_empty() {
            return;
        }
        let now = self.now();
        let settings = &self.config.batch;
        let old = self
            .outbox_since_ms
            .is_some_and(|t| now.saturating_sub(t) >= settings.max_age_ms);
        if self.outbox.len() < settings.max_credits && !old {
            return;
        }
        let mut take = self.outbox.len().min(settings.max_credits);
        // Never split one job's credits over two batches.
        while take < self.outbox.len() && self.outbox[take].1.job == self.outbox[take - 1].1.job {
            take += 1;
        }
        let drained: Vec<_> = self.outbox.drain(..take).collect();
        let (taken, refused) = screen(drained, self.config.contract);
        for ((seq, credit), reason) in refused {
            self.changes.outbox_remove.push(seq);
            self.set_aside(credit, reason);
        }
        self.metrics.outbox.set(self.outbox.len() as i64);
        if taken.is_empty() {
            self.outbox_since_ms = (!self.outbox.is_empty()).then_some(now);
            return;
        }
        let credits: Vec<_> = taken.iter().map(|(_, c)| c.clone()).collect();
        let plan = match BatchPlan::new(credits.iter().map(leaf_of).collect()) {
            Ok(p) => p,
            Err(e) => {
                // Cannot happen after `screen` (it applies BatchPlan's rules); if it does, the
                // credits stay rather than vanish.
                warn!(error = %e, "cannot build a batch; the credits stay in the outbox");
                for entry in taken.into_iter().rev() {
                    self.outbox.push_front(entry);
                }
                return;
            }
        };
        let row = BatchRow {
            id: plan.batch_id,
            root: plan.root,
            credits,
            seqs: taken.iter().map(|(seq, _)| *seq).collect(),
            status: BatchStatus::Pending,
            created_ms: now,
        };
        self.changes
            .outbox_remove
            .extend(taken.iter().map(|(seq, _)| *seq));
        self.changes.batches.push(row.clone());
        let jobs: HashSet<JobId> = row.credits.iter().map(|c| c.job).collect();
        // Written with the job's next change (its `recorded`, when the batch lands within a
        // second): the batch row written now says which jobs are recording, and a restart
        // reads it from there (`Engine::load`).
        for id in jobs {
            self.set_state_later(id, JobState::Recording { batch: row.id });
        }
        info!(batch = %row.id, credits = row.credits.len(), units = plan.total_units(), "batch cut");
        self.outbox_since_ms = if self.outbox.is_empty() {
            None
        } else {
            Some(now)
        };
        self.metrics.outbox.set(self.outbox.len() as i64);
        self.batch_in_flight = Some(row.clone());
        self.outgoing.push(Outgoing::Record(row));
    }

    /// Quarantines a credit that left the outbox, and ends its job when nothing of it is left
    /// to record.
    fn set_aside(&mut self, credit: Credit, reason: String) {
        let id = credit.job;
        let q = QuarantinedCredit {
            credit,
            reason,
            at_ms: self.now(),
        };
        if let Some(job) = self.jobs.get_mut(&id) {
            job.credits
                .retain(|c| !(c.node == q.credit.node && c.wallet == q.credit.wallet));
            job.quarantined.push(q.clone());
        }
        self.quarantine(q);
        self.touch(id);
        let left = self.jobs.get(&id).map_or(1, |j| j.credits.len());
        if left == 0 {
            self.fail(
                id,
                "verified, but none of its credits can ever be recorded (see its quarantined credits)"
                    .into(),
            );
        }
    }

    /// The recorder found that the contract refuses `provider` in the batch in flight: its
    /// credits are quarantined, the others go back to the head of the outbox for the next batch.
    pub(crate) fn on_batch_refused(&mut self, batch: BatchId, provider: Address, reason: String) {
        let Some(mut row) = self.batch_in_flight.take_if(|b| b.id == batch) else {
            warn!(%batch, "a refusal for a batch that is not the one in flight");
            return;
        };
        warn!(%batch, %provider, %reason, "the contract refuses one wallet of the batch; quarantining its credits and cutting again");
        row.status = BatchStatus::Refused {
            reason: format!("{provider}: {reason}"),
        };
        self.changes.batches.push(row.clone());
        let jobs: HashSet<JobId> = row.credits.iter().map(|c| c.job).collect();
        for id in &jobs {
            self.set_state(*id, JobState::Verified);
        }
        // Old rows carry no sequence numbers: give them new ones at the head.
        let mut seqs = row.seqs.clone();
        if seqs.len() != row.credits.len() {
            seqs = Vec::new();
        }
        let mut back = Vec::new();
        for (i, credit) in row.credits.into_iter().enumerate() {
            if credit.wallet == provider {
                self.set_aside(credit, format!("the contract refuses it: {reason}"));
                continue;
            }
            let seq = match seqs.get(i) {
                Some(seq) => *seq,
                None => {
                    self.counters.outbox_seq += 1;
                    self.changes.counters = Some(self.counters);
                    self.counters.outbox_seq
                }
            };
            self.changes.outbox_add.push((seq, credit.clone()));
            back.push((seq, credit));
        }
        for entry in back.into_iter().rev() {
            self.outbox.push_front(entry);
        }
        if !self.outbox.is_empty() {
            // Due at once: these credits already waited their turn.
            self.outbox_since_ms = Some(0);
        }
        self.metrics.outbox.set(self.outbox.len() as i64);
    }

    /// The recorder reports a batch on chain.
    pub(crate) fn on_batch_landed(
        &mut self,
        batch: BatchId,
        tx: Hash32,
        block: u64,
        gas_used: Option<u64>,
    ) {
        let Some(mut row) = self.batch_in_flight.take_if(|b| b.id == batch) else {
            warn!(%batch, "a batch landed that is not the one in flight");
            return;
        };
        row.status = BatchStatus::Recorded {
            tx,
            block,
            gas_used,
        };
        let units: u64 = row.credits.iter().map(|c| c.units).sum();
        self.counters.units_recorded += units;
        self.counters.batches_recorded += 1;
        self.changes.counters = Some(self.counters);
        self.changes.batches.push(row.clone());
        self.metrics.batches_recorded.inc();
        self.metrics.units_recorded.inc_by(units);
        let jobs: HashSet<JobId> = row.credits.iter().map(|c| c.job).collect();
        for id in jobs {
            self.set_state(id, JobState::Recorded { batch, tx, block });
        }
        match BatchPlan::new(row.credits.iter().map(leaf_of).collect()) {
            Ok(plan) => {
                // One message per node (or per `batch` of its receipts) where the node takes
                // them together: one signature and one stream instead of one per credit.
                let mut per_peer: HashMap<String, (usize, Vec<Receipt>)> = HashMap::new();
                for (i, c) in row.credits.iter().enumerate() {
                    let Ok(proof) = plan.proof(i) else {
                        continue;
                    };
                    let batch_size = self
                        .registry
                        .get(&c.node)
                        .map_or(0, |e| e.caps.receipts_batch as usize)
                        .min(pocmesh_protocol::MAX_BATCH_ITEMS);
                    per_peer
                        .entry(c.peer.clone())
                        .or_insert_with(|| (batch_size, Vec::new()))
                        .1
                        .push(Receipt {
                            job: c.job,
                            batch,
                            tx,
                            block,
                            units: c.units,
                            provider: c.wallet,
                            result_hash: c.result_hash,
                            proof,
                        });
                }
                for (peer, (batch, receipts)) in per_peer {
                    self.outgoing.push(Outgoing::Receipts {
                        peer,
                        receipts,
                        batch,
                    });
                }
            }
            Err(e) => warn!(%batch, error = %e, "cannot build receipts"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credit(job: u8, node: u8, wallet: Address, units: u64) -> Credit {
        Credit {
            job: JobId::from([job; 32]),
            node: Address([node; 20]),
            peer: String::new(),
            wallet,
            units,
            result_hash: Hash32::ZERO,
        }
    }

    #[test]
    fn screening_keeps_what_a_batch_can_carry_and_names_the_rest() {
        let contract = Address([0xcc; 20]);
        let ok = Address([1; 20]);
        let credits = vec![
            (1, credit(1, 1, ok, 2)),
            (2, credit(2, 2, Address::ZERO, 1)),
            (3, credit(3, 3, contract, 1)),
            (4, credit(4, 4, ok, 0)),
            (5, credit(1, 1, ok, 2)),
            (6, credit(5, 5, ok, 1)),
        ];
        let (kept, refused) = screen(credits, Some(contract));
        assert_eq!(kept.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 6]);
        let reasons: Vec<(u64, &str)> =
            refused.iter().map(|((s, _), r)| (*s, r.as_str())).collect();
        assert_eq!(reasons.len(), 4);
        assert!(reasons[0].1.contains("zero address") && reasons[0].0 == 2);
        assert!(reasons[1].1.contains("contract"));
        assert!(reasons[2].1.contains("zero units"));
        assert!(reasons[3].1.contains("second credit"));
        // What is kept always makes a batch.
        let plan = BatchPlan::new(kept.iter().map(|(_, c)| leaf_of(c)).collect());
        assert!(plan.is_ok());
    }
}
