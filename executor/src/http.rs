//! The HTTP check job types: `link_health` (one bounded GET of an allow-listed URL) and
//! `robots_recheck` (one bounded GET of a domain's robots.txt, read for pocmesh's token).
//!
//! Owns the node's [`HttpPolicy`] (the limits it enforces whatever an offer says, and which
//! targets it refuses, in [`target`]) and the [`HttpExecutor`] that turns one fetch into a
//! `pocmesh_protocol::http_check` report. The fetch itself — checked DNS answers, checked
//! redirect hops, timeout and caps — is in `fetch`.
//!
//! What ends a job `failed` (the error names the limit or the target): the timeout, the redirect
//! cap, the body cap, and a refused target (a private address, a denied domain, a non-http(s)
//! redirect). What is a *report*: everything the site answered, and "unreachable" (DNS failure,
//! connection refused, TLS error) — for a link check that is the health answer.
//!
//! robots.txt rules (RFC 9309): 2xx is parsed (`texting_robots`, groups by user agent, longest
//! match wins, `Crawl-delay` read); 4xx means no rules, every path allowed; 5xx, any other status
//! and an unreachable site mean every path is reported disallowed — the conservative reading
//! until the site answers.

mod fetch;
pub mod target;

use std::sync::Arc;
use std::time::Instant;

use pocmesh_protocol::http_check::{
    LinkHealthReport, PathVerdict, ROBOTS_TOKEN, RobotsReport, encode,
};
use pocmesh_protocol::{Hash32, JobParams, JobType, Limits, Metering};

use self::fetch::{FetchError, FetchLimits, Fetched, fetch};
pub use self::fetch::{HostLookup, LimitHit, LookupFuture, StaticLookup, SystemLookup};
use self::target::TargetRules;
use super::{Execution, Executor, elapsed_ms};

/// The limits and target rules a node applies to every HTTP check (config `[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPolicy {
    /// The whole fetch (connect, redirects, body), ms; a job's own `max_ms` lowers it.
    pub timeout_ms: u64,
    /// Redirects followed at most; one more fails the job.
    pub max_redirects: u32,
    /// Body bytes a `link_health` reads at most; more fails the job.
    pub max_body_bytes: u64,
    /// Body bytes a `robots_recheck` reads at most; more fails the job.
    pub max_robots_bytes: u64,
    /// Refused targets: address classes, the deny-list, the devnet loopback flag.
    pub rules: TargetRules,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            timeout_ms: 10_000,
            max_redirects: 5,
            max_body_bytes: 1024 * 1024,
            max_robots_bytes: 512 * 1024,
            rules: TargetRules::default(),
        }
    }
}

impl HttpPolicy {
    fn limits(&self, job: &Limits, body_cap: u64) -> FetchLimits {
        FetchLimits {
            timeout_ms: self.timeout_ms.min(job.max_ms),
            max_redirects: usize::try_from(self.max_redirects).unwrap_or(usize::MAX),
            body_cap,
        }
    }
}

/// Runs `link_health` or `robots_recheck` jobs (one executor per type, sharing a policy).
#[derive(Debug, Clone)]
pub struct HttpExecutor {
    job_type: JobType,
    policy: Arc<HttpPolicy>,
    lookup: Arc<dyn HostLookup>,
}

impl HttpExecutor {
    /// The `link_health` executor.
    pub fn link_health(policy: Arc<HttpPolicy>) -> Self {
        HttpExecutor {
            job_type: JobType::LinkHealth,
            policy,
            lookup: Arc::new(SystemLookup),
        }
    }

    /// The `robots_recheck` executor.
    pub fn robots_recheck(policy: Arc<HttpPolicy>) -> Self {
        HttpExecutor {
            job_type: JobType::RobotsRecheck,
            policy,
            lookup: Arc::new(SystemLookup),
        }
    }

    /// The same executor resolving names through `lookup` (tests: a fixed table, no DNS).
    pub fn with_lookup(self, lookup: Arc<dyn HostLookup>) -> Self {
        HttpExecutor { lookup, ..self }
    }

    /// One GET of `url`; the report says whether it answered `expected` (any 2xx if `None`).
    pub fn check_link(&self, url: &str, expected: Option<u16>, limits: &Limits) -> Execution {
        let start = Instant::now();
        let target = match self.policy.rules.link_url(url) {
            Ok(target) => target,
            Err(refusal) => return Execution::failed(refusal.to_string(), metering(start)),
        };
        let fetch_limits = self.policy.limits(limits, self.policy.max_body_bytes);
        let as_expected = |status: u16| match expected {
            Some(e) => status == e,
            None => (200..300).contains(&status),
        };
        let answered = |f: &Fetched, error: Option<String>| LinkHealthReport {
            url: url.to_string(),
            reachable: true,
            status: Some(f.status),
            as_expected: as_expected(f.status),
            redirected: f.redirects > 0,
            final_url: f.final_url.to_string(),
            latency_ms: f.latency_ms,
            bytes_read: f.bytes_read,
            error,
        };
        let report = match fetch(
            &target,
            &self.policy.rules,
            self.lookup.clone(),
            fetch_limits,
            false,
        ) {
            Ok(fetched) => answered(&fetched, None),
            Err(FetchError::BodyBroken { fetched, reason }) => answered(&fetched, Some(reason)),
            Err(FetchError::Unreachable {
                url: at,
                redirects,
                reason,
            }) => LinkHealthReport {
                url: url.to_string(),
                reachable: false,
                status: None,
                as_expected: false,
                redirected: redirects > 0,
                final_url: at.to_string(),
                latency_ms: elapsed_ms(start),
                bytes_read: 0,
                error: Some(reason),
            },
            Err(other) => return failure(other, start),
        };
        Execution::finished(encode(&report), metering(start), limits)
    }

    /// One GET of the domain's robots.txt, read for [`ROBOTS_TOKEN`]: status, size, hash, crawl
    /// delay and a verdict per path (rules in the module header).
    pub fn recheck_robots(&self, domain: &str, paths: &[String], limits: &Limits) -> Execution {
        let start = Instant::now();
        let target = match self.policy.rules.robots_url(domain, paths) {
            Ok(target) => target,
            Err(refusal) => return Execution::failed(refusal.to_string(), metering(start)),
        };
        let fetch_limits = self.policy.limits(limits, self.policy.max_robots_bytes);
        let report = match fetch(
            &target,
            &self.policy.rules,
            self.lookup.clone(),
            fetch_limits,
            true,
        ) {
            Ok(fetched) => {
                let (paths, crawl_delay_s, error) = read_rules(&fetched, paths);
                RobotsReport {
                    domain: domain.to_string(),
                    status: Some(fetched.status),
                    size: fetched.bytes_read,
                    content_hash: Hash32::keccak(&fetched.body),
                    crawl_delay_s,
                    paths,
                    latency_ms: fetched.latency_ms,
                    error,
                }
            }
            Err(FetchError::BodyBroken { fetched, reason }) => RobotsReport {
                domain: domain.to_string(),
                status: Some(fetched.status),
                size: fetched.bytes_read,
                content_hash: Hash32::keccak(&fetched.body),
                crawl_delay_s: None,
                paths: verdicts(paths, |_| false),
                latency_ms: fetched.latency_ms,
                error: Some(reason),
            },
            Err(FetchError::Unreachable { reason, .. }) => RobotsReport {
                domain: domain.to_string(),
                status: None,
                size: 0,
                content_hash: Hash32::keccak([]),
                crawl_delay_s: None,
                paths: verdicts(paths, |_| false),
                latency_ms: elapsed_ms(start),
                error: Some(reason),
            },
            Err(other) => return failure(other, start),
        };
        Execution::finished(encode(&report), metering(start), limits)
    }
}

/// One verdict per path asked about, in the job's order.
fn verdicts(paths: &[String], allowed: impl Fn(&str) -> bool) -> Vec<PathVerdict> {
    paths
        .iter()
        .map(|p| PathVerdict {
            path: p.clone(),
            allowed: allowed(p),
        })
        .collect()
}

/// The verdicts, crawl delay and parse error of a robots.txt answer (module header's rules).
fn read_rules(
    fetched: &Fetched,
    paths: &[String],
) -> (Vec<PathVerdict>, Option<f64>, Option<String>) {
    match fetched.status {
        200..=299 => match texting_robots::Robot::new(ROBOTS_TOKEN, &fetched.body) {
            Ok(robot) => {
                // f32 in the parser; rounded to ms so 0.1 reads as 0.1 in the report.
                let delay = robot
                    .delay
                    .map(|d| (f64::from(d) * 1000.0).round() / 1000.0);
                (verdicts(paths, |p| robot.allowed(p)), delay, None)
            }
            Err(e) => (
                verdicts(paths, |_| false),
                None,
                Some(format!("robots.txt could not be parsed: {e:#}")),
            ),
        },
        400..=499 => (verdicts(paths, |_| true), None, None),
        _ => (verdicts(paths, |_| false), None, None),
    }
}

fn metering(start: Instant) -> Metering {
    Metering {
        fuel: 0,
        ms: elapsed_ms(start),
        bytes: 0,
    }
}

fn failure(error: FetchError, start: Instant) -> Execution {
    match error {
        FetchError::Limit(hit @ LimitHit::Timeout { .. }) => {
            Execution::failed_locally(hit.to_string(), metering(start))
        }
        FetchError::Limit(hit) => Execution::failed(hit.to_string(), metering(start)),
        FetchError::Refused(refusal) => Execution::failed(refusal.to_string(), metering(start)),
        FetchError::Local(reason) => Execution::failed_locally(reason, metering(start)),
        // Reports, handled by the callers; kept total here.
        FetchError::Unreachable { reason, .. } | FetchError::BodyBroken { reason, .. } => {
            Execution::failed(reason, metering(start))
        }
    }
}

impl Executor for HttpExecutor {
    fn job_type(&self) -> JobType {
        self.job_type
    }

    fn execute(&self, params: &JobParams, limits: &Limits) -> Execution {
        match (self.job_type, params) {
            (
                JobType::LinkHealth,
                JobParams::LinkHealth {
                    url,
                    expected_status,
                },
            ) => self.check_link(url, *expected_status, limits),
            (JobType::RobotsRecheck, JobParams::RobotsRecheck { domain, paths }) => {
                self.recheck_robots(domain, paths, limits)
            }
            (mine, other) => Execution::failed(
                format!(
                    "the {} executor cannot run a {} job",
                    mine.as_str(),
                    other.job_type().as_str()
                ),
                Metering::default(),
            ),
        }
    }
}
