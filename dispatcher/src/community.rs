//! Community compute in the engine: HTTP check jobs are accepted only for allow-listed domains,
//! spaced per domain by its crawl delay when they are handed out, and their verified answers
//! (or their failure everywhere) are recorded as link and robots.txt health. The allow-list
//! itself is imported here, whole or not at all, and stored with the jobs.

use std::collections::HashMap;

use pocmesh_protocol::http_check::{
    self, LinkHealthReport, MAX_ROBOTS_PATHS, MAX_URL_LEN, RobotsReport,
};
use pocmesh_protocol::{JobId, JobParams, JobSpec};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::allowlist::{self, AllowList, CsvKind, ImportSummary, LineError};
use crate::engine::{Ack, Engine};
use crate::health;
use crate::lifecycle::AttemptState;

/// Why an allow-list import was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The file has bad lines; nothing was imported.
    #[error("the file has {} bad line(s); nothing was imported", .0.len())]
    Invalid(Vec<LineError>),
    /// The dispatcher could not store it.
    #[error("the dispatcher could not store the allow-list: {0}")]
    Store(String),
}

/// The domain an HTTP check touches, as written in its spec.
pub fn target_domain(params: &JobParams) -> Option<String> {
    match params {
        JobParams::LinkHealth { url, .. } => http_check::host_of(url),
        JobParams::RobotsRecheck { domain, .. } => http_check::split_domain(domain).map(|(h, _)| h),
        _ => None,
    }
}

/// Checks an HTTP check spec's shape and that the allow-list permits its domain; the error
/// names the domain and the fix.
pub fn check_http_spec(spec: &JobSpec, list: &AllowList) -> Result<(), String> {
    let host = match &spec.params {
        JobParams::LinkHealth {
            url,
            expected_status,
        } => {
            if url.len() > MAX_URL_LEN {
                return Err(format!(
                    "link_health: the URL is over {MAX_URL_LEN} characters"
                ));
            }
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok {
                return Err(format!("link_health: `{url}` is not an http(s) URL"));
            }
            if expected_status.is_some_and(|s| !(100..=599).contains(&s)) {
                return Err(
                    "link_health: expected_status must be an HTTP status, 100 to 599".into(),
                );
            }
            http_check::host_of(url).ok_or_else(|| format!("link_health: `{url}` has no host"))?
        }
        JobParams::RobotsRecheck { domain, paths } => {
            if paths.len() > MAX_ROBOTS_PATHS {
                return Err(format!(
                    "robots_recheck: at most {MAX_ROBOTS_PATHS} paths per job"
                ));
            }
            if let Some(p) = paths
                .iter()
                .find(|p| !p.starts_with('/') || p.len() > MAX_URL_LEN)
            {
                return Err(format!("robots_recheck: path `{p}` must start with `/`"));
            }
            let (host, _port) = http_check::split_domain(domain).ok_or_else(|| {
                format!(
                    "robots_recheck: `{domain}` is not a domain (host, or host:port on a devnet)"
                )
            })?;
            allowlist::normalise_domain(&host).map_err(|e| format!("robots_recheck: {e}"))?
        }
        _ => return Ok(()),
    };
    list.permits(&host).map(|_| ())
}

impl Engine {
    /// Imports one allow-list file of `kind`: all of it, or nothing.
    pub(crate) fn import_allowlist(
        &mut self,
        kind: CsvKind,
        text: &str,
        reply: oneshot::Sender<Result<ImportSummary, ImportError>>,
    ) {
        let rows = match allowlist::parse(kind, text) {
            Ok(rows) => rows,
            Err(lines) => {
                let _ = reply.send(Err(ImportError::Invalid(lines)));
                return;
            }
        };
        let (summary, changed) = self.allowlist.apply(kind, &rows, self.now());
        info!(
            ?kind,
            rows = summary.rows,
            created = summary.created,
            updated = summary.updated,
            "allow-list imported"
        );
        self.changes.allowlist.extend(changed);
        self.acks.push(Ack::Import(reply, summary));
    }

    /// Whether an HTTP check of `spec` may be handed out at `now` under its domain's crawl
    /// delay; if so, the domain's next slot is taken.
    pub(crate) fn crawl_slot(&mut self, spec: &JobSpec, now: u64) -> bool {
        let Some(domain) = target_domain(&spec.params) else {
            return true;
        };
        let delay_ms = self
            .allowlist
            .entry_for(&domain)
            .map_or(allowlist::DEFAULT_CRAWL_DELAY_S, |e| e.crawl_delay_s)
            .saturating_mul(1000);
        let next = self.domain_next_ms.get(&domain).copied().unwrap_or(0);
        if now < next {
            return false;
        }
        if self.domain_next_ms.len() >= DOMAIN_SLOTS_CAP {
            self.domain_next_ms.retain(|_, t| *t > now);
        }
        self.domain_next_ms
            .insert(domain, now.saturating_add(u64::from(delay_ms)));
        true
    }

    /// Records a verified HTTP check's answer as health.
    pub(crate) fn record_health(&mut self, id: JobId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let Some(output) = job
            .attempts
            .iter()
            .find(|a| a.state == AttemptState::Accepted)
            .and_then(|a| a.result.as_ref())
            .map(|r| r.output.clone())
        else {
            return;
        };
        let now = self.now();
        match &job.spec.params {
            JobParams::LinkHealth { url, .. } => {
                let Ok(report) = serde_json::from_slice::<LinkHealthReport>(&output) else {
                    return;
                };
                let domain = http_check::host_of(url).unwrap_or_default();
                let prev = self.store.url_health(&domain, url).ok().flatten();
                let prev = self.pending_url_health(&domain, url).or(prev);
                let h = health::record_link(prev, &domain, &report, id, now);
                self.changes.health_urls.push(h);
            }
            JobParams::RobotsRecheck { domain, .. } => {
                let Ok(report) = serde_json::from_slice::<RobotsReport>(&output) else {
                    return;
                };
                let d = http_check::split_domain(domain)
                    .map_or_else(|| domain.to_ascii_lowercase(), |(host, _)| host);
                let prev = self.store.domain_health(&d).ok().flatten();
                let prev = self
                    .changes
                    .health_domains
                    .iter()
                    .rev()
                    .find(|x| x.domain == d)
                    .cloned()
                    .or(prev);
                let h = health::record_robots(prev, &d, &report, id, now);
                self.changes.health_domains.push(h);
            }
            _ => {}
        }
    }

    /// Records that no node could check a link (its job failed).
    pub(crate) fn record_health_failure(&mut self, id: JobId, reason: &str) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let JobParams::LinkHealth { url, .. } = &job.spec.params else {
            return;
        };
        let url = url.clone();
        let domain = http_check::host_of(&url).unwrap_or_default();
        let prev = self.store.url_health(&domain, &url).ok().flatten();
        let prev = self.pending_url_health(&domain, &url).or(prev);
        let h = health::record_link_failure(prev, &url, &domain, reason, id, self.now());
        self.changes.health_urls.push(h);
    }

    /// A URL record already changed in this burst, if any (newer than the stored one).
    fn pending_url_health(&self, domain: &str, url: &str) -> Option<health::UrlHealth> {
        self.changes
            .health_urls
            .iter()
            .rev()
            .find(|h| h.domain == domain && h.url == url)
            .cloned()
    }

    /// Loads the stored allow-list (at start).
    pub(crate) fn load_allowlist(&mut self) {
        match self.store.allowlist() {
            Ok(entries) => {
                self.allowlist = AllowList::from_entries(entries);
                info!(domains = self.allowlist.len(), "allow-list loaded");
            }
            Err(e) => {
                warn!(error = %e, "cannot read the stored allow-list; HTTP checks are refused until one is imported")
            }
        }
    }
}

/// Most domains whose next crawl slot is remembered (older ones are forgotten when full).
const DOMAIN_SLOTS_CAP: usize = 100_000;

/// Domain → the earliest time of its next request.
pub(crate) type CrawlSlots = HashMap<String, u64>;

#[cfg(test)]
mod tests {
    use super::*;
    use pocmesh_protocol::Limits;

    fn list() -> AllowList {
        let mut l = AllowList::default();
        let rows = allowlist::parse(
            CsvKind::Policy,
            "domain,allowed,crawl_delay_s\ngrants.example.org,yes,5\nno.example.org,no,\n",
        )
        .expect("policy");
        l.apply(CsvKind::Policy, &rows, 1);
        l
    }

    fn spec(params: JobParams) -> JobSpec {
        JobSpec {
            params,
            limits: Limits {
                max_ms: 10_000,
                max_mem_mb: 16,
                max_output_bytes: 4096,
                max_fuel: None,
            },
        }
    }

    fn link(url: &str) -> JobSpec {
        spec(JobParams::LinkHealth {
            url: url.into(),
            expected_status: None,
        })
    }

    #[test]
    fn http_checks_need_an_allow_listed_domain() {
        let l = list();
        assert_eq!(
            check_http_spec(&link("https://grants.example.org/a"), &l),
            Ok(())
        );
        assert_eq!(
            check_http_spec(&link("https://www.grants.example.org/a"), &l),
            Ok(())
        );
        let e = check_http_spec(&link("https://evil.example.com/"), &l).expect_err("absent");
        assert!(e.contains("evil.example.com"), "{e}");
        assert!(check_http_spec(&link("https://no.example.org/"), &l).is_err());
        assert!(check_http_spec(&link("ftp://grants.example.org/"), &l).is_err());
        let robots = |domain: &str, paths: Vec<String>| {
            spec(JobParams::RobotsRecheck {
                domain: domain.into(),
                paths,
            })
        };
        assert_eq!(
            check_http_spec(&robots("grants.example.org", vec!["/x".into()]), &l),
            Ok(())
        );
        assert!(check_http_spec(&robots("grants.example.org", vec!["x".into()]), &l).is_err());
        assert!(check_http_spec(&robots("https://grants.example.org", vec![]), &l).is_err());
        assert_eq!(
            check_http_spec(&robots("grants.example.org:8443", vec![]), &l),
            Ok(())
        );
        let mut bad_status = link("https://grants.example.org/");
        if let JobParams::LinkHealth {
            expected_status, ..
        } = &mut bad_status.params
        {
            *expected_status = Some(999);
        }
        assert!(check_http_spec(&bad_status, &l).is_err());
    }

    #[test]
    fn targets_are_read_from_specs() {
        assert_eq!(
            target_domain(&link("https://A.test:8443/x").params).as_deref(),
            Some("a.test")
        );
        assert_eq!(
            target_domain(&JobParams::Hash {
                seed: Default::default(),
                iterations: 1
            }),
            None
        );
    }
}
