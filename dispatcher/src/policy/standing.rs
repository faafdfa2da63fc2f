//! A node's standing: how far the dispatcher trusts its results (adaptive replication) and how
//! reliably it delivers (scheduling). Pure data with transition methods; the time is an input.
//!
//! **Trust** follows BOINC's adaptive replication. A new node is on *probation*: every result
//! it returns is checked (re-executed by the dispatcher) before it is credited, until it has
//! [`VerifySettings::probation_results`] checked valid results in a row. Then it is *trusted*
//! and audited at a rate that falls with its run of accepted results,
//! `(probation_results / valid_run)²`, down to [`VerifySettings::audit_floor`]. One result
//! proven wrong resets the run (back on probation) and, after
//! [`VerifySettings::exclude_after_wrong`] of them, excludes the node for good.
//!
//! Why these numbers: a node that cheats on a fraction p of its jobs escapes detection over its
//! first n jobs with probability ∏(1 − p·rate). With its first 50 results all checked, a node
//! cheating on 10 % of its jobs is caught within 50 jobs with probability 1 − 0.9⁵⁰ ≈ 99.5 %,
//! and nothing it returned in those 50 jobs was credited unchecked. The square makes the rate
//! fall fast once a node has a record: an honest node's overhead is below 1.15 executions per
//! job after ~130 jobs and at the floor, 1.05, after ~225 (`pocmesh bench verify` measures it).
//!
//! **Reliability** is about delivery, not honesty: an exponentially weighted average of how
//! assignments ended (success 1, failure or timeout 0, decline a quarter step towards 0), so old
//! mishaps fade. A node below the minimum is not starved for ever: after
//! [`VerifySettings::cooldown_ms`] without a new fault it gets a probe assignment, and good
//! work lifts it back.

use serde::{Deserialize, Serialize};

/// Weight of the newest outcome in the reliability average.
const RELIABILITY_ALPHA: f64 = 0.1;
/// How much larger than the largest job it was checked on a trusted node's job may be before
/// it is checked again: trust earned on small jobs does not cover big ones.
pub const TRUST_SIZE_FACTOR: u64 = 4;
/// Where a new node's reliability starts.
pub const INITIAL_RELIABILITY: f64 = 0.75;

/// The verification policy's settings (the dispatcher config's `[verify]` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifySettings {
    /// Checked valid results in a row before a node's results are only sampled.
    pub probation_results: u32,
    /// Most jobs a node on probation may hold or have waiting for a verdict at once, so one
    /// fresh key cannot fill the re-execution queue.
    pub probation_outstanding: u32,
    /// Lowest share of a trusted node's results that is still re-executed (0 to 1).
    pub audit_floor: f64,
    /// Results proven wrong after which a node is excluded for good.
    pub exclude_after_wrong: u32,
    /// After a fault, how long a node below the reliability minimum waits for a probe job, ms.
    pub cooldown_ms: u64,
    /// Re-executions run at once by the dispatcher.
    pub audit_workers: usize,
    /// Re-executions waiting at most; more are shed (the job goes to another node instead).
    pub audit_queue: usize,
    /// Quorum members must come from distinct networks (IPv4 /24, IPv6 /48) where known.
    pub distinct_origins: bool,
    /// Devnet only: loopback origins do not count as one network, so nodes on one machine can
    /// form a quorum. Refused on any network not named `devnet-…`.
    pub loopback_quorum: bool,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            probation_results: 50,
            probation_outstanding: 2,
            audit_floor: 0.05,
            exclude_after_wrong: 1,
            cooldown_ms: 60_000,
            audit_workers: 2,
            audit_queue: 1024,
            distinct_origins: true,
            loopback_quorum: false,
        }
    }
}

impl VerifySettings {
    /// Checks every field; the error names the field and what it needs.
    pub fn validate(&self, net: &str) -> Result<(), String> {
        if self.probation_results == 0 || self.probation_results > 100_000 {
            return Err("verify.probation_results must be between 1 and 100000".into());
        }
        if !(self.audit_floor > 0.0 && self.audit_floor <= 1.0) {
            return Err(format!(
                "verify.audit_floor must be above 0 and at most 1 (a floor of 0 would stop checking trusted nodes), got {}",
                self.audit_floor
            ));
        }
        if self.probation_outstanding == 0 {
            return Err("verify.probation_outstanding must be at least 1".into());
        }
        if self.exclude_after_wrong == 0 {
            return Err("verify.exclude_after_wrong must be at least 1".into());
        }
        if self.audit_workers == 0 || self.audit_workers > 256 {
            return Err("verify.audit_workers must be between 1 and 256".into());
        }
        if self.audit_queue == 0 {
            return Err("verify.audit_queue must be at least 1".into());
        }
        if self.loopback_quorum && !net.starts_with("devnet-") {
            return Err(format!(
                "verify.loopback_quorum is for local devnets only (network `{net}`); remove it"
            ));
        }
        Ok(())
    }
}

/// How one delivery ended, for the reliability average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// A result arrived and was not proven wrong.
    Success,
    /// The node reported the attempt as failed.
    Failure,
    /// The lease ran out, or the node could not be reached.
    Timeout,
    /// The node declined the offer (not for being busy or stopping).
    Declined,
}

/// Counts of how a node's assignments ended, all time (for people; decisions use the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Results accepted.
    pub successes: u64,
    /// Attempts the node reported as failed.
    pub failures: u64,
    /// Leases that ran out or offers that got no answer.
    pub timeouts: u64,
    /// Offers the node declined.
    pub declines: u64,
    /// Results proven wrong.
    pub rejected: u64,
    /// Results re-executed by the dispatcher.
    pub audited: u64,
}

/// Why and when a node was excluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    /// What it did.
    pub reason: String,
    /// When, unix ms.
    pub at_ms: u64,
}

/// Where a node stands in the trust scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "trust")]
pub enum Trust {
    /// Every result is checked until `remaining` more checked results are valid.
    Probation {
        /// Checked valid results still needed.
        remaining: u32,
    },
    /// Results are sampled.
    Trusted,
    /// Gets no work.
    Excluded,
}

/// One node's durable standing with this dispatcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Standing {
    /// Checked valid results since the last wrong one.
    pub checked_valid: u32,
    /// Accepted results (checked or not) since the last wrong one.
    pub valid_run: u64,
    /// Results proven wrong, all time.
    pub wrong: u32,
    /// Set once the node is excluded.
    pub excluded: Option<Exclusion>,
    /// Delivery reliability, 0 to 1 (module header).
    pub reliability: f64,
    /// When the last failure or timeout happened, unix ms (0: never).
    pub last_fault_ms: u64,
    /// All-time counts.
    pub counters: Counters,
    /// The most units of one job checked valid (trust covers jobs up to
    /// [`TRUST_SIZE_FACTOR`] times this).
    pub max_checked_units: u64,
    /// When this standing began, unix ms (0: before this was recorded).
    pub since_ms: u64,
}

impl Default for Standing {
    fn default() -> Self {
        Standing {
            checked_valid: 0,
            valid_run: 0,
            wrong: 0,
            excluded: None,
            reliability: INITIAL_RELIABILITY,
            last_fault_ms: 0,
            counters: Counters::default(),
            max_checked_units: 0,
            since_ms: 0,
        }
    }
}

impl Standing {
    /// Where the node stands.
    pub fn trust(&self, s: &VerifySettings) -> Trust {
        if self.excluded.is_some() {
            Trust::Excluded
        } else if self.checked_valid < s.probation_results {
            Trust::Probation {
                remaining: s.probation_results - self.checked_valid,
            }
        } else {
            Trust::Trusted
        }
    }

    /// The share of this node's results worth `units` each that the dispatcher re-executes: 1 on
    /// probation (and when excluded: whatever it still returns is checked) and for a job more
    /// than [`TRUST_SIZE_FACTOR`] times larger than any it was checked on, otherwise
    /// `(probation / run)²`, at least the floor.
    pub fn audit_rate(&self, units: u64, s: &VerifySettings) -> f64 {
        if units
            > self
                .max_checked_units
                .max(1)
                .saturating_mul(TRUST_SIZE_FACTOR)
        {
            return 1.0;
        }
        match self.trust(s) {
            Trust::Probation { .. } | Trust::Excluded => 1.0,
            Trust::Trusted => {
                let run = self.valid_run.max(1) as f64;
                let share = f64::from(s.probation_results) / run;
                (share * share).clamp(s.audit_floor, 1.0)
            }
        }
    }

    /// One of its results, worth `units`, was accepted; `checked` when the dispatcher
    /// re-executed it or independent nodes agreed with it. (Its delivery counted when it
    /// arrived.)
    pub fn on_accepted(&mut self, checked: bool, units: u64) {
        self.valid_run = self.valid_run.saturating_add(1);
        if checked {
            self.checked_valid = self.checked_valid.saturating_add(1);
            self.max_checked_units = self.max_checked_units.max(units);
        }
        self.counters.successes = self.counters.successes.saturating_add(1);
    }

    /// One of its results was proven wrong: trust starts over; returns true when this excludes
    /// the node.
    pub fn on_wrong(&mut self, reason: &str, now_ms: u64, s: &VerifySettings) -> bool {
        self.checked_valid = 0;
        self.valid_run = 0;
        self.wrong = self.wrong.saturating_add(1);
        self.counters.rejected = self.counters.rejected.saturating_add(1);
        if self.excluded.is_none() && self.wrong >= s.exclude_after_wrong {
            self.excluded = Some(Exclusion {
                reason: reason.to_string(),
                at_ms: now_ms,
            });
            return true;
        }
        false
    }

    /// How a delivery ended: a result arrived in time, or did not (verdicts on results are
    /// [`Standing::on_accepted`] and [`Standing::on_wrong`]).
    pub fn on_delivery(&mut self, delivery: Delivery, now_ms: u64) {
        let c = &mut self.counters;
        match delivery {
            Delivery::Success => {
                self.nudge(1.0, RELIABILITY_ALPHA);
            }
            Delivery::Failure => {
                c.failures = c.failures.saturating_add(1);
                self.last_fault_ms = now_ms;
                self.nudge(0.0, RELIABILITY_ALPHA);
            }
            Delivery::Timeout => {
                c.timeouts = c.timeouts.saturating_add(1);
                self.last_fault_ms = now_ms;
                self.nudge(0.0, RELIABILITY_ALPHA);
            }
            Delivery::Declined => {
                c.declines = c.declines.saturating_add(1);
                self.nudge(0.0, RELIABILITY_ALPHA / 4.0);
            }
        }
    }

    /// Whether its reliability lets it take work at `now_ms`: at or above `min`, or quiet for
    /// the cool-down since its last fault (a probe).
    pub fn may_take_work(&self, min: f64, now_ms: u64, s: &VerifySettings) -> bool {
        self.reliability >= min || now_ms.saturating_sub(self.last_fault_ms) >= s.cooldown_ms
    }

    fn nudge(&mut self, towards: f64, alpha: f64) {
        let r = if self.reliability.is_finite() {
            self.reliability
        } else {
            INITIAL_RELIABILITY
        };
        self.reliability = (r + alpha * (towards - r)).clamp(0.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> VerifySettings {
        VerifySettings::default()
    }

    #[test]
    fn a_new_node_is_checked_until_its_probation_is_done() {
        let (mut n, s) = (Standing::default(), s());
        assert_eq!(n.trust(&s), Trust::Probation { remaining: 50 });
        assert_eq!(n.audit_rate(10, &s), 1.0);
        // Unchecked acceptances do not shorten probation.
        for _ in 0..100 {
            n.on_accepted(false, 1);
        }
        assert_eq!(n.trust(&s), Trust::Probation { remaining: 50 });
        for _ in 0..49 {
            n.on_accepted(true, 1);
        }
        assert_eq!(n.trust(&s), Trust::Probation { remaining: 1 });
        n.on_accepted(true, 1);
        assert_eq!(n.trust(&s), Trust::Trusted);
    }

    #[test]
    fn a_trusted_nodes_audit_rate_falls_to_the_floor() {
        let s = s();
        let at = |run: u64| Standing {
            checked_valid: 50,
            valid_run: run,
            max_checked_units: 10,
            ..Standing::default()
        };
        assert_eq!(at(50).audit_rate(10, &s), 1.0);
        assert!((at(100).audit_rate(10, &s) - 0.25).abs() < 1e-12);
        assert!(
            at(130).audit_rate(10, &s) < 0.15,
            "overhead under 1.15 after ~130 jobs"
        );
        assert_eq!(at(224).audit_rate(10, &s), 0.05, "at the floor after ~225");
        assert_eq!(at(1_000_000).audit_rate(10, &s), 0.05);
    }

    #[test]
    fn trust_earned_on_small_jobs_does_not_cover_big_ones() {
        let s = s();
        let mut n = Standing::default();
        for _ in 0..50 {
            n.on_accepted(true, 2);
        }
        n.valid_run = 10_000;
        assert_eq!(
            n.audit_rate(8, &s),
            0.05,
            "up to four times the largest checked job"
        );
        assert_eq!(n.audit_rate(9, &s), 1.0, "a bigger job is checked again");
        n.on_accepted(true, 9);
        assert_eq!(n.audit_rate(36, &s), 0.05);
        assert_eq!(Standing::default().audit_rate(1, &s), 1.0);
    }

    #[test]
    fn one_wrong_result_resets_trust_and_excludes_by_default() {
        let s = s();
        let mut n = Standing {
            checked_valid: 500,
            valid_run: 5_000,
            ..Standing::default()
        };
        assert!(n.on_wrong("output differs from the re-execution", 7, &s));
        assert_eq!(n.trust(&s), Trust::Excluded);
        assert_eq!(n.audit_rate(10, &s), 1.0);
        assert_eq!((n.checked_valid, n.valid_run, n.wrong), (0, 0, 1));
        assert_eq!(n.excluded.as_ref().map(|e| e.at_ms), Some(7));
        assert!(!n.on_wrong("again", 8, &s), "excluded once, reported once");
        assert_eq!(n.counters.rejected, 2);

        let lenient = VerifySettings {
            exclude_after_wrong: 2,
            ..s
        };
        let mut m = Standing {
            checked_valid: 500,
            valid_run: 5_000,
            ..Standing::default()
        };
        assert!(!m.on_wrong("x", 1, &lenient));
        assert_eq!(m.trust(&lenient), Trust::Probation { remaining: 50 });
        assert!(m.on_wrong("y", 2, &lenient));
    }

    #[test]
    fn reliability_recovers_and_a_low_node_gets_a_probe_after_the_cooldown() {
        let s = s();
        let mut n = Standing::default();
        n.on_delivery(Delivery::Timeout, 1_000);
        n.on_delivery(Delivery::Timeout, 2_000);
        assert!(
            n.may_take_work(0.5, 2_000, &s),
            "two early timeouts do not starve a node: {}",
            n.reliability
        );
        for t in 3..=10 {
            n.on_delivery(Delivery::Timeout, t * 1_000);
        }
        assert!(n.reliability < 0.5);
        assert!(!n.may_take_work(0.5, 10_000 + s.cooldown_ms - 1, &s));
        assert!(n.may_take_work(0.5, 10_000 + s.cooldown_ms, &s), "probe");
        let low = n.reliability;
        for t in 0..10 {
            n.on_delivery(Delivery::Success, 80_000 + t);
            n.on_accepted(true, 1);
        }
        assert!(
            n.reliability > low && n.reliability >= 0.5,
            "{}",
            n.reliability
        );
        assert_eq!((n.counters.timeouts, n.counters.successes), (10, 10));
    }

    #[test]
    fn declines_weigh_a_quarter_of_a_timeout() {
        let mut a = Standing::default();
        let mut b = Standing::default();
        a.on_delivery(Delivery::Declined, 0);
        b.on_delivery(Delivery::Timeout, 0);
        let (da, db) = (
            INITIAL_RELIABILITY - a.reliability,
            INITIAL_RELIABILITY - b.reliability,
        );
        assert!((da * 4.0 - db).abs() < 1e-12);
        assert_eq!(a.last_fault_ms, 0, "a decline is no fault");
    }

    #[test]
    fn settings_are_validated_with_the_field_named() {
        let ok = VerifySettings::default();
        assert!(ok.validate("xdc-apothem").is_ok());
        let zero_floor = VerifySettings {
            audit_floor: 0.0,
            ..ok.clone()
        };
        assert!(
            zero_floor
                .validate("x")
                .expect_err("0")
                .contains("audit_floor")
        );
        let loopback = VerifySettings {
            loopback_quorum: true,
            ..ok.clone()
        };
        assert!(loopback.validate("devnet-551").is_ok());
        assert!(
            loopback
                .validate("xdc-apothem")
                .expect_err("not a devnet")
                .contains("loopback_quorum")
        );
        let nan = VerifySettings {
            audit_floor: f64::NAN,
            ..ok
        };
        assert!(nan.validate("x").is_err());
    }
}
