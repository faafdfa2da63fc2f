//! Receipts: a dispatcher's word that a job's credit is on chain, which the node checks before
//! it counts the units. A receipt is acknowledged as soon as it is stored; checking it is this
//! module's background task, so a dispatcher never waits on the node's RPC.
//!
//! - [`ReceiptState`]: the lifecycle (pending → verified | failed; unchecked without a chain),
//!   with pure transitions and the retry rule [`RecheckPolicy`].
//! - [`ReceiptChecker`]: the chain access (batch roots, cached) and the proof check.
//! - [`check_due`]: one pass over the receipts that are due, bounded; [`run`] repeats it.

mod checker;
mod state;

use std::sync::Arc;
use std::time::Duration;

use pocmesh_protocol::unix_ms_now;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use checker::{ROOT_CACHE_CAPACITY, ReceiptChecker, ReceiptOwner};
pub use state::{
    CheckOutcome, FailedReceipt, ReceiptFailure, ReceiptState, ReceiptTransitionError,
    RecheckPolicy, StoredReceipt, arrival_state,
};

use crate::daemon::NodeCore;
use crate::store::{NodeStore, StoreError};

/// Receipts checked in one pass at most: after a long RPC outage many may be due, and one
/// pass must not keep the task from noticing shutdown or new receipts for long.
pub const CHECKS_PER_PASS: usize = 32;
/// Longest sleep between passes when nothing is due and nothing wakes the task.
const IDLE: Duration = Duration::from_secs(60);
/// Sleep after the store failed, before trying again.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Receipts found verified.
    pub verified: u32,
    /// Their units.
    pub units_verified: u64,
    /// Receipts found failed.
    pub failed: u32,
    /// Receipts checked and still pending (chain unreachable, batch not visible yet).
    pub still_pending: u32,
    /// When the next pending receipt falls due, unix ms.
    pub next_due_ms: Option<u64>,
}

/// Checks the pending receipts due at `now_ms`, at most `limit`, and stores what was found.
/// Once the chain fails to answer in a pass, the rest of the pass's receipts are rescheduled
/// without asking again: each would wait out the same RPC retries.
pub async fn check_due(
    store: &NodeStore,
    checker: &ReceiptChecker,
    now_ms: u64,
    limit: usize,
) -> Result<PassReport, StoreError> {
    let due = store.receipts_due(now_ms, limit)?;
    let mut report = PassReport {
        next_due_ms: due.next_due_ms,
        ..PassReport::default()
    };
    let mut chain_down: Option<String> = None;
    for row in &due.due {
        let r = &row.receipt;
        let outcome = match &chain_down {
            Some(reason) => CheckOutcome::Unavailable {
                reason: reason.clone(),
            },
            None => checker.check(r).await,
        };
        if chain_down.is_none()
            && let CheckOutcome::Unavailable { reason } = &outcome
        {
            chain_down = Some(reason.clone());
        }
        let state = store.receipt_checked(&r.job, &outcome, checker.policy(), now_ms)?;
        match &state {
            ReceiptState::Verified { .. } => {
                report.verified += 1;
                report.units_verified = report.units_verified.saturating_add(r.units);
                debug!(job = %r.job, batch = %r.batch, units = r.units, "receipt verified on chain");
            }
            ReceiptState::Failed { reason, .. } => {
                report.failed += 1;
                warn!(job = %r.job, batch = %r.batch, units = r.units, %reason, "receipt failed its check; its units do not count");
            }
            ReceiptState::Pending {
                checks,
                next_check_ms,
                ..
            } => {
                report.still_pending += 1;
                report.next_due_ms = Some(
                    report
                        .next_due_ms
                        .map_or(*next_check_ms, |t| t.min(*next_check_ms)),
                );
                debug!(
                    job = %r.job,
                    batch = %r.batch,
                    checks,
                    outcome = outcome.name(),
                    in_ms = next_check_ms.saturating_sub(now_ms),
                    "receipt not settled yet; checking again later"
                );
            }
            ReceiptState::Unchecked => {}
        }
    }
    if report.verified > 0 {
        info!(
            receipts = report.verified,
            units = report.units_verified,
            "receipts verified on chain; units earned"
        );
    }
    if let Some(reason) = chain_down {
        warn!(%reason, "cannot check receipts on chain now; they stay pending and are checked again later (check --rpc)");
    }
    Ok(report)
}

/// Checks receipts until `stop`: when one arrives, and when a pending one falls due.
pub(crate) async fn run(
    core: Arc<NodeCore>,
    checker: Arc<ReceiptChecker>,
    stop: CancellationToken,
) {
    loop {
        let now = unix_ms_now();
        let pass = tokio::select! {
            // A check cut short changes nothing: each transition is one transaction.
            _ = stop.cancelled() => return,
            pass = check_due(&core.store, &checker, now, CHECKS_PER_PASS) => pass,
        };
        let wait = match pass {
            Ok(report) => {
                for _ in 0..report.verified {
                    core.metrics.count_receipt("verified");
                }
                for _ in 0..report.failed {
                    core.metrics.count_receipt("failed");
                }
                if let Ok(totals) = core.store.totals() {
                    core.metrics.set_receipt_totals(&totals);
                }
                report.next_due_ms.map_or(IDLE, |t| {
                    Duration::from_millis(t.saturating_sub(unix_ms_now())).min(IDLE)
                })
            }
            Err(e) => {
                warn!(error = %e, "cannot check receipts");
                STORE_RETRY
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = core.receipts_ready.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
