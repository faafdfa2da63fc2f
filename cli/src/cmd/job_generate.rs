//! `pocmesh job generate link-health|robots-recheck`: turns a list of URLs, or the allow-list
//! itself, into HTTP check jobs. Only allow-listed domains become jobs (the dispatcher would
//! refuse the others); the dispatcher then hands each domain's jobs out no closer together
//! than its crawl delay, so generating many jobs never means hammering one site.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use pocmesh_dispatcher::allowlist::{AllowEntry, AllowList};
use pocmesh_dispatcher::api::SubmitRequest;
use pocmesh_protocol::http_check::{MAX_URL_LEN, host_of};
use serde::Serialize;

use super::api_client::{ApiArgs, TokenArgs};
use super::chain_args::runtime;
use crate::output::print_json;
use pocmesh_dispatcher::api::client::ClientError;

#[derive(Debug, Subcommand)]
pub(crate) enum GenerateCommand {
    /// One link_health job per URL of a CSV file (a `url` column; optional `expected_status`).
    LinkHealth(LinkArgs),
    /// One robots_recheck job per allowed domain of the allow-list (or the ones named).
    RobotsRecheck(RobotsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct Common {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    token: TokenArgs,
    /// Independent nodes per job [default: 1, checked by replication as needed].
    #[arg(long, value_name = "K")]
    redundancy: Option<u32>,
    /// Show what would be submitted, submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    #[command(flatten)]
    common: Common,
    /// The CSV file of URLs.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RobotsArgs {
    #[command(flatten)]
    common: Common,
    /// Only these domains (repeat, or comma-separate) [default: every allowed domain].
    #[arg(long = "domain", value_name = "DOMAIN", value_delimiter = ',')]
    domains: Vec<String>,
    /// Paths to ask about on each domain (repeat, or comma-separate).
    #[arg(long = "path", value_name = "PATH", value_delimiter = ',')]
    paths: Vec<String>,
}

/// One job to submit.
#[derive(Debug, Clone, Serialize)]
struct Planned {
    /// Where it came from (line of the file, or the domain).
    source: String,
    /// What it checks.
    target: String,
    #[serde(skip)]
    request: SubmitRequest,
}

/// One row that does not become a job.
#[derive(Debug, Clone, Serialize)]
struct Skipped {
    source: String,
    target: String,
    reason: String,
}

/// What a generation did.
#[derive(Debug, Serialize)]
struct Report {
    submitted: Vec<SubmittedJob>,
    skipped: Vec<Skipped>,
    failed: Vec<Skipped>,
    dry_run: bool,
}

#[derive(Debug, Serialize)]
struct SubmittedJob {
    target: String,
    id: String,
}

pub(crate) fn run(command: GenerateCommand) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async move {
        let (common, planned, skipped) = match command {
            GenerateCommand::LinkHealth(a) => {
                let list = allowlist(&a.common.api).await?;
                let text = std::fs::read_to_string(&a.from)
                    .with_context(|| format!("reading {}", a.from.display()))?;
                let (planned, skipped) = plan_links(&text, &list, a.common.redundancy)?;
                (a.common, planned, skipped)
            }
            GenerateCommand::RobotsRecheck(a) => {
                let list = allowlist(&a.common.api).await?;
                let (planned, skipped) =
                    plan_robots(&list, &a.domains, &a.paths, a.common.redundancy);
                (a.common, planned, skipped)
            }
        };
        submit_all(common, planned, skipped).await
    })
}

async fn allowlist(api: &ApiArgs) -> anyhow::Result<AllowList> {
    let entries: Vec<AllowEntry> = api.client().allowlist().await?;
    if entries.is_empty() {
        bail!(
            "the dispatcher's allow-list is empty; import one first: `pocmesh allowlist import FILE.csv --kind policy`"
        );
    }
    Ok(AllowList::from_entries(entries))
}

/// The jobs a URL file asks for, and the rows that cannot be jobs, with their line numbers.
fn plan_links(
    text: &str,
    list: &AllowList,
    redundancy: Option<u32>,
) -> anyhow::Result<(Vec<Planned>, Vec<Skipped>)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers = reader.headers().context("reading the CSV header")?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(c_url) = col("url") else {
        bail!(
            "the file has no `url` column (its header is: {})",
            headers.iter().collect::<Vec<_>>().join(",")
        );
    };
    let c_expected = col("expected_status");
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    for record in reader.records() {
        let record = record.context("reading the CSV")?;
        let line = record.position().map_or(0, |p| p.line());
        let source = format!("line {line}");
        let url = record.get(c_url).unwrap_or("").to_string();
        let skip = |reason: String| Skipped {
            source: source.clone(),
            target: url.clone(),
            reason,
        };
        if url.is_empty() {
            skipped.push(skip("no URL".into()));
            continue;
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > MAX_URL_LEN {
            skipped.push(skip("not an http(s) URL".into()));
            continue;
        }
        let expected_status = match c_expected
            .and_then(|c| record.get(c))
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => match s.parse::<u16>() {
                Ok(v) if (100..=599).contains(&v) => Some(v),
                _ => {
                    skipped.push(skip(format!("expected_status `{s}` is not an HTTP status")));
                    continue;
                }
            },
        };
        let Some(host) = host_of(&url) else {
            skipped.push(skip("the URL has no host".into()));
            continue;
        };
        if let Err(reason) = list.permits(&host) {
            skipped.push(skip(reason));
            continue;
        }
        if !seen.insert(url.clone()) {
            skipped.push(skip("listed before".into()));
            continue;
        }
        planned.push(Planned {
            source,
            target: url.clone(),
            request: SubmitRequest {
                job_type: "link_health".into(),
                url: Some(url.clone()),
                expected_status,
                redundancy,
                ..SubmitRequest::default()
            },
        });
    }
    Ok((planned, skipped))
}

/// One robots re-check per allowed domain (or per domain named).
fn plan_robots(
    list: &AllowList,
    only: &[String],
    paths: &[String],
    redundancy: Option<u32>,
) -> (Vec<Planned>, Vec<Skipped>) {
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    let wanted: Vec<String> = if only.is_empty() {
        list.entries().map(|e| e.domain.clone()).collect()
    } else {
        only.iter().map(|d| d.trim().to_ascii_lowercase()).collect()
    };
    for domain in wanted {
        // A port (devnets) is kept in the job but does not change whose domain it is.
        let host = pocmesh_protocol::http_check::split_domain(&domain)
            .map_or_else(|| domain.clone(), |(h, _)| h);
        match list.permits(&host) {
            Ok(_) => planned.push(Planned {
                source: domain.clone(),
                target: domain.clone(),
                request: SubmitRequest {
                    job_type: "robots_recheck".into(),
                    domain: Some(domain.clone()),
                    paths: paths.to_vec(),
                    redundancy,
                    ..SubmitRequest::default()
                },
            }),
            Err(reason) => skipped.push(Skipped {
                source: domain.clone(),
                target: domain,
                reason,
            }),
        }
    }
    (planned, skipped)
}

async fn submit_all(
    common: Common,
    planned: Vec<Planned>,
    skipped: Vec<Skipped>,
) -> anyhow::Result<ExitCode> {
    let mut report = Report {
        submitted: Vec::new(),
        skipped,
        failed: Vec::new(),
        dry_run: common.dry_run,
    };
    if !common.dry_run && !planned.is_empty() {
        let client = common.api.client().with_token(common.token.resolve()?);
        let bar = if common.json {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(planned.len() as u64)
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "submitting {bar:30} {pos}/{len} jobs [{elapsed}] {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        for p in &planned {
            bar.set_message(p.target.clone());
            match client.submit(&p.request).await {
                Ok(s) => report.submitted.push(SubmittedJob {
                    target: p.target.clone(),
                    id: s.id.to_string(),
                }),
                // Nobody answering is not one job's problem: stop and say so.
                Err(e @ ClientError::Unreachable { .. }) => {
                    bar.finish_and_clear();
                    return Err(e.into());
                }
                Err(e) => report.failed.push(Skipped {
                    source: p.source.clone(),
                    target: p.target.clone(),
                    reason: e.to_string(),
                }),
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    if common.json {
        print_json(&report)?;
    } else {
        if common.dry_run {
            for p in &planned {
                println!("would submit  {}  ({})", p.target, p.source);
            }
        }
        for s in &report.submitted {
            println!("{}  {}", s.id, s.target);
        }
        for s in &report.skipped {
            println!("skipped  {}  {}: {}", s.source, s.target, s.reason);
        }
        for s in &report.failed {
            println!("refused  {}  {}: {}", s.source, s.target, s.reason);
        }
        println!(
            "{} job(s) {}, {} skipped, {} refused by the dispatcher; the dispatcher spaces each domain's requests by its crawl delay",
            if common.dry_run {
                planned.len()
            } else {
                report.submitted.len()
            },
            if common.dry_run {
                "planned"
            } else {
                "submitted"
            },
            report.skipped.len(),
            report.failed.len()
        );
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pocmesh_dispatcher::allowlist::{CsvKind, parse};

    fn list() -> AllowList {
        let mut l = AllowList::default();
        let rows =
            parse(CsvKind::Policy, "domain,allowed\nok.test,yes\nno.test,no\n").expect("policy");
        l.apply(CsvKind::Policy, &rows, 1);
        l
    }

    #[test]
    fn only_allow_listed_urls_become_jobs() {
        let csv = "name,url,expected_status\n\
                   a,https://ok.test/a,\n\
                   b,https://www.ok.test/b,301\n\
                   c,https://no.test/c,\n\
                   d,https://elsewhere.test/d,\n\
                   e,ftp://ok.test/e,\n\
                   f,https://ok.test/a,\n\
                   g,https://ok.test/g,999\n";
        let (planned, skipped) = plan_links(csv, &list(), None).expect("plan");
        let targets: Vec<&str> = planned.iter().map(|p| p.target.as_str()).collect();
        assert_eq!(targets, vec!["https://ok.test/a", "https://www.ok.test/b"]);
        assert_eq!(planned[1].request.expected_status, Some(301));
        let lines: Vec<&str> = skipped.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(
            lines,
            vec!["line 4", "line 5", "line 6", "line 7", "line 8"]
        );
        assert!(skipped[1].reason.contains("not on the allow-list"));
        assert!(
            plan_links("link\nhttps://ok.test\n", &list(), None).is_err(),
            "no url column"
        );
    }

    #[test]
    fn robots_rechecks_cover_allowed_domains() {
        let (planned, skipped) = plan_robots(&list(), &[], &["/x".into()], Some(2));
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].request.domain.as_deref(), Some("ok.test"));
        assert_eq!(planned[0].request.paths, vec!["/x".to_string()]);
        assert_eq!(skipped.len(), 1);
    }
}
