//! HTTP check jobs (`link_health`, `robots_recheck`): what a node reports, how the report is
//! encoded as the job's output, and what independent checks must agree on.
//!
//! An HTTP check is not deterministic byte for byte — latency, headers and sometimes bodies
//! differ between two fetches — so results are not compared by their output hash. A quorum
//! compares a [`comparable`] digest instead:
//!
//! - `link_health`: the status class (unreachable, 1xx … 5xx), the final URL's host, and whether
//!   the status was the expected one;
//! - `robots_recheck`: the status class, the keccak-256 of the robots.txt body, and the verdict
//!   for every path asked about.
//!
//! Units are fixed: one per request (`crate::units::UnitsRule::PerRequest`). The dispatcher
//! cannot re-run a fetch on the node's behalf (and should not add load on the site), so these
//! types are checked by replication: a second independent node, not a re-execution.

use serde::{Deserialize, Serialize};

use crate::hash::{Hash32, keccak256};
use crate::message::{JobParams, JobSpec, JobType};

/// The product token pocmesh's robots.txt rules are matched against.
pub const ROBOTS_TOKEN: &str = "pocmesh";

/// The user agent of every request a node makes for an HTTP check.
pub const USER_AGENT: &str = concat!(
    "pocmesh/",
    env!("CARGO_PKG_VERSION"),
    " (community link checker; +https://github.com/pocmesh/pocmesh/blob/main/docs/ethical-crawling.md)"
);

/// Most URL length accepted in a job.
pub const MAX_URL_LEN: usize = 2048;
/// Most paths a robots re-check asks about.
pub const MAX_ROBOTS_PATHS: usize = 64;

/// What a `link_health` check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkHealthReport {
    /// The URL asked about.
    pub url: String,
    /// Whether an HTTP answer came at all.
    pub reachable: bool,
    /// The final answer's status, when one came.
    pub status: Option<u16>,
    /// Whether the status is the expected one (any 2xx when none was given).
    pub as_expected: bool,
    /// Whether redirects were followed.
    pub redirected: bool,
    /// The URL that gave the final answer.
    pub final_url: String,
    /// From the request to the final answer's headers, ms (not compared).
    pub latency_ms: u64,
    /// Body bytes read, up to the cap (not compared).
    pub bytes_read: u64,
    /// Why it was unreachable (DNS, connection, TLS), when it was.
    pub error: Option<String>,
}

/// One path's verdict in a [`RobotsReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathVerdict {
    /// The path asked about.
    pub path: String,
    /// Whether pocmesh's user agent may fetch it.
    pub allowed: bool,
}

/// What a `robots_recheck` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobotsReport {
    /// The domain.
    pub domain: String,
    /// The status of `https://<domain>/robots.txt`, when an answer came.
    pub status: Option<u16>,
    /// Body size, bytes.
    pub size: u64,
    /// keccak-256 of the body (of nothing when there was none).
    pub content_hash: Hash32,
    /// The crawl delay the file asks of pocmesh, seconds, if any.
    pub crawl_delay_s: Option<f64>,
    /// The verdict for each path asked about, in the job's order.
    pub paths: Vec<PathVerdict>,
    /// From the request to the answer's headers, ms (not compared).
    pub latency_ms: u64,
    /// Why no answer came, when none did.
    pub error: Option<String>,
}

/// An HTTP status reduced to what independent checks should agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusClass {
    /// No HTTP answer.
    Unreachable,
    /// 1xx.
    Informational,
    /// 2xx.
    Success,
    /// 3xx (a redirect not followed).
    Redirect,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
}

impl StatusClass {
    /// The class of `status`.
    pub fn of(status: Option<u16>) -> Self {
        match status {
            None => StatusClass::Unreachable,
            Some(100..=199) => StatusClass::Informational,
            Some(200..=299) => StatusClass::Success,
            Some(300..=399) => StatusClass::Redirect,
            Some(400..=499) => StatusClass::ClientError,
            Some(_) => StatusClass::ServerError,
        }
    }
}

/// Why an HTTP check's output is not an acceptable report for its job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Not a report of the job's type.
    #[error("the output is not a {job_type} report: {reason}")]
    Malformed {
        /// The job type.
        job_type: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A report about another URL, domain or set of paths than the job asked.
    #[error("the report answers another question than the job asked: {what}")]
    Mismatch {
        /// What differs.
        what: &'static str,
    },
    /// Not an HTTP check job.
    #[error("job type {0} has no HTTP report")]
    NotHttp(&'static str),
}

/// The output bytes of a report: canonical JSON (fields in declaration order).
pub fn encode<T: Serialize>(report: &T) -> Vec<u8> {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_vec(report).unwrap_or_default()
}

/// The host of `url`, lower-cased, without port or credentials; `None` when there is none.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A robots re-check's `domain` split into its host (lower case) and optional port
/// (`example.org`, or `localhost:8080` on a devnet); `None` when it is not that shape.
pub fn split_domain(domain: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p.parse::<u16>().ok()?)),
        Some(_) => return None,
        None => (domain, None),
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#', '[', ']']) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// Checks that `output` is a report answering exactly `spec`'s question.
pub fn check_report(spec: &JobSpec, output: &[u8]) -> Result<(), ReportError> {
    match &spec.params {
        JobParams::LinkHealth { url, .. } => {
            let r: LinkHealthReport = decode(JobType::LinkHealth, output)?;
            if r.url != *url {
                return Err(ReportError::Mismatch { what: "url" });
            }
            if r.reachable != r.status.is_some() {
                return Err(ReportError::Mismatch {
                    what: "reachable without a status, or a status while unreachable",
                });
            }
            Ok(())
        }
        JobParams::RobotsRecheck { domain, paths } => {
            let r: RobotsReport = decode(JobType::RobotsRecheck, output)?;
            if !r.domain.eq_ignore_ascii_case(domain) {
                return Err(ReportError::Mismatch { what: "domain" });
            }
            let asked = r.paths.iter().map(|p| p.path.as_str());
            if !asked.eq(paths.iter().map(String::as_str)) {
                return Err(ReportError::Mismatch { what: "paths" });
            }
            Ok(())
        }
        other => Err(ReportError::NotHttp(other.job_type().as_str())),
    }
}

/// What independent checks of the same question must agree on, as one hash (module header).
pub fn comparable(job_type: JobType, output: &[u8]) -> Result<Hash32, ReportError> {
    let digest = match job_type {
        JobType::LinkHealth => {
            let r: LinkHealthReport = decode(job_type, output)?;
            let host = host_of(&r.final_url).unwrap_or_default();
            serde_json::to_vec(&(StatusClass::of(r.status), host, r.as_expected))
        }
        JobType::RobotsRecheck => {
            let r: RobotsReport = decode(job_type, output)?;
            let verdicts: Vec<bool> = r.paths.iter().map(|p| p.allowed).collect();
            serde_json::to_vec(&(StatusClass::of(r.status), r.content_hash, verdicts))
        }
        other => return Err(ReportError::NotHttp(other.as_str())),
    };
    let digest = digest.map_err(|e| ReportError::Malformed {
        job_type: job_type.as_str(),
        reason: e.to_string(),
    })?;
    Ok(Hash32(keccak256(digest)))
}

/// Whether the dispatcher can re-run jobs of `job_type` itself to check them (deterministic
/// ones); the others are checked by asking another independent node.
pub fn reexecutable(job_type: JobType) -> bool {
    job_type
        .info()
        .is_some_and(|i| i.verification == crate::job_types::Verification::ReExecuted)
}

fn decode<T: for<'de> Deserialize<'de>>(
    job_type: JobType,
    output: &[u8],
) -> Result<T, ReportError> {
    serde_json::from_slice(output).map_err(|e| ReportError::Malformed {
        job_type: job_type.as_str(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Limits;

    fn limits() -> Limits {
        Limits {
            max_ms: 10_000,
            max_mem_mb: 16,
            max_output_bytes: 4096,
            max_fuel: None,
        }
    }

    fn link(url: &str, status: Option<u16>, final_url: &str, latency_ms: u64) -> LinkHealthReport {
        LinkHealthReport {
            url: url.into(),
            reachable: status.is_some(),
            status,
            as_expected: matches!(status, Some(200..=299)),
            redirected: url != final_url,
            final_url: final_url.into(),
            latency_ms,
            bytes_read: 100 + latency_ms,
            error: None,
        }
    }

    #[test]
    fn hosts_are_read_from_urls() {
        assert_eq!(
            host_of("https://Example.org:8443/a?b#c").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            host_of("http://user:pw@host.test/").as_deref(),
            Some("host.test")
        );
        assert_eq!(host_of("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(host_of("https:///nohost"), None);
    }

    #[test]
    fn link_checks_agree_on_class_host_and_expectation_not_on_timing() {
        let a = encode(&link(
            "https://a.test/x",
            Some(200),
            "https://www.a.test/x",
            40,
        ));
        let b = encode(&link(
            "https://a.test/x",
            Some(204),
            "https://www.a.test/y",
            900,
        ));
        let c = encode(&link(
            "https://a.test/x",
            Some(404),
            "https://www.a.test/x",
            40,
        ));
        let d = encode(&link("https://a.test/x", None, "https://a.test/x", 40));
        let key = |o: &[u8]| comparable(JobType::LinkHealth, o).expect("report");
        assert_ne!(a, b, "not byte for byte");
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        assert_ne!(key(&c), key(&d));
        assert!(comparable(JobType::LinkHealth, b"garbage").is_err());
        assert!(comparable(JobType::Hash, &a).is_err());
    }

    #[test]
    fn a_report_must_answer_the_jobs_question() {
        let spec = JobSpec {
            params: JobParams::LinkHealth {
                url: "https://a.test/x".into(),
                expected_status: None,
            },
            limits: limits(),
        };
        let ok = encode(&link("https://a.test/x", Some(200), "https://a.test/x", 1));
        assert_eq!(check_report(&spec, &ok), Ok(()));
        let other = encode(&link("https://b.test/", Some(200), "https://b.test/", 1));
        assert_eq!(
            check_report(&spec, &other),
            Err(ReportError::Mismatch { what: "url" })
        );
        let mut liar = link("https://a.test/x", Some(200), "https://a.test/x", 1);
        liar.reachable = false;
        assert!(check_report(&spec, &encode(&liar)).is_err());
        let robots = JobSpec {
            params: JobParams::RobotsRecheck {
                domain: "a.test".into(),
                paths: vec!["/x".into(), "/y".into()],
            },
            limits: limits(),
        };
        let report = RobotsReport {
            domain: "A.test".into(),
            status: Some(200),
            size: 12,
            content_hash: Hash32::keccak(b"User-agent: *"),
            crawl_delay_s: None,
            paths: vec![
                PathVerdict {
                    path: "/x".into(),
                    allowed: true,
                },
                PathVerdict {
                    path: "/y".into(),
                    allowed: false,
                },
            ],
            latency_ms: 3,
            error: None,
        };
        assert_eq!(check_report(&robots, &encode(&report)), Ok(()));
        let mut fewer = report.clone();
        fewer.paths.pop();
        assert_eq!(
            check_report(&robots, &encode(&fewer)),
            Err(ReportError::Mismatch { what: "paths" })
        );
        let mut flipped = report.clone();
        flipped.paths[1].allowed = true;
        flipped.latency_ms = 99;
        let key = |r: &RobotsReport| comparable(JobType::RobotsRecheck, &encode(r)).expect("ok");
        assert_ne!(key(&report), key(&flipped));
        let mut slower = report.clone();
        slower.latency_ms = 500;
        assert_eq!(key(&report), key(&slower));
    }

    #[test]
    fn robots_domains_may_carry_a_port() {
        assert_eq!(
            split_domain("Example.org"),
            Some(("example.org".into(), None))
        );
        assert_eq!(
            split_domain("localhost:8080"),
            Some(("localhost".into(), Some(8080)))
        );
        assert_eq!(split_domain("x.org:http"), None);
        assert_eq!(split_domain("https://x.org"), None);
        assert_eq!(split_domain(""), None);
    }

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(None), StatusClass::Unreachable);
        assert_eq!(StatusClass::of(Some(301)), StatusClass::Redirect);
        assert_eq!(StatusClass::of(Some(503)), StatusClass::ServerError);
        assert!(USER_AGENT.starts_with("pocmesh/") && USER_AGENT.contains("+https://"));
        assert!(reexecutable(JobType::Wasm) && !reexecutable(JobType::LinkHealth));
    }
}
