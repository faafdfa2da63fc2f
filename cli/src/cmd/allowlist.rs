//! `pocmesh allowlist import|export|list`: the dispatcher's allow-list of domains HTTP check
//! jobs may touch (docs/ethical-crawling.md has the two CSV files' columns).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use pocmesh_dispatcher::allowlist::{AllowEntry, CsvKind, ImportSummary};
use pocmesh_dispatcher::api::community::ImportRefused;

use super::api_client::{ApiArgs, TokenArgs};
use super::chain_args::runtime;
use crate::output::print_json;
use pocmesh_dispatcher::api::client::ClientError;

#[derive(Debug, Subcommand)]
pub(crate) enum AllowlistCommand {
    /// Import a policy or robots-audit CSV file: all of it, or nothing (bad lines are listed).
    Import(ImportArgs),
    /// Write the whole allow-list as CSV (every column), to a file or stdout.
    Export(ExportArgs),
    /// Show the allow-list.
    List(ListArgs),
}

/// Which CSV file.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    /// domain,allowed,crawl_delay_s,notes
    Policy,
    /// domain,robots_status,crawl_delay_s,last_audited,notes
    RobotsAudit,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The CSV file.
    file: PathBuf,
    /// What the file is.
    #[arg(long, value_enum, default_value = "policy")]
    kind: Kind,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    token: TokenArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Write here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: AllowlistCommand) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async move {
        match command {
            AllowlistCommand::Import(a) => import(a).await,
            AllowlistCommand::Export(a) => {
                let text = a.api.client().get_text("/v1/allowlist?format=csv").await?;
                match a.out {
                    Some(path) => {
                        std::fs::write(&path, text)
                            .with_context(|| format!("writing {}", path.display()))?;
                        eprintln!("allow-list written to {}", path.display());
                    }
                    None => print!("{text}"),
                }
                Ok(ExitCode::SUCCESS)
            }
            AllowlistCommand::List(a) => {
                let entries: Vec<AllowEntry> = a.api.client().allowlist().await?;
                if a.json {
                    print_json(&entries)?;
                } else if entries.is_empty() {
                    println!("the allow-list is empty; import one with `pocmesh allowlist import FILE.csv`");
                } else {
                    println!(
                        "{:<40} {:<8} {:>6}  {:<10} {:<10}  notes",
                        "domain", "allowed", "delay", "robots", "audited"
                    );
                    for e in &entries {
                        println!(
                            "{:<40} {:<8} {:>5}s  {:<10} {:<10}  {}",
                            e.domain,
                            if e.permits() { "yes" } else { "no" },
                            e.crawl_delay_s,
                            e.robots_status.map_or("-", |r| r.as_str()),
                            e.last_audited.as_deref().unwrap_or("-"),
                            e.notes
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let token = a.token.resolve()?;
    let kind = match a.kind {
        Kind::Policy => "policy",
        Kind::RobotsAudit => "robots-audit",
    };
    debug_assert!(kind.parse::<CsvKind>().is_ok());
    let client = a.api.client().with_token(token);
    let path = format!("/v1/allowlist/import?kind={kind}");
    let refusal = match client
        .post_body::<ImportSummary>(&path, "text/csv", text)
        .await
    {
        Ok(summary) => {
            if a.json {
                print_json(&summary)?;
            } else {
                println!(
                    "imported {} ({} rows): {} domains added, {} changed",
                    a.file.display(),
                    summary.rows,
                    summary.created,
                    summary.updated
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => e,
    };
    // A refused file comes back with every bad line; anything else is an error as it is.
    let refused = match &refusal {
        ClientError::Refused { body, .. } => serde_json::from_slice::<ImportRefused>(body).ok(),
        _ => None,
    };
    let Some(refused) = refused else {
        return Err(refusal.into());
    };
    if a.json {
        print_json(&refused)?;
    } else {
        eprintln!("{}: {}", a.file.display(), refused.error);
        for l in &refused.lines {
            eprintln!("  line {}: {}", l.line, l.reason);
        }
    }
    Ok(ExitCode::from(1))
}
