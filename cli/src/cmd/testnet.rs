//! `pocmesh testnet up|down|status`: the whole local XDC-like network — chain, contract,
//! dispatcher, volunteer nodes, demo jobs — from one folder.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pocmesh_testnet::network::{self, NetworkReport, Progress, UpOptions};

use super::chain_args::runtime;
use crate::output::print_json;

/// Where the network keeps its state, keys and logs.
const DEFAULT_DIR: &str = ".pocmesh-testnet";

#[derive(Debug, Subcommand)]
pub(crate) enum TestnetCommand {
    /// Start (or resume) the local network: anvil (EVM paris, legacy txs), the contract, a
    /// dispatcher and N nodes; run demo jobs until they are on chain; print where to look.
    Up(UpArgs),
    /// Stop everything `up` started in DIR, by PID (the chain is saved for the next `up`).
    Down(DirArgs),
    /// Show what runs in DIR.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DirArgs {
    /// The network's folder.
    #[arg(long, default_value = DEFAULT_DIR, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Volunteer nodes to run.
    #[arg(long, default_value_t = 3, value_name = "N")]
    nodes: usize,
    /// Demo jobs of each type (hash, wasm) [default: 5 on a new network, 0 when resuming].
    #[arg(long, value_name = "M")]
    jobs: Option<usize>,
    #[command(flatten)]
    dir: DirArgs,
    /// Return once the network is ready and the demo jobs are recorded; stop it later with
    /// `pocmesh testnet down`.
    #[arg(long)]
    detach: bool,
    /// RPC port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8545, value_name = "PORT")]
    port: u16,
    /// Dispatcher API port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8645, value_name = "PORT")]
    api_port: u16,
    /// Chain id of the devnet.
    #[arg(long, default_value_t = pocmesh_chain::anvil::DEVNET_CHAIN_ID)]
    chain_id: u64,
    /// anvil executable [default: pocmesh's tools folders, then PATH, else installed from npm].
    #[arg(long, env = "POCMESH_ANVIL", value_name = "FILE")]
    anvil: Option<PathBuf>,
    /// Print JSON {"rpc","chain_id","contract","api","dashboard","wallets",…} once ready.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: TestnetCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TestnetCommand::Up(a) => up(a),
        TestnetCommand::Down(a) => down(a),
        TestnetCommand::Status(a) => status(a),
    }
}

fn up(a: UpArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the pocmesh executable")?;
    let mut opts = UpOptions::new(exe, a.dir.dir.clone());
    opts.nodes = a.nodes;
    opts.jobs = a.jobs;
    opts.anvil = a.anvil.clone();
    opts.rpc_port = a.port;
    opts.api_port = a.api_port;
    opts.chain_id = a.chain_id;
    let dir = a.dir.dir.clone();
    runtime()?.block_on(async move {
        let bar = ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")?);
        if a.json {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        let report = network::up(&opts, &mut |p| match p {
            Progress::Step(s) => bar.set_message(s.to_string()),
            Progress::Jobs { done, total } => {
                bar.set_message(format!("demo jobs recorded on chain: {done}/{total}"))
            }
            Progress::Nodes { online, total } => bar.set_message(format!(
                "waiting for every node's heartbeat: {online}/{total} heard"
            )),
        })
        .await;
        bar.finish_and_clear();
        let report = report?;
        if a.json {
            print_json(&report)?;
        } else {
            print_report(&report);
        }
        if a.detach {
            if !a.json {
                println!(
                    "\nRunning in the background. Stop it with: {} testnet down --dir {}",
                    invocation().0,
                    dir.display()
                );
            }
            return anyhow::Ok(());
        }
        if !a.json {
            println!(
                "\nCtrl-C stops the network (the chain is saved in {}).",
                report.dir
            );
        }
        tokio::signal::ctrl_c().await?;
        eprintln!("stopping the nodes, the dispatcher and anvil …");
        let stuck = tokio::task::spawn_blocking(move || network::down(&dir)).await??;
        if !stuck.is_empty() {
            anyhow::bail!("these would not stop: {stuck:?}");
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &NetworkReport) {
    println!(
        "pocmesh local network is {} — {}\n",
        if r.resumed { "resumed" } else { "up" },
        r.dir
    );
    println!("  dashboard   {}", r.dashboard);
    println!("  API         {}   (token in {})", r.api, r.token_file);
    println!("  RPC         {}   chain id {}", r.rpc, r.chain_id);
    println!("  contract    {}", r.contract);
    println!("  dispatcher  {}   (holds DISPATCHER_ROLE)", r.dispatcher);
    if !r.jobs.is_empty() {
        let jobs: Vec<String> = r.jobs.iter().map(|(s, n)| format!("{n} {s}")).collect();
        println!("  demo jobs   {}", jobs.join(", "));
    }
    println!("\n  node     wallet                                       units");
    for w in &r.wallets {
        println!("  {:<8} {}   {}", w.node, w.wallet, w.units);
    }
    println!("  total units on chain: {}", r.total_units);
    let w = r
        .wallets
        .first()
        .map(|w| w.wallet.to_string())
        .unwrap_or_default();
    let (bin, on_path) = invocation();
    println!("\nTry:");
    println!(
        "  {bin} units {w} --rpc {} --contract {} --history",
        r.rpc, r.contract
    );
    println!(
        "  {bin} job submit --api {} --token-file {} --type hash --iterations 5000000 --wait",
        r.api, r.token_file
    );
    println!("  {bin} nodes --api {}", r.api);
    println!("  {bin} job list --api {}", r.api);
    println!("  {bin} testnet status --dir {}", r.dir);
    if !on_path {
        println!("(`pocmesh` is not on your PATH; `cargo install --path cli` puts it there.)");
    }
}

/// How to call this binary in the printed next steps: `pocmesh` when that name on the PATH is
/// this very binary, else its full path (after `cargo run` it is under `target/`).
fn invocation() -> (String, bool) {
    let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return ("pocmesh".into(), false);
    };
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .filter_map(|d| d.join("pocmesh").canonicalize().ok())
            .any(|p| p == me)
    });
    if on_path {
        ("pocmesh".into(), true)
    } else {
        (me.display().to_string(), false)
    }
}

fn down(a: DirArgs) -> anyhow::Result<ExitCode> {
    let stuck = network::down(&a.dir)?;
    if stuck.is_empty() {
        println!(
            "stopped; the chain and data stay in {} for the next `up`",
            a.dir.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &stuck {
            eprintln!("still running: {} (pid {})", p.name, p.pid);
        }
        Ok(ExitCode::from(1))
    }
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let Some((state, procs)) = network::status(&a.dir.dir)? else {
        if a.json {
            print_json(&serde_json::json!({ "running": false, "dir": a.dir.dir }))?;
        } else {
            println!("no local network in {}", a.dir.dir.display());
        }
        return Ok(ExitCode::from(1));
    };
    let running = procs.iter().filter(|(_, alive)| *alive).count();
    if a.json {
        let list: Vec<_> = procs
            .iter()
            .map(|(p, alive)| serde_json::json!({"name": p.name, "pid": p.pid, "running": alive, "log": p.log}))
            .collect();
        print_json(&serde_json::json!({
            "running": running > 0,
            "rpc": state.rpc,
            "contract": state.contract,
            "api": state.api,
            "processes": list,
        }))?;
    } else {
        println!(
            "network in {}: {running} of {} processes running",
            a.dir.dir.display(),
            procs.len()
        );
        println!(
            "  RPC {}   contract {}   API {}",
            state.rpc, state.contract, state.api
        );
        for (p, alive) in &procs {
            println!(
                "  {:<11} pid {:<8} {}",
                p.name,
                p.pid,
                if *alive { "running" } else { "stopped" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
