//! `pocmesh health DOMAIN`: link and robots.txt health of one domain, from verified HTTP checks.

use std::process::ExitCode;

use clap::Args;
use pocmesh_dispatcher::health::{HealthView, LinkOutcome};

use super::api_client::ApiArgs;
use super::chain_args::runtime;
use crate::output::print_json;

#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The domain.
    domain: String,
    #[command(flatten)]
    api: ApiArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: HealthArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let view: HealthView = rt.block_on(a.api.client().health(&a.domain))?;
    if a.json {
        print_json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} URLs checked, {} healthy, {} broken",
        view.domain, view.urls_checked, view.urls_healthy, view.urls_broken
    );
    match &view.robots {
        Some(r) => {
            println!(
                "robots.txt: status {}, {} bytes, hash {}{}, crawl delay {}",
                r.status.map_or("none".to_string(), |s| s.to_string()),
                r.size,
                r.content_hash,
                if r.changed { " (changed)" } else { "" },
                r.crawl_delay_s
                    .map_or("none".to_string(), |d| format!("{d} s"))
            );
            for p in &r.paths {
                println!(
                    "  {} {}",
                    if p.allowed {
                        "allowed   "
                    } else {
                        "disallowed"
                    },
                    p.path
                );
            }
        }
        None => println!("robots.txt: not checked yet (`pocmesh job generate robots-recheck`)"),
    }
    for u in &view.urls {
        let verdict = match u.healthy {
            Some(true) => "healthy",
            Some(false) => "BROKEN",
            None => "unknown",
        };
        let last = u.history.first().map(|e| match &e.outcome {
            LinkOutcome::Checked {
                status, final_url, ..
            } => format!(
                "status {}{}",
                status.map_or("none".to_string(), |s| s.to_string()),
                if final_url != &u.url {
                    format!(" → {final_url}")
                } else {
                    String::new()
                }
            ),
            LinkOutcome::CheckFailed { reason } => format!("check failed: {reason}"),
        });
        println!("{verdict:<8} {}  {}", u.url, last.unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}
