//! Link and robots.txt health, per URL and per domain, built from verified HTTP check results
//! (and from checks that failed everywhere). Pure: the engine stores the records, the API reads
//! them (`GET /v1/health?domain=…`, `pocmesh health DOMAIN`).

use pocmesh_protocol::http_check::{LinkHealthReport, PathVerdict, RobotsReport, StatusClass};
use pocmesh_protocol::{Hash32, JobId};
use serde::{Deserialize, Serialize};

/// Checks kept per URL and per domain.
pub const HISTORY: usize = 20;

/// How one check of a URL ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum LinkOutcome {
    /// Verified answer.
    Checked {
        /// Whether the status was the expected one.
        healthy: bool,
        /// The status, when an answer came.
        status: Option<u16>,
        /// Its class.
        class: StatusClass,
        /// Where redirects ended.
        final_url: String,
    },
    /// No node could check it (a limit was reached, the target was refused).
    CheckFailed {
        /// Why.
        reason: String,
    },
}

/// One check in a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEvent {
    /// When it was verified (or given up), unix ms.
    pub at_ms: u64,
    /// The job.
    pub job: JobId,
    /// What it found.
    #[serde(flatten)]
    pub outcome: LinkOutcome,
}

/// A URL's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlHealth {
    /// The URL.
    pub url: String,
    /// Its domain (host).
    pub domain: String,
    /// The latest verified answer's verdict; `None` before any.
    pub healthy: Option<bool>,
    /// The latest verified status.
    pub status: Option<u16>,
    /// When it was last verified, unix ms.
    pub last_verified_ms: Option<u64>,
    /// Latest checks first, at most [`HISTORY`].
    pub history: Vec<LinkEvent>,
}

/// What the latest verified robots.txt check of a domain found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobotsHealth {
    /// When it was verified, unix ms.
    pub at_ms: u64,
    /// The job.
    pub job: JobId,
    /// The status, when an answer came.
    pub status: Option<u16>,
    /// Body size.
    pub size: u64,
    /// keccak-256 of the body.
    pub content_hash: Hash32,
    /// The crawl delay it asks of pocmesh.
    pub crawl_delay_s: Option<f64>,
    /// Path verdicts.
    pub paths: Vec<PathVerdict>,
    /// Whether the body differs from the previous check's.
    pub changed: bool,
}

/// A domain's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainHealth {
    /// The domain.
    pub domain: String,
    /// The latest robots.txt check.
    pub robots: Option<RobotsHealth>,
    /// Earlier robots.txt checks, latest first, at most [`HISTORY`].
    pub robots_history: Vec<RobotsHealth>,
}

/// `GET /v1/health?domain=…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthView {
    /// The domain.
    pub domain: String,
    /// URLs checked, healthy, broken.
    pub urls_checked: usize,
    /// URLs whose latest verified check was healthy.
    pub urls_healthy: usize,
    /// URLs whose latest verified check was not.
    pub urls_broken: usize,
    /// Its robots.txt.
    pub robots: Option<RobotsHealth>,
    /// Every URL of the domain.
    pub urls: Vec<UrlHealth>,
}

fn push<T>(history: &mut Vec<T>, item: T) {
    history.insert(0, item);
    history.truncate(HISTORY);
}

/// `prev` updated with a verified link check.
pub fn record_link(
    prev: Option<UrlHealth>,
    domain: &str,
    report: &LinkHealthReport,
    job: JobId,
    now_ms: u64,
) -> UrlHealth {
    let mut h = prev.unwrap_or_else(|| UrlHealth {
        url: report.url.clone(),
        domain: domain.to_string(),
        healthy: None,
        status: None,
        last_verified_ms: None,
        history: Vec::new(),
    });
    h.healthy = Some(report.as_expected);
    h.status = report.status;
    h.last_verified_ms = Some(now_ms);
    push(
        &mut h.history,
        LinkEvent {
            at_ms: now_ms,
            job,
            outcome: LinkOutcome::Checked {
                healthy: report.as_expected,
                status: report.status,
                class: StatusClass::of(report.status),
                final_url: report.final_url.clone(),
            },
        },
    );
    h
}

/// `prev` updated with a check that no node could make.
pub fn record_link_failure(
    prev: Option<UrlHealth>,
    url: &str,
    domain: &str,
    reason: &str,
    job: JobId,
    now_ms: u64,
) -> UrlHealth {
    let mut h = prev.unwrap_or_else(|| UrlHealth {
        url: url.to_string(),
        domain: domain.to_string(),
        healthy: None,
        status: None,
        last_verified_ms: None,
        history: Vec::new(),
    });
    push(
        &mut h.history,
        LinkEvent {
            at_ms: now_ms,
            job,
            outcome: LinkOutcome::CheckFailed {
                reason: reason.to_string(),
            },
        },
    );
    h
}

/// `prev` updated with a verified robots.txt check of `domain` (the host, without a port).
pub fn record_robots(
    prev: Option<DomainHealth>,
    domain: &str,
    report: &RobotsReport,
    job: JobId,
    now_ms: u64,
) -> DomainHealth {
    let mut d = prev.unwrap_or_else(|| DomainHealth {
        domain: domain.to_string(),
        robots: None,
        robots_history: Vec::new(),
    });
    let changed = d
        .robots
        .as_ref()
        .is_some_and(|r| r.content_hash != report.content_hash);
    let new = RobotsHealth {
        at_ms: now_ms,
        job,
        status: report.status,
        size: report.size,
        content_hash: report.content_hash,
        crawl_delay_s: report.crawl_delay_s,
        paths: report.paths.clone(),
        changed,
    };
    if let Some(old) = d.robots.replace(new) {
        push(&mut d.robots_history, old);
    }
    d
}

/// The view of one domain.
pub fn view(domain: &str, robots: Option<DomainHealth>, urls: Vec<UrlHealth>) -> HealthView {
    let healthy = urls.iter().filter(|u| u.healthy == Some(true)).count();
    let broken = urls.iter().filter(|u| u.healthy == Some(false)).count();
    HealthView {
        domain: domain.to_string(),
        urls_checked: urls.len(),
        urls_healthy: healthy,
        urls_broken: broken,
        robots: robots.and_then(|d| d.robots),
        urls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Option<u16>) -> LinkHealthReport {
        LinkHealthReport {
            url: "https://a.test/x".into(),
            reachable: status.is_some(),
            status,
            as_expected: matches!(status, Some(200..=299)),
            redirected: false,
            final_url: "https://a.test/x".into(),
            latency_ms: 5,
            bytes_read: 10,
            error: None,
        }
    }

    #[test]
    fn a_url_keeps_its_latest_verdict_and_a_bounded_history() {
        let job = JobId::from([1; 32]);
        let mut h = record_link(None, "a.test", &report(Some(200)), job, 1);
        assert_eq!((h.healthy, h.status), (Some(true), Some(200)));
        h = record_link_failure(
            Some(h),
            "https://a.test/x",
            "a.test",
            "timeout of 10000 ms reached",
            job,
            2,
        );
        assert_eq!(h.healthy, Some(true), "a failed check is not a verdict");
        h = record_link(Some(h), "a.test", &report(Some(404)), job, 3);
        assert_eq!((h.healthy, h.last_verified_ms), (Some(false), Some(3)));
        assert_eq!(h.history.len(), 3);
        assert_eq!(h.history[0].at_ms, 3, "latest first");
        for t in 4..40 {
            h = record_link(Some(h), "a.test", &report(None), job, t);
        }
        assert_eq!(h.history.len(), HISTORY);
        let v = view("a.test", None, vec![h]);
        assert_eq!((v.urls_checked, v.urls_healthy, v.urls_broken), (1, 0, 1));
    }

    #[test]
    fn robots_changes_are_noticed() {
        let job = JobId::from([2; 32]);
        let mut r = RobotsReport {
            domain: "A.test".into(),
            status: Some(200),
            size: 3,
            content_hash: Hash32::keccak(b"one"),
            crawl_delay_s: Some(5.0),
            paths: vec![],
            latency_ms: 1,
            error: None,
        };
        let d = record_robots(None, "a.test", &r, job, 1);
        assert_eq!(d.domain, "a.test");
        assert!(!d.robots.as_ref().expect("robots").changed);
        r.content_hash = Hash32::keccak(b"two");
        let d = record_robots(Some(d), "a.test", &r, job, 2);
        assert!(d.robots.as_ref().expect("robots").changed);
        assert_eq!(d.robots_history.len(), 1);
    }
}
