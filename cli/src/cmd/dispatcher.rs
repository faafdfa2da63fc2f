//! `pocmesh dispatcher run`: the dispatcher daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pocmesh_dispatcher::DispatcherConfig;
use pocmesh_protocol::Address;

use super::daemon_args::{NetArgs, run_until_signal};

#[derive(Debug, Subcommand)]
pub(crate) enum DispatcherCommand {
    /// Run a dispatcher: take jobs over HTTP, assign them to nodes, verify, record on chain.
    Run(Box<RunArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// JSON-RPC URL of the chain.
    #[arg(long, env = "POCMESH_RPC", value_name = "URL")]
    rpc: Option<String>,
    /// The ProofOfCompute contract (0x… or xdc…).
    #[arg(long, env = "POCMESH_CONTRACT", value_name = "ADDR")]
    contract: Option<Address>,
    /// The block the contract was deployed in (`pocmesh contract deploy` prints it); chain logs
    /// are searched from there [default: this dispatcher's first batch, else block 0].
    #[arg(long, env = "POCMESH_CONTRACT_BLOCK", value_name = "N")]
    contract_block: Option<u64>,
    /// Key file of the dispatcher: its mesh identity and the chain account holding DISPATCHER_ROLE.
    #[arg(long, env = "POCMESH_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Address of the HTTP API [default: 127.0.0.1:8645].
    #[arg(long, env = "POCMESH_API_LISTEN", value_name = "ADDR:PORT")]
    api: Option<SocketAddr>,
    /// Bearer token for job submission [default: generated into <data-dir>/api.token].
    #[arg(
        long,
        env = "POCMESH_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    api_token: Option<String>,
    /// Where the job store and status files live [default: ~/.pocmesh/dispatcher].
    #[arg(long, env = "POCMESH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file; flags and POCMESH_* variables override it.
    #[arg(long, env = "POCMESH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    net: NetArgs,
    /// Credits per on-chain batch at most.
    #[arg(long, value_name = "N")]
    batch_max: Option<usize>,
    /// Longest a verified credit waits for its batch, milliseconds.
    #[arg(long, value_name = "MS")]
    batch_age_ms: Option<u64>,
    /// Lowest share of a trusted node's results the dispatcher still re-executes (0 < SHARE ≤ 1).
    #[arg(long, value_name = "SHARE")]
    audit_floor: Option<f64>,
    /// Checked results a new node needs before its results are only sampled.
    #[arg(long, value_name = "N")]
    probation_results: Option<u32>,
    /// Devnet only: nodes on this machine (loopback) may form a quorum together.
    #[arg(long)]
    loopback_quorum: bool,
    /// Heartbeat interval the nodes use, milliseconds (offline after 3 missed).
    #[arg(long, value_name = "MS")]
    heartbeat_ms: Option<u64>,
}

pub(crate) fn run(command: DispatcherCommand) -> anyhow::Result<ExitCode> {
    match command {
        DispatcherCommand::Run(a) => {
            let config = build_config(&a)?;
            eprintln!(
                "pocmesh dispatcher: contract {}, data dir {}, network {}",
                config.contract.map(|c| c.to_string()).unwrap_or_default(),
                config.data_dir.display(),
                config.network.net
            );
            run_until_signal(|shutdown| pocmesh_dispatcher::run(config, shutdown))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn build_config(a: &RunArgs) -> anyhow::Result<DispatcherConfig> {
    let mut c = match &a.config {
        Some(path) => DispatcherConfig::load(path)?,
        None => DispatcherConfig::default(),
    };
    if a.rpc.is_some() {
        c.rpc = a.rpc.clone();
    }
    if a.contract.is_some() {
        c.contract = a.contract;
    }
    if a.contract_block.is_some() {
        c.contract_block = a.contract_block;
    }
    if a.key.is_some() {
        c.key_file = a.key.clone();
    }
    if let Some(api) = a.api {
        c.api.listen = api;
    }
    if let Some(t) = &a.api_token {
        c.api.tokens = vec![t.clone()];
    }
    if let Some(d) = &a.data_dir {
        c.data_dir = d.clone();
    }
    // No name given anywhere: the chain's id decides it at start.
    c.net_from_chain =
        a.net.net.is_none() && c.network.net == pocmesh_mesh::NetSettings::default().net;
    a.net.apply(&mut c.network);
    if let Some(n) = a.batch_max {
        c.batch.max_credits = n;
    }
    if let Some(ms) = a.batch_age_ms {
        c.batch.max_age_ms = ms;
    }
    if let Some(s) = a.audit_floor {
        c.verify.audit_floor = s;
    }
    if let Some(n) = a.probation_results {
        c.verify.probation_results = n;
    }
    if a.loopback_quorum {
        c.verify.loopback_quorum = true;
    }
    if let Some(ms) = a.heartbeat_ms {
        c.registry.heartbeat_interval_ms = ms;
    }
    c.validate()?;
    Ok(c)
}
