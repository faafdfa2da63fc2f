//! `pocmesh node run|status`: the volunteer node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use pocmesh_node::NodeConfig;
use pocmesh_node::config::{DEFAULT_STATUS_PORT, default_data_dir};
use pocmesh_node::daemon::status_addr_path;
use pocmesh_node::status::StatusReport;
use pocmesh_protocol::{Address, JobType};

use super::daemon_args::{NetArgs, parse_job_type, run_until_signal};
use crate::output::print_json;

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Run a volunteer node: join the mesh, announce this machine, run jobs, earn units.
    #[command(long_about = RUN_ABOUT)]
    Run(Box<RunArgs>),
    /// Show a running node's peers, heartbeats, jobs, units earned and receipt checks.
    Status(StatusArgs),
}

const RUN_ABOUT: &str =
    "Run a volunteer node: join the mesh, announce this machine, run jobs, earn units.

The node creates its key on first run (in --data-dir, mode 0600), publishes a signed heartbeat every
few seconds, accepts jobs only from dispatchers you trust (--trust-dispatcher, or holders of the
dispatcher role on --contract via --rpc), runs them in a sandbox with the limits you set, and
credits the compute units to --wallet on chain. With --rpc and --contract it also checks each
receipt a dispatcher sends against the batch root on chain before counting its units; without them
the units show as unconfirmed. Stop it with Ctrl-C: running jobs get a grace period, the rest are
handed back. `pocmesh node status` shows what it is doing.

By running a node you accept the consent text in docs/run-a-node.md (version 1): hash and
WebAssembly jobs only, no access to your files or network, hard limits on time, memory and output.";

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Your wallet address (0x… or xdc…): it is credited with the units this node earns (not the
    /// zero address, not the contract's).
    #[arg(long, env = "POCMESH_WALLET", value_name = "ADDR")]
    wallet: Option<Address>,
    /// TOML config file; flags and POCMESH_* variables override it.
    #[arg(long, env = "POCMESH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the key, the job database and status files live [default: ~/.pocmesh/node].
    #[arg(long, env = "POCMESH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    net: NetArgs,
    /// Jobs run at once [default: one per CPU core].
    #[arg(long, env = "POCMESH_MAX_JOBS", value_name = "N")]
    max_jobs: Option<u32>,
    /// Job types to run: hash, wasm [default: both].
    #[arg(long, value_delimiter = ',', value_parser = parse_job_type, value_name = "TYPE")]
    job_types: Vec<JobType>,
    /// Longest wall-clock time a job may ask for, milliseconds.
    #[arg(long, value_name = "MS")]
    max_job_ms: Option<u64>,
    /// Most memory a job may ask for, MiB.
    #[arg(long, value_name = "MIB")]
    max_job_mem_mb: Option<u64>,
    /// A dispatcher whose jobs you accept (0x… or xdc…); repeat or comma-separate.
    #[arg(long = "trust-dispatcher", value_delimiter = ',', value_name = "ADDR")]
    trust_dispatcher: Vec<Address>,
    /// Chain RPC used to check that a dispatcher holds DISPATCHER_ROLE and that receipts match
    /// the batch roots on chain (with --contract).
    #[arg(long, env = "POCMESH_RPC", value_name = "URL")]
    rpc: Option<String>,
    /// The ProofOfCompute contract whose dispatchers you trust and whose batch roots confirm
    /// your receipts (with --rpc).
    #[arg(long, env = "POCMESH_CONTRACT", value_name = "ADDR")]
    contract: Option<Address>,
    /// Address of the local status endpoint [default: 127.0.0.1:9187; port 0 picks one].
    #[arg(long, env = "POCMESH_STATUS", value_name = "ADDR:PORT")]
    status: Option<SocketAddr>,
    /// Time between heartbeats, milliseconds [default: 5000].
    #[arg(long, value_name = "MS")]
    heartbeat_ms: Option<u64>,
    /// Print the consent text this node runs under and exit.
    #[arg(long)]
    show_consent: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The node's data directory (its status address is read from there).
    #[arg(long, env = "POCMESH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The status endpoint, when not found through --data-dir.
    #[arg(long, value_name = "ADDR:PORT")]
    status: Option<SocketAddr>,
    /// Print the raw /status JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::Run(a) => run_node(*a),
        NodeCommand::Status(a) => status(a),
    }
}

fn build_config(a: &RunArgs) -> anyhow::Result<NodeConfig> {
    let mut c = match &a.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    if a.wallet.is_some() {
        c.wallet = a.wallet;
    }
    if let Some(d) = &a.data_dir {
        c.data_dir = d.clone();
    }
    a.net.apply(&mut c.network);
    if let Some(n) = a.max_jobs {
        c.jobs.max_jobs = n;
    }
    if !a.job_types.is_empty() {
        c.jobs.job_types = a.job_types.clone();
    }
    if let Some(ms) = a.max_job_ms {
        c.jobs.max_ms = ms;
    }
    if let Some(mb) = a.max_job_mem_mb {
        c.jobs.max_mem_mb = mb;
    }
    if !a.trust_dispatcher.is_empty() {
        c.trust.dispatchers = a.trust_dispatcher.clone();
    }
    if a.rpc.is_some() {
        c.trust.rpc = a.rpc.clone();
    }
    if a.contract.is_some() {
        c.trust.contract = a.contract;
    }
    if let Some(s) = a.status {
        c.status.listen = s;
    }
    if let Some(ms) = a.heartbeat_ms {
        c.heartbeat.interval_ms = ms;
    }
    c.validate()?;
    Ok(c)
}

fn run_node(a: RunArgs) -> anyhow::Result<ExitCode> {
    if a.show_consent {
        println!("{}", pocmesh_node::consent::CONSENT_TEXT);
        return Ok(ExitCode::SUCCESS);
    }
    let config = build_config(&a)?;
    eprintln!(
        "pocmesh node: wallet {}, data dir {}, network {}",
        config.wallet.map(|w| w.to_string()).unwrap_or_default(),
        config.data_dir.display(),
        config.network.net
    );
    run_until_signal(|shutdown| pocmesh_node::run(config, shutdown))?;
    Ok(ExitCode::SUCCESS)
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let addr = match (a.status, &a.data_dir) {
        (Some(s), _) => s,
        (None, dir) => {
            let dir = dir.clone().unwrap_or_else(|| default_data_dir("node"));
            let file = status_addr_path(&dir);
            match std::fs::read_to_string(&file) {
                Ok(text) => text.trim().parse().with_context(|| {
                    format!(
                        "{} does not hold an address; pass --status ADDR:PORT",
                        file.display()
                    )
                })?,
                Err(_) => SocketAddr::from(([127, 0, 0, 1], DEFAULT_STATUS_PORT)),
            }
        }
    };
    let url = format!("http://{addr}/status");
    let runtime = super::chain_args::runtime()?;
    let report: StatusReport = runtime
        .block_on(async {
            reqwest::Client::new()
                .get(&url)
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
        })
        .with_context(|| {
            format!("no node answers at {url}; is `pocmesh node run` running? (pass --data-dir or --status)")
        })?;
    if a.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let r = &report;
    println!("node      {} (peer {})", r.info.address, r.info.peer_id);
    println!("wallet    {}", r.info.wallet);
    println!(
        "network   {}  peers {}  up {} s",
        r.info.net, r.peers, r.uptime_s
    );
    println!(
        "heartbeat sent {}  received {}  last seq {}",
        r.heartbeats.sent, r.heartbeats.received, r.heartbeats.last_seq
    );
    println!(
        "jobs      running {}  done {}  failed {}  awaiting ack {}  (slots {})",
        r.jobs.running, r.jobs.done, r.jobs.failed, r.jobs.awaiting_ack, r.info.slots
    );
    print_receipts(r);
    Ok(ExitCode::SUCCESS)
}

/// The units and receipts lines: what is confirmed on chain, what is not, and every failure
/// shown, since a failed receipt means a dispatcher claimed a credit the chain does not back.
fn print_receipts(r: &StatusReport) {
    let c = &r.receipts;
    println!(
        "units     {} earned (verified on chain)  {} pending check  {} unconfirmed",
        r.units_earned, r.units_pending, r.units_unconfirmed
    );
    println!(
        "receipts  {} verified  {} pending  {} failed  {} unchecked  ({} in all)",
        c.verified, c.pending, c.failed, c.unchecked, c.total
    );
    if !c.checked_on_chain {
        println!(
            "          receipts are NOT checked on chain: run the node with --rpc and --contract to \
             confirm its credits"
        );
    }
    if c.failed > 0 {
        println!(
            "FAILED    {} receipt(s) did not check out on chain; their units do not count{}:",
            c.failed,
            if c.failed > c.failed_recent.len() as u64 {
                format!(" (latest {} shown)", c.failed_recent.len())
            } else {
                String::new()
            }
        );
        for f in &c.failed_recent {
            println!(
                "  ! job {}  batch {}  units {}: {}",
                f.job, f.batch, f.units, f.reason
            );
        }
    }
}
