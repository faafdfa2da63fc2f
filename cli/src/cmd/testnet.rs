//! `pocmesh testnet up`: the local XDC-like network, in the foreground until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pocmesh_testnet::{ChainConfig, start_chain};

use super::chain_args::runtime;
use crate::output::print_json;

#[derive(Debug, Subcommand)]
pub(crate) enum TestnetCommand {
    /// Start a local chain (anvil, EVM paris, legacy txs), deploy ProofOfCompute, grant a
    /// dispatcher key, record a demo batch; print where to look; stop everything on Ctrl-C.
    Up(UpArgs),
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// RPC port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// Chain id of the devnet.
    #[arg(long, default_value_t = pocmesh_chain::anvil::DEVNET_CHAIN_ID)]
    chain_id: u64,
    /// Demo receipts recorded at start (0 for none).
    #[arg(long, default_value_t = 30)]
    demo_receipts: u64,
    /// anvil executable (default: pocmesh's tools folders, then PATH).
    #[arg(long, env = "POCMESH_ANVIL", value_name = "FILE")]
    anvil: Option<PathBuf>,
    /// Print JSON {"rpc","chain_id","contract","wallets",…} once ready.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: TestnetCommand) -> anyhow::Result<ExitCode> {
    let TestnetCommand::Up(a) = cmd;
    let config = ChainConfig {
        anvil: a.anvil,
        port: a.port,
        chain_id: a.chain_id,
        demo_receipts: a.demo_receipts,
        log_file: None,
    };
    runtime()?.block_on(async move {
        let bar = ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")?);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let chain = start_chain(&config, &mut |step| bar.set_message(step.to_string())).await;
        bar.finish_and_clear();
        let chain = chain?;
        let i = &chain.info;
        if a.json {
            print_json(i)?;
        } else {
            println!("pocmesh local network (chain part) is up — Ctrl-C stops it\n");
            println!(
                "  RPC         {}   chain id {}   network {}",
                i.rpc, i.chain_id, i.net
            );
            println!("  contract    {}", i.contract);
            println!("  admin       {}   (anvil dev key 0)", i.admin);
            println!(
                "  dispatcher  {}   (anvil dev key 1, holds DISPATCHER_ROLE)",
                i.dispatcher
            );
            if let Some(tx) = i.demo_batch.as_ref().and_then(|b| b.tx()) {
                println!("  demo batch  recorded in tx {tx}");
            }
            println!("\n  wallet                                       units");
            for w in &i.wallets {
                println!("  {}   {}", w.wallet, w.units);
            }
            let w = i
                .wallets
                .first()
                .map(|w| w.wallet.to_string())
                .unwrap_or_default();
            println!("\nTry:");
            println!(
                "  pocmesh units {w} --rpc {} --contract {}",
                i.rpc, i.contract
            );
            println!(
                "  pocmesh units {w} --rpc {} --contract {} --history",
                i.rpc, i.contract
            );
            println!(
                "  pocmesh contract info --rpc {} --contract {}",
                i.rpc, i.contract
            );
            println!("\nThe dispatcher and volunteer nodes are not part of this network yet.");
        }
        tokio::signal::ctrl_c().await?;
        eprintln!("stopping anvil (pid {})", chain.anvil.pid());
        chain.anvil.stop();
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
