//! The outbox → chain path: verified credits wait in the outbox until there are enough of them
//! (or the oldest is old enough); then one batch is cut at a job boundary, persisted with a
//! content-derived id, and handed to the recorder. When it lands, its jobs are `recorded` and
//! each node gets its receipt with the Merkle proof. One batch is in flight at a time, so
//! transactions from this key never race each other.

use std::collections::HashSet;

use pocmesh_protocol::{BatchId, BatchPlan, Hash32, JobId, Receipt, unix_ms_now};
use tracing::{info, warn};

use crate::engine::Engine;
use crate::lifecycle::JobState;
use crate::net::{Outgoing, leaf_of};
use crate::store::{BatchRow, BatchStatus};

impl Engine {
    /// Cuts a batch when the outbox is full enough or old enough.
    pub(crate) fn maybe_batch(&mut self) {
        if self.batch_in_flight.is_some() || self.outbox.is_empty() {
            return;
        }
        let now = unix_ms_now();
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
        let taken: Vec<_> = self.outbox.drain(..take).collect();
        let credits: Vec<_> = taken.iter().map(|(_, c)| c.clone()).collect();
        let plan = match BatchPlan::new(credits.iter().map(leaf_of).collect()) {
            Ok(p) => p,
            Err(e) => {
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
            status: BatchStatus::Pending,
            created_ms: now,
        };
        self.changes
            .outbox_remove
            .extend(taken.iter().map(|(seq, _)| *seq));
        self.changes.batches.push(row.clone());
        let jobs: HashSet<JobId> = row.credits.iter().map(|c| c.job).collect();
        for id in jobs {
            self.set_state(id, JobState::Recording { batch: row.id });
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

    /// The recorder reports a batch on chain.
    pub(crate) fn on_batch_landed(&mut self, batch: BatchId, tx: Hash32, block: u64) {
        let Some(mut row) = self.batch_in_flight.take_if(|b| b.id == batch) else {
            warn!(%batch, "a batch landed that is not the one in flight");
            return;
        };
        row.status = BatchStatus::Recorded { tx, block };
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
                for (i, c) in row.credits.iter().enumerate() {
                    let Ok(proof) = plan.proof(i) else {
                        continue;
                    };
                    self.outgoing.push(Outgoing::Receipt {
                        peer: c.peer.clone(),
                        receipt: Receipt {
                            job: c.job,
                            batch,
                            tx,
                            block,
                            units: c.units,
                            provider: c.wallet,
                            result_hash: c.result_hash,
                            proof,
                        },
                    });
                }
            }
            Err(e) => warn!(%batch, error = %e, "cannot build receipts"),
        }
    }
}
