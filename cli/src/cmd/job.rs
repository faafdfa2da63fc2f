//! `pocmesh job submit|generate|status|list` and `pocmesh nodes`: the dispatcher's HTTP API from
//! the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use pocmesh_dispatcher::api::client::{ApiClient, JobsQuery};
use pocmesh_dispatcher::api::{JobView, SubmitRequest, Submitted};
use pocmesh_dispatcher::registry::NodeView;
use pocmesh_protocol::{Bytes, Hash32, JobType};

use super::api_client::{ApiArgs, TokenArgs};
use super::chain_args::runtime;
use super::daemon_args::job_type_parser;
use crate::output::print_json;

#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Submit a job; prints its id (and, with --wait, the transaction that credited it).
    Submit(Box<SubmitArgs>),
    /// Turn a list of URLs (link-health) or the allow-list (robots-recheck) into HTTP check jobs.
    #[command(subcommand)]
    Generate(super::job_generate::GenerateCommand),
    /// Show one job: state, attempts, nodes, result, transaction.
    Status(StatusArgs),
    /// List jobs, newest first.
    List(ListArgs),
    /// Describe every job type: what it does, its units, how it is verified, whether nodes run it
    /// by default.
    Types(TypesArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    token: TokenArgs,
    /// Job type (the registry's names; `pocmesh job types` describes each).
    #[arg(long = "type", value_name = "TYPE", value_parser = job_type_parser())]
    job_type: JobType,
    /// link_health: the URL to check (its domain must be on the allow-list).
    #[arg(long, value_name = "URL", required_if_eq("job_type", "link_health"))]
    url: Option<String>,
    /// link_health: the status expected [default: any 2xx].
    #[arg(long, value_name = "CODE")]
    expected_status: Option<u16>,
    /// robots_recheck: the domain whose robots.txt to re-check.
    #[arg(
        long,
        value_name = "DOMAIN",
        required_if_eq("job_type", "robots_recheck")
    )]
    domain: Option<String>,
    /// robots_recheck: paths to ask about (repeat, or comma-separate).
    #[arg(long = "path", value_name = "PATH", value_delimiter = ',')]
    paths: Vec<String>,
    /// hash: iterations of keccak256.
    #[arg(long, value_name = "N", required_if_eq("job_type", "hash"))]
    iterations: Option<u64>,
    /// hash: starting value, 0x + 64 hex digits [default: random].
    #[arg(long, value_name = "HEX")]
    seed: Option<Hash32>,
    /// wasm: the module file (.wasm binary or .wat text).
    #[arg(long, value_name = "FILE", required_if_eq("job_type", "wasm"))]
    module: Option<PathBuf>,
    /// wasm: the input file [default: empty].
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Independent nodes that must agree on the result [default: 1, checked by the dispatcher's
    /// adaptive re-executions].
    #[arg(long, value_name = "K")]
    redundancy: Option<u32>,
    /// Wait until the job is recorded on chain (or fails), with progress.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "S")]
    timeout: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The job id.
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Only jobs in this state (queued, offered, running, submitted, verified, recording,
    /// recorded, failed, rejected).
    #[arg(long, value_name = "STATE", conflicts_with = "wallet")]
    state: Option<String>,
    /// Only jobs that credited this wallet (0x… or xdc…).
    #[arg(long, value_name = "ADDR")]
    wallet: Option<pocmesh_protocol::Address>,
    /// At most this many, newest first (1 to 1000).
    #[arg(long, default_value_t = 50, value_name = "N")]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct NodesArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: JobCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobCommand::Submit(a) => submit(*a),
        JobCommand::Generate(c) => super::job_generate::run(c),
        JobCommand::Status(a) => status(a),
        JobCommand::List(a) => list(a),
        JobCommand::Types(a) => types(a),
    }
}

fn submit(a: SubmitArgs) -> anyhow::Result<ExitCode> {
    let token = a.token.resolve()?;
    let read_file =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let request = SubmitRequest {
        job_type: a.job_type.as_str().to_string(),
        url: a.url.clone(),
        expected_status: a.expected_status,
        domain: a.domain.clone(),
        paths: a.paths.clone(),
        iterations: a.iterations,
        seed: a.seed,
        module: a.module.as_ref().map(read_file).transpose()?.map(Bytes),
        input: a.input.as_ref().map(read_file).transpose()?.map(Bytes),
        redundancy: a.redundancy,
        limits: None,
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let client = a.api.client().with_token(token);
        let submitted: Submitted = client.submit(&request).await?;
        if !a.wait {
            if a.json {
                print_json(&submitted)?;
            } else {
                println!("{}", submitted.id);
            }
            return Ok(ExitCode::SUCCESS);
        }
        let job = wait(&client, &submitted.id.to_string(), a.timeout, a.json).await?;
        if a.json {
            print_json(&job)?;
        } else {
            print_job(&job);
        }
        Ok(if job.state == "recorded" {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// Polls a job until it is final, showing its state.
async fn wait(
    client: &ApiClient,
    id: &str,
    timeout_s: u64,
    quiet: bool,
) -> anyhow::Result<JobView> {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
    loop {
        let job: JobView = client.job(id).await?;
        bar.set_message(format!("job {id}: {}", job.state));
        if matches!(job.state.as_str(), "recorded" | "failed" | "rejected") {
            bar.finish_and_clear();
            return Ok(job);
        }
        if tokio::time::Instant::now() > deadline {
            bar.finish_and_clear();
            bail!(
                "job {id} is still `{}` after {timeout_s} s; check `pocmesh job status {id}` later",
                job.state
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_job(job: &JobView) {
    println!("job       {}", job.id);
    println!("state     {}", job.state);
    if let Some(e) = &job.error {
        println!("error     {e}");
    }
    println!("type      {} (redundancy {})", job.job_type, job.redundancy);
    for a in &job.attempts {
        println!(
            "attempt   #{} node {} {}{}",
            a.n,
            a.node,
            a.state,
            a.detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
    }
    if let Some(r) = &job.result {
        println!(
            "result    {} ({} fuel, {} bytes)",
            r.result_hash, r.metering.fuel, r.metering.bytes
        );
    }
    if let Some(audit) = &job.audit {
        println!("re-run    {audit} (the dispatcher's own execution)");
    }
    if job.units > 0 {
        println!("units     {} to {}", job.units, job.nodes.len());
    }
    for q in &job.quarantined {
        println!(
            "quarantined {} units for wallet {} (node {}): {}",
            q.units, q.wallet, q.node, q.reason
        );
    }
    if let (Some(tx), Some(block)) = (job.tx, job.block) {
        println!("tx        {tx} (block {block})");
    }
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let job: JobView = rt.block_on(a.api.client().job(&a.id))?;
    if a.json {
        print_json(&job)?;
    } else {
        print_job(&job);
    }
    Ok(ExitCode::SUCCESS)
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let query = JobsQuery {
        state: a.state.clone(),
        wallet: a.wallet,
        limit: Some(a.limit),
        cursor: None,
    };
    let jobs: Vec<JobView> = rt.block_on(a.api.client().jobs(&query))?.items;
    if a.json {
        print_json(&jobs)?;
    } else {
        for j in &jobs {
            println!(
                "{}  {:<10} {:<5} units {}",
                j.id, j.state, j.job_type, j.units
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pocmesh nodes`.
pub(crate) fn nodes(a: NodesArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let nodes: Vec<NodeView> = rt.block_on(a.api.client().nodes())?;
    if a.json {
        print_json(&nodes)?;
    } else {
        for n in &nodes {
            let standing = match n.trust {
                pocmesh_dispatcher::policy::Trust::Probation { remaining } => {
                    format!("probation ({remaining} checks to go)")
                }
                pocmesh_dispatcher::policy::Trust::Trusted => {
                    format!("trusted (audited {:.0}%)", n.audit_rate * 100.0)
                }
                pocmesh_dispatcher::policy::Trust::Excluded => format!(
                    "EXCLUDED: {}",
                    n.exclusion
                        .as_ref()
                        .map(|e| e.reason.as_str())
                        .unwrap_or("results proven wrong")
                ),
            };
            println!(
                "{}  {:<7} wallet {}  slots {}/{}  reliability {:.2}  {standing}",
                n.address,
                if n.online { "online" } else { "offline" },
                n.wallet,
                n.free_slots,
                n.caps.slots_total,
                n.reliability
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct TypesArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One row of `pocmesh job types --json`.
#[derive(Debug, serde::Serialize)]
struct TypeRow {
    name: &'static str,
    summary: &'static str,
    units: String,
    verification: &'static str,
    reaches_web: bool,
    default_enabled: bool,
}

/// `pocmesh job types`: the registry of job types.
fn types(a: TypesArgs) -> anyhow::Result<ExitCode> {
    let rows: Vec<TypeRow> = pocmesh_protocol::JOB_TYPES
        .iter()
        .map(|i| TypeRow {
            name: i.name,
            summary: i.summary,
            units: i.units.describe(),
            verification: match i.verification {
                pocmesh_protocol::Verification::ReExecuted => "re-executed by the dispatcher",
                pocmesh_protocol::Verification::Replicated => "compared across independent nodes",
            },
            reaches_web: i.reaches_web,
            default_enabled: i.default_enabled,
        })
        .collect();
    if a.json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &rows {
        println!("{}", r.name);
        println!("  {}", r.summary);
        println!("  units: {}; verified: {}", r.units, r.verification);
        println!(
            "  {}{}",
            if r.default_enabled {
                "nodes run it by default"
            } else {
                "nodes run it only when --job-types names it"
            },
            if r.reaches_web {
                "; makes web requests (allow-listed hosts only)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
