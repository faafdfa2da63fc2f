//! `pocmesh`: the command-line entry point. Parses arguments and hands each command to its
//! module under `cmd/`; the logic lives in the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod output;

/// pocmesh: a peer-to-peer volunteer compute mesh with an on-chain proof ledger.
#[derive(Debug, Parser)]
#[command(name = "pocmesh", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter, e.g. `info` or `pocmesh=debug` (also: RUST_LOG) [default: info for daemons,
    /// warn otherwise; Kademlia's bootstrap warnings are left out unless a filter is given].
    #[arg(long, global = true, env = "POCMESH_LOG")]
    log: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and show secp256k1 identity keys (node, dispatcher, wallet).
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Decode a signed pocmesh envelope and check its signature.
    Inspect(cmd::inspect::InspectArgs),
    /// Deploy and manage the ProofOfCompute contract; record a batch of receipts.
    #[command(subcommand)]
    Contract(cmd::contract::ContractCommand),
    /// Show a wallet's compute units, read from the contract.
    Units(cmd::units::UnitsArgs),
    /// One wallet through a dispatcher: units on chain and here, credits, nodes, quarantine.
    Wallet(cmd::wallet::WalletArgs),
    /// The local XDC-like network.
    #[command(subcommand)]
    Testnet(cmd::testnet::TestnetCommand),
    /// The volunteer node: run one, or ask a running one how it is doing.
    #[command(subcommand)]
    Node(cmd::node::NodeCommand),
    /// The dispatcher: assigns jobs to nodes, verifies results, records them on chain.
    #[command(subcommand)]
    Dispatcher(cmd::dispatcher::DispatcherCommand),
    /// Submit jobs to a dispatcher and follow them.
    #[command(subcommand)]
    Job(cmd::job::JobCommand),
    /// List the nodes a dispatcher knows, online or not.
    Nodes(cmd::job::NodesArgs),
    /// The dispatcher's allow-list of domains HTTP check jobs may touch.
    #[command(subcommand)]
    Allowlist(cmd::allowlist::AllowlistCommand),
    /// Link and robots.txt health of a domain, from verified HTTP checks.
    Health(cmd::health::HealthArgs),
    /// Benchmarks that write JSON reports.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let daemon = matches!(
        &cli.command,
        Command::Node(cmd::node::NodeCommand::Run(_))
            | Command::Dispatcher(cmd::dispatcher::DispatcherCommand::Run(_))
    );
    // The verification simulation excludes thousands of simulated nodes; their warnings are
    // its data, not news.
    let simulation = matches!(
        &cli.command,
        Command::Bench(cmd::bench::BenchCommand::Verify(_))
    );
    let default_level = if daemon {
        "info"
    } else if simulation {
        "error"
    } else {
        "warn"
    };
    // Flags beat the environment: --log, then RUST_LOG, then the default.
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        // Kademlia warns "Failed to trigger bootstrap: No known peers" whenever a peer that is
        // alone (a dispatcher before its first node) gets a listen address: normal here, and
        // the mesh logs its own dial failures.
        .unwrap_or_else(|| format!("{default_level},{QUIET_BY_DEFAULT}"));
    init_logging(&filter);
    let result = match cli.command {
        Command::Keys(c) => cmd::keys::run(c),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Contract(c) => cmd::contract::run(c),
        Command::Units(a) => cmd::units::run(a),
        Command::Wallet(a) => cmd::wallet::run(a),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Testnet(c) => cmd::testnet::run(c),
        Command::Node(c) => cmd::node::run(c),
        Command::Dispatcher(c) => cmd::dispatcher::run(c),
        Command::Job(c) => cmd::job::run(c),
        Command::Nodes(a) => cmd::job::nodes(a),
        Command::Allowlist(c) => cmd::allowlist::run(c),
        Command::Health(a) => cmd::health::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Targets logged at error only unless `--log` or `RUST_LOG` says otherwise.
const QUIET_BY_DEFAULT: &str = "libp2p_kad::behaviour=error";

fn init_logging(filter: &str) {
    use std::io::IsTerminal;
    // Colours only on a terminal: daemons started by `testnet up` log to files.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
