//! `pocmesh node run|status|opt-out|opt-in`: the volunteer node.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use pocmesh_node::NodeConfig;
use pocmesh_node::config::{DEFAULT_STATUS_PORT, default_data_dir, file_names_network};
use pocmesh_node::consent::{
    CONSENT_TEXT, CONSENT_VERSION, ConsentError, ConsentState, consent_hash,
};
use pocmesh_node::control::{ParticipationReply, request_opt_in, request_opt_out};
use pocmesh_node::daemon::status_addr_path;
use pocmesh_node::status::StatusReport;
use pocmesh_protocol::{Address, Hash32, JobType, unix_ms_now};

use super::daemon_args::{NetArgs, job_type_parser, run_until_signal};
use crate::output::print_json;

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Run a volunteer node: join the mesh, announce this machine, run jobs, earn units.
    #[command(long_about = RUN_ABOUT)]
    Run(Box<RunArgs>),
    /// Show a running node's peers, heartbeats, jobs, units earned, receipt checks and consent.
    Status(StatusArgs),
    /// Withdraw a running node at once, until `pocmesh node opt-in`.
    ///
    /// The node tells the mesh (a signed opt_out), hands its running jobs back, sends no more
    /// heartbeats and declines every offer, also after a restart.
    OptOut(OptOutArgs),
    /// Let an opted-out node take part again, after accepting the consent text anew.
    ///
    /// Shows the consent text and asks on a terminal; elsewhere pass --accept-policy HASH.
    OptIn(OptInArgs),
}

const RUN_ABOUT: &str =
    "Run a volunteer node: join the mesh, announce this machine, run jobs, earn units.

The node creates its key on first run (in --data-dir, mode 0600), publishes a signed heartbeat every
few seconds, accepts jobs only from dispatchers you trust (--trust-dispatcher, or holders of the
dispatcher role on --contract via --rpc), runs them in a sandbox with the limits you set, and
credits the compute units to --wallet on chain. With --rpc and --contract it also checks each
receipt a dispatcher sends against the batch root on chain before counting its units; without them
the units show as unconfirmed. Stop it with Ctrl-C: running jobs get a grace period, the rest are
handed back. `pocmesh node status` shows what it is doing; `pocmesh node opt-out` withdraws it.

With --rpc and no --net, the node joins the network of the chain the RPC serves (devnet-<chain id>,
xdc-apothem); a --net naming another network is refused.

On its first run the node shows its consent text (version 2; `--show-consent` prints it with its
hash) and asks you to accept it; where nobody can answer (a service, a script), pass
--accept-policy HASH. Hash and WebAssembly jobs run in a sandbox with no access to your files or
network; the HTTP check job types (link_health, robots_recheck; off unless --job-types names them)
make bounded GET requests to allow-listed public sites, never to private addresses.";

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
    /// Job types to run [default: hash,wasm; `pocmesh job types` describes each]. The HTTP
    /// check types make GET requests from your connection (see --show-consent).
    #[arg(long, value_delimiter = ',', value_parser = job_type_parser(), value_name = "TYPE")]
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
    #[command(flatten)]
    http: HttpArgs,
    /// Accept the consent text with this hash (printed by `--show-consent`) without being
    /// asked: for services and scripts, where nobody can answer the first-run question.
    #[arg(long, env = "POCMESH_ACCEPT_POLICY", value_name = "HASH")]
    accept_policy: Option<Hash32>,
    /// Print the consent text this node runs under, its version and hash, and exit.
    #[arg(long)]
    show_consent: bool,
}

/// The limits and refused targets of HTTP checks (each overrides the config file's `[http]`).
#[derive(Debug, Args)]
struct HttpArgs {
    /// Longest an HTTP check may take (connect, redirects, body), milliseconds [default and
    /// most: 10000; a job's own limit can only lower it].
    #[arg(long, value_name = "MS")]
    http_timeout_ms: Option<u64>,
    /// Most redirects an HTTP check follows [default and most: 5].
    #[arg(long, value_name = "N")]
    http_max_redirects: Option<u32>,
    /// Most response bytes a link_health check reads [default and most: 1048576].
    #[arg(long, value_name = "BYTES")]
    http_max_body_bytes: Option<u64>,
    /// Most bytes of a robots.txt a robots_recheck reads [default and most: 524288].
    #[arg(long, value_name = "BYTES")]
    http_max_robots_bytes: Option<u64>,
    /// A domain this node never checks, with its subdomains; repeat or comma-separate.
    #[arg(long = "deny-domain", value_delimiter = ',', value_name = "DOMAIN")]
    deny_domain: Vec<String>,
    /// Devnets only (--net devnet-…): let HTTP checks reach loopback addresses (127.0.0.0/8,
    /// ::1) and fetch robots.txt over plain http://, for local test servers. Other private
    /// ranges stay refused.
    #[arg(long)]
    allow_loopback_targets: bool,
}

impl HttpArgs {
    fn apply(&self, http: &mut pocmesh_node::config::HttpSettings) {
        if let Some(ms) = self.http_timeout_ms {
            http.timeout_ms = ms;
        }
        if let Some(n) = self.http_max_redirects {
            http.max_redirects = n;
        }
        if let Some(b) = self.http_max_body_bytes {
            http.max_body_bytes = b;
        }
        if let Some(b) = self.http_max_robots_bytes {
            http.max_robots_bytes = b;
        }
        if !self.deny_domain.is_empty() {
            http.deny_domains = self.deny_domain.clone();
        }
        if self.allow_loopback_targets {
            http.allow_loopback_targets = true;
        }
    }
}

/// Where a running node's status endpoint is.
#[derive(Debug, Args)]
struct NodeAddrArgs {
    /// The node's data directory (its status address is read from there).
    #[arg(long, env = "POCMESH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The status endpoint, when not found through --data-dir.
    #[arg(long, value_name = "ADDR:PORT")]
    status: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub(crate) struct OptOutArgs {
    #[command(flatten)]
    node: NodeAddrArgs,
    /// Print the node's answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct OptInArgs {
    #[command(flatten)]
    node: NodeAddrArgs,
    /// Accept the consent text with this hash (printed by `pocmesh node run --show-consent`)
    /// without being asked.
    #[arg(long, env = "POCMESH_ACCEPT_POLICY", value_name = "HASH")]
    accept_policy: Option<Hash32>,
    /// Print the node's answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    node: NodeAddrArgs,
    /// Print the raw /status JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::Run(a) => run_node(*a),
        NodeCommand::Status(a) => status(a),
        NodeCommand::OptOut(a) => opt_out(a),
        NodeCommand::OptIn(a) => opt_in(a),
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
    a.http.apply(&mut c.http);
    if a.accept_policy.is_some() {
        c.accept_policy = a.accept_policy;
    }
    Ok(c)
}

/// The network name the operator set: `--net` / `POCMESH_NET`, or the config file's.
fn given_network(a: &RunArgs, config: &NodeConfig) -> anyhow::Result<Option<String>> {
    if a.net.net.is_some() {
        return Ok(Some(config.network.net.clone()));
    }
    match &a.config {
        Some(path) if file_names_network(path)? => Ok(Some(config.network.net.clone())),
        _ => Ok(None),
    }
}

fn run_node(a: RunArgs) -> anyhow::Result<ExitCode> {
    if a.show_consent {
        println!("{CONSENT_TEXT}");
        println!();
        println!("consent version {CONSENT_VERSION}, hash {}", consent_hash());
        println!(
            "accept it without being asked: --accept-policy {}",
            consent_hash()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = build_config(&a)?;
    if let Some(rpc) = config.trust.rpc.clone() {
        let given = given_network(&a, &config)?;
        let net = super::chain_args::runtime()?
            .block_on(pocmesh_node::network_name::resolve(given.as_deref(), &rpc))?;
        if given.is_none() {
            eprintln!("pocmesh node: network {net}, read from the chain at {rpc}");
        }
        config.network.net = net;
    }
    config.validate()?;
    ensure_consent(&mut config)?;
    eprintln!(
        "pocmesh node: wallet {}, data dir {}, network {}",
        config.wallet.map(|w| w.to_string()).unwrap_or_default(),
        config.data_dir.display(),
        config.network.net
    );
    run_until_signal(|shutdown| pocmesh_node::run(config, shutdown))?;
    Ok(ExitCode::SUCCESS)
}

/// On a first run (no acceptance of the current consent text in the data directory) shows the
/// text and asks, when someone can answer; otherwise the start is refused naming
/// `--accept-policy` and the hash.
fn ensure_consent(config: &mut NodeConfig) -> anyhow::Result<()> {
    if config.accept_policy.is_some() {
        // The node checks the hash and records the acceptance.
        return Ok(());
    }
    let state = ConsentState::load(&config.data_dir)?;
    if !state.needs_acceptance() {
        return Ok(());
    }
    if !interactive() {
        return Err(ConsentError::NotAccepted {
            version: CONSENT_VERSION,
            hash: consent_hash(),
            previous: state.accepted.map(|a| a.version),
        }
        .into());
    }
    if let Some(previous) = state.accepted {
        println!(
            "The node consent text changed since you accepted version {}; please read version              {CONSENT_VERSION}.\n",
            previous.version
        );
    }
    config.accept_policy = Some(ask_consent("start the node")?);
    Ok(())
}

/// Whether a person can answer a question here.
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Shows the consent text and asks for `yes`; the hash accepted, or an error.
fn ask_consent(what: &str) -> anyhow::Result<Hash32> {
    println!("{CONSENT_TEXT}\n");
    println!(
        "(consent version {CONSENT_VERSION}, hash {})",
        consent_hash()
    );
    print!("Type `yes` to accept it and {what}: ");
    std::io::stdout()
        .flush()
        .context("writing to the terminal")?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    if answer.trim().eq_ignore_ascii_case("yes") {
        Ok(consent_hash())
    } else {
        bail!("the consent text was not accepted; nothing was changed")
    }
}

/// The status endpoint of the node `a` names: `--status`, else the address the node wrote to
/// its data directory, else the default port.
fn status_addr(a: &NodeAddrArgs) -> anyhow::Result<SocketAddr> {
    if let Some(s) = a.status {
        return Ok(s);
    }
    let dir = a
        .data_dir
        .clone()
        .unwrap_or_else(|| default_data_dir("node"));
    let file = status_addr_path(&dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => text.trim().parse().with_context(|| {
            format!(
                "{} does not hold an address; pass --status ADDR:PORT",
                file.display()
            )
        }),
        Err(_) => Ok(SocketAddr::from(([127, 0, 0, 1], DEFAULT_STATUS_PORT))),
    }
}

fn opt_out(a: OptOutArgs) -> anyhow::Result<ExitCode> {
    let addr = status_addr(&a.node)?;
    let reply = super::chain_args::runtime()?.block_on(request_opt_out(addr))?;
    if a.json {
        print_json(&reply)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_participation(&reply, &a.node.data_dir);
    Ok(ExitCode::SUCCESS)
}

fn opt_in(a: OptInArgs) -> anyhow::Result<ExitCode> {
    let addr = status_addr(&a.node)?;
    let policy = match a.accept_policy {
        Some(hash) => hash,
        None if interactive() => ask_consent("let the node take part again")?,
        None => {
            return Err(ConsentError::NotAccepted {
                version: CONSENT_VERSION,
                hash: consent_hash(),
                previous: None,
            })
            .context(
                "opting in means accepting the consent text again: pass --accept-policy HASH",
            );
        }
    };
    let reply = super::chain_args::runtime()?.block_on(request_opt_in(addr, policy))?;
    if a.json {
        print_json(&reply)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_participation(&reply, &a.node.data_dir);
    Ok(ExitCode::SUCCESS)
}

fn print_participation(r: &ParticipationReply, data_dir: &Option<PathBuf>) {
    let dir = data_dir
        .as_deref()
        .map(|d| format!(" --data-dir {}", d.display()))
        .unwrap_or_default();
    match (r.opted_out, r.changed) {
        (true, true) => {
            println!(
                "opted out (opt_out seq {}): the node declines every offer and sends no \
             heartbeats, also after a restart, until `pocmesh node opt-in{dir}`",
                r.seq.unwrap_or_default()
            );
            if r.announced {
                println!(
                    "the signed opt_out went out to the mesh: dispatchers stop assigning to it"
                );
            } else {
                println!(
                    "no peer is connected right now: the signed opt_out goes out as soon as one is"
                );
            }
            println!(
                "{} running job(s) handed back to their dispatchers as failed (\"opted out\")",
                r.handed_back
            );
        }
        (true, false) => println!(
            "the node was already opted out{}; nothing changed (`pocmesh node opt-in{dir}` takes \
             part again)",
            r.since_ms.map(ago).unwrap_or_default()
        ),
        (false, true) => println!(
            "opted in: consent version {} accepted ({}); heartbeats resume and the node takes \
             offers again",
            r.policy_version.unwrap_or(CONSENT_VERSION),
            r.policy.map(|h| h.to_string()).unwrap_or_default()
        ),
        (false, false) => println!("the node was not opted out; nothing changed"),
    }
}

/// " since N s ago" for a unix-ms time.
fn ago(ms: u64) -> String {
    format!(" since {} s ago", unix_ms_now().saturating_sub(ms) / 1000)
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let addr = status_addr(&a.node)?;
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
    print_consent(r, &a.node.data_dir);
    Ok(ExitCode::SUCCESS)
}

/// The consent line: the text accepted, and an opt-out in capitals (the node does nothing).
fn print_consent(r: &StatusReport, data_dir: &Option<PathBuf>) {
    let Some(c) = &r.consent else {
        println!("consent   (not reported: the node is older than consent version 2)");
        return;
    };
    match (c.accepted_version, c.accepted_hash) {
        (Some(v), Some(h)) if h == c.current_hash => {
            println!("consent   version {v} accepted ({h})")
        }
        (Some(v), _) => println!(
            "consent   version {v} accepted; this build's is version {} ({})",
            c.current_version, c.current_hash
        ),
        _ => println!("consent   none accepted"),
    }
    if c.opted_out {
        let dir = data_dir
            .as_deref()
            .map(|d| format!(" --data-dir {}", d.display()))
            .unwrap_or_default();
        println!(
            "OPTED OUT{}: no heartbeats, every offer declined; `pocmesh node opt-in{dir}` takes \
             part again",
            c.opted_out_since_ms.map(ago).unwrap_or_default()
        );
    }
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
