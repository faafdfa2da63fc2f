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
    /// Log filter, e.g. `info` or `pocmesh=debug` (also: RUST_LOG).
    #[arg(long, global = true, env = "POCMESH_LOG", default_value = "warn")]
    log: String,

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
    /// The local XDC-like network.
    #[command(subcommand)]
    Testnet(cmd::testnet::TestnetCommand),
    /// Benchmarks that write JSON reports.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let result = match cli.command {
        Command::Keys(c) => cmd::keys::run(c),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Contract(c) => cmd::contract::run(c),
        Command::Units(a) => cmd::units::run(a),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Testnet(c) => cmd::testnet::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}
