//! The node's activity line: once a minute, at info, what the node did since the previous line
//! (jobs finished, results delivered, receipts verified). A busy node finishes hundreds of jobs
//! a second; its log says it works without a line per job (those are at debug).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::daemon::NodeCore;
use crate::status::{NodeMetrics, OutcomeLabel, ReceiptStateLabel};

/// How often the activity line is written (when there was any activity).
pub(crate) const ACTIVITY_EVERY: Duration = Duration::from_secs(60);

/// What the node's counters say it has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Activity {
    offers_accepted: u64,
    jobs_ok: u64,
    jobs_failed: u64,
    results_delivered: u64,
    delivery_retries: u64,
    receipts_verified: u64,
}

impl Activity {
    /// The counters now.
    pub(crate) fn read(m: &NodeMetrics) -> Activity {
        let outcome = |family: &Family<OutcomeLabel, Counter>, name: &str| {
            family
                .get_or_create(&OutcomeLabel {
                    outcome: name.to_string(),
                })
                .get()
        };
        Activity {
            offers_accepted: outcome(&m.offers, "accepted"),
            jobs_ok: outcome(&m.jobs_finished, "ok"),
            jobs_failed: outcome(&m.jobs_finished, "failed"),
            results_delivered: m.results_delivered.get(),
            delivery_retries: m.delivery_retries.get(),
            receipts_verified: m
                .receipts
                .get_or_create(&ReceiptStateLabel {
                    state: "verified".to_string(),
                })
                .get(),
        }
    }

    /// What happened between `before` and `self`.
    pub(crate) fn since(self, before: Activity) -> Activity {
        Activity {
            offers_accepted: self.offers_accepted.saturating_sub(before.offers_accepted),
            jobs_ok: self.jobs_ok.saturating_sub(before.jobs_ok),
            jobs_failed: self.jobs_failed.saturating_sub(before.jobs_failed),
            results_delivered: self
                .results_delivered
                .saturating_sub(before.results_delivered),
            delivery_retries: self
                .delivery_retries
                .saturating_sub(before.delivery_retries),
            receipts_verified: self
                .receipts_verified
                .saturating_sub(before.receipts_verified),
        }
    }

    /// Whether nothing happened.
    pub(crate) fn is_quiet(&self) -> bool {
        *self == Activity::default()
    }
}

/// Writes the activity line every [`ACTIVITY_EVERY`] until `stop`, skipping quiet minutes.
pub(crate) async fn run(core: Arc<NodeCore>, stop: CancellationToken) {
    let mut last = Activity::read(&core.metrics);
    let mut ticks = tokio::time::interval(ACTIVITY_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = Activity::read(&core.metrics);
        let d = now.since(last);
        last = now;
        if d.is_quiet() {
            continue;
        }
        info!(
            offers_accepted = d.offers_accepted,
            jobs_ok = d.jobs_ok,
            jobs_failed = d.jobs_failed,
            results_delivered = d.results_delivered,
            delivery_retries = d.delivery_retries,
            receipts_verified = d.receipts_verified,
            units_earned = core.metrics.units_earned.get(),
            units_unconfirmed = core.metrics.units_unconfirmed.get(),
            "activity in the last minute"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_activity_line_counts_what_changed_since_the_last_one() {
        let m = NodeMetrics::new();
        let before = Activity::read(&m);
        assert!(before.is_quiet());
        for _ in 0..3 {
            NodeMetrics::count(&m.offers, "accepted");
            NodeMetrics::count(&m.jobs_finished, "ok");
        }
        NodeMetrics::count(&m.offers, "busy");
        NodeMetrics::count(&m.jobs_finished, "failed");
        m.results_delivered.inc_by(2);
        m.count_receipt("verified");
        m.count_receipt("pending");
        let after = Activity::read(&m);
        let d = after.since(before);
        assert_eq!(
            d,
            Activity {
                offers_accepted: 3,
                jobs_ok: 3,
                jobs_failed: 1,
                results_delivered: 2,
                delivery_retries: 0,
                receipts_verified: 1,
            }
        );
        assert!(Activity::read(&m).since(after).is_quiet(), "a quiet minute");
    }
}
