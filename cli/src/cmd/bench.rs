//! `pocmesh bench gas|gossip|node|dispatch|pages|verify`: benchmark harnesses (JSON out, table on the
//! terminal).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pocmesh_chain::anvil::{Anvil, AnvilConfig, DEV_KEY_0, default_tool_dirs, locate_anvil};
use pocmesh_chain::gas_bench;
use pocmesh_protocol::SecretKey;

use super::chain_args::{SignerArgs, runtime};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Gas per credited completion: recordCompute vs recordBatch, first credit and steady state.
    Gas(GasArgs),
    /// Heartbeat gossip: convergence and propagation latency for N swarms on 127.0.0.1.
    Gossip(GossipArgs),
    /// Node execution: k256 signature checks per second, and a wasm kernel against the same
    /// kernel in native Rust.
    Node(NodeBenchArgs),
    /// Verified completions per second: a dispatcher and N nodes on 127.0.0.1, trivial hash
    /// jobs, every credit recorded on a local anvil.
    Dispatch(DispatchBenchArgs),
    /// Provider Hub page times over HTTP: N node processes, J jobs recorded on a local anvil,
    /// then every page and API read timed (cold, median, p90) against the 300 ms target.
    Pages(PagesBenchArgs),
    /// The verification policy against cheating nodes (a simulation running the dispatcher's
    /// own policy code): jobs until exclusion, wrong units credited, overhead.
    Verify(VerifyBenchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyBenchArgs {
    /// Nodes in each simulated population.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Cheating nodes among them.
    #[arg(long, default_value_t = 10)]
    cheaters: usize,
    /// Runs per scenario (fresh population and audit secret each).
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Jobs per node in a run, on average.
    #[arg(long, default_value_t = 400)]
    jobs_per_node: usize,
    /// Credits per on-chain batch (a credit is final once its batch is cut).
    #[arg(long, default_value_t = 256)]
    batch_credits: usize,
    /// Chance that the dispatcher's own re-execution is unavailable (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    audit_unavailable: f64,
    /// Checked results before a node is trusted (the dispatcher's `verify.probation_results`).
    #[arg(long)]
    probation_results: Option<u32>,
    /// Lowest audit rate of a trusted node (`verify.audit_floor`).
    #[arg(long)]
    audit_floor: Option<f64>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE", default_value = "bench-results/verify.json")]
    out: PathBuf,
    /// Print the JSON report on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn verify_bench(a: VerifyBenchArgs) -> anyhow::Result<ExitCode> {
    use pocmesh_dispatcher::verify_sim::{SimConfig, run};
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.audit_unavailable),
        "--audit-unavailable must be between 0 and 1"
    );
    anyhow::ensure!(
        a.nodes >= 4 && a.cheaters < a.nodes,
        "--nodes must be at least 4 and --cheaters fewer than --nodes"
    );
    anyhow::ensure!(
        a.trials > 0 && a.jobs_per_node > 0,
        "--trials and --jobs-per-node must be above 0"
    );
    let mut config = SimConfig {
        nodes: a.nodes,
        cheaters: a.cheaters,
        trials: a.trials,
        jobs_per_node: a.jobs_per_node,
        batch_credits: a.batch_credits.max(1),
        audit_unavailable: a.audit_unavailable,
        seed: a.seed,
        ..SimConfig::default()
    };
    if let Some(n) = a.probation_results {
        config.verify.probation_results = n;
    }
    if let Some(f) = a.audit_floor {
        config.verify.audit_floor = f;
    }
    config
        .verify
        .validate("devnet-0")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bar = ProgressBar::new((config.scenarios.len() * config.trials) as u64).with_style(
        ProgressStyle::with_template("verification policy {bar:30} {pos}/{len} runs [{elapsed}]")?,
    );
    let report = run(&config, |done, _| bar.set_position(done));
    bar.finish_and_clear();
    let json = serde_json::to_string_pretty(&report)?;
    write_report(&a.out, &json)?;
    if a.json {
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "policy: probation {} checked results, audit floor {}, excluded after {} wrong; {} nodes, {} cheaters, {} runs × {} jobs/node",
        report.policy.probation_results,
        report.policy.audit_floor,
        report.policy.exclude_after_wrong,
        config.nodes,
        config.cheaters,
        config.trials,
        config.jobs_per_node
    );
    println!(
        "{:<30} {:>9} {:>8} {:>9} {:>13} {:>10} {:>10} {:>9} {:>9}",
        "scenario",
        "excluded",
        "≤50 jobs",
        "≤50 clean",
        "jobs med/p99",
        "wrong acc",
        "wrong rec",
        "overhead",
        "trusted"
    );
    for s in &report.scenarios {
        let jobs = s
            .jobs_until_exclusion
            .map(|j| format!("{:.0}/{:.0}", j.median, j.p99))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<30} {:>8.1}% {:>7.1}% {:>8.1}% {:>13} {:>10} {:>10} {:>9.3} {:>9.3}",
            s.scenario.name,
            s.excluded_share * 100.0,
            s.excluded_within_50 * 100.0,
            s.excluded_within_50_clean * 100.0,
            jobs,
            s.wrong_units_accepted,
            s.wrong_units_recorded,
            s.overhead,
            s.overhead_trusted
        );
    }
    let t = &report.targets;
    println!(
        "targets: a 10% cheater excluded within 50 jobs with no wrong unit recorded {:.2}% (≥ 99%), trusted honest overhead {:.3} (≤ 1.15): {}",
        t.cheater_10pct_excluded_within_50_clean * 100.0,
        t.overhead_trusted_honest,
        if t.met { "met" } else { "NOT met" }
    );
    println!(
        "         the 10% cheaters that escaped their first 50 jobs had {} wrong units recorded in all",
        t.cheater_10pct_wrong_units_recorded
    );
    println!(
        "policy CPU: {:.0} ns per submitted result (decision and standings), plus one re-execution per audit",
        report.policy_ns_per_result
    );
    println!("report written to {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct NodeBenchArgs {
    /// Kernel rounds per run.
    #[arg(long, default_value_t = 40)]
    rounds: u64,
    /// Kernel input size, bytes.
    #[arg(long, default_value_t = 65_536)]
    data_len: usize,
    /// Timed runs per side (the median is reported).
    #[arg(long, default_value_t = 15)]
    samples: usize,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE", default_value = "bench-results/node.json")]
    out: PathBuf,
    /// Print the JSON report on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DispatchBenchArgs {
    /// Nodes.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Jobs.
    #[arg(long, default_value_t = 5_000)]
    jobs: usize,
    /// Job slots per node (requests in flight per node).
    #[arg(long, default_value_t = 16)]
    slots: u32,
    /// Credits per on-chain batch.
    #[arg(long, default_value_t = 1_000)]
    batch_max: usize,
    /// Measured rounds (the report gives medians).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Unmeasured jobs per node first, so the nodes pass probation and reach their audit floor.
    #[arg(long, default_value_t = 250)]
    warmup_per_node: usize,
    /// A folder with a built ../shared/rrbench: run it beside each round and report the ratio.
    #[arg(long, value_name = "DIR")]
    rrbench: Option<PathBuf>,
    /// anvil executable (default: tools folders, then PATH).
    #[arg(long, env = "POCMESH_ANVIL", value_name = "FILE")]
    anvil: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "bench-results/dispatch.json"
    )]
    out: PathBuf,
    /// Print the JSON report on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// A ticking spinner for a long benchmark; its message is the harness's progress.
fn spinner(label: &str) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(&format!(
        "{{spinner}} {label}: {{msg}} [{{elapsed}}]"
    ))?);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Ok(bar)
}

/// The runtime a harness that starts daemons runs on: every core (the dispatcher under test
/// lives in it).
fn bench_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn node_bench(a: NodeBenchArgs) -> anyhow::Result<ExitCode> {
    let bar = spinner("node benchmark")?;
    bar.set_message("k256 signature checks");
    let verify_per_s = pocmesh_executor::bench::k256_verify_per_sec(2_000)?;
    bar.set_message("wasm kernel vs native");
    let kernel = pocmesh_executor::bench::wasm_vs_native(a.rounds, a.data_len, a.samples)?;
    bar.finish_and_clear();
    let report = serde_json::json!({
        "k256_verify_per_s": verify_per_s,
        "kernel": kernel,
        "target_wasm_ratio_max": 3.0,
        "meets_target": kernel.ratio <= 3.0,
    });
    let json = serde_json::to_string_pretty(&report)?;
    write_report(&a.out, &json)?;
    if a.json {
        println!("{json}");
    } else {
        println!("k256 envelope checks (recover + compare): {verify_per_s:.0}/s");
        println!(
            "kernel ({} rounds over {} bytes, {} fuel): native {:.2} ms, wasm {:.2} ms, ratio {:.2} (target ≤ 3)",
            kernel.rounds,
            a.data_len,
            kernel.fuel,
            kernel.native_ms_median,
            kernel.wasm_ms_median,
            kernel.ratio
        );
        println!("report written to {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn dispatch_bench(a: DispatchBenchArgs) -> anyhow::Result<ExitCode> {
    let bin = locate_anvil(a.anvil.as_deref(), &default_tool_dirs())?;
    let config = pocmesh_testnet::bench::DispatchBenchConfig {
        anvil: bin,
        pocmesh: std::env::current_exe().context("locating the pocmesh binary for the nodes")?,
        nodes: a.nodes,
        jobs: a.jobs,
        slots: a.slots,
        batch_max: a.batch_max,
        rounds: a.rounds,
        warmup_per_node: a.warmup_per_node,
        rrbench: a.rrbench.clone(),
    };
    let bar = spinner("dispatch benchmark")?;
    let report = bench_runtime()?
        .block_on(pocmesh_testnet::bench::run(&config, &mut |m| {
            bar.set_message(m)
        }))
        .map_err(|e| anyhow::anyhow!(e))?;
    bar.finish_and_clear();
    let json = serde_json::to_string_pretty(&report)?;
    write_report(&a.out, &json)?;
    if a.json {
        println!("{json}");
    } else {
        println!(
            "{} jobs per round over {} node processes ({} slots each), after {} warm-up jobs:",
            report.jobs, report.nodes, report.slots, report.warmup_jobs
        );
        for (i, r) in report.rounds.iter().enumerate() {
            println!(
                "  round {}: verified {:.0}/s (in {:.2} s), on chain after {:.2} s; {:.1} offers and {:.1} results per message; {:.2} commits and {:.1} store writes per job{}",
                i + 1,
                r.verified_per_s,
                r.verified_s,
                r.recorded_s,
                r.offers_per_message,
                r.results_per_message,
                r.commits_per_job,
                r.store_writes_per_job,
                r.rrbench_per_s
                    .map(|c| format!("; rrbench {c:.0}/s"))
                    .unwrap_or_default()
            );
        }
        match (report.rrbench_per_s, report.ratio) {
            (Some(c), Some(ratio)) => println!(
                "median: {:.0} verified/s; rrbench ceiling {c:.0}/s; ratio {ratio:.2} (target ≥ 0.45)",
                report.verified_per_s
            ),
            _ => println!(
                "median: {:.0} verified/s (pass --rrbench DIR for the ceiling and the ratio)",
                report.verified_per_s
            ),
        }
        println!("report written to {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct PagesBenchArgs {
    /// Node processes (each heartbeating as a real volunteer would).
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Jobs run and recorded before the pages are timed.
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Timed requests per page (after one cold request).
    #[arg(long, default_value_t = 30)]
    requests: usize,
    /// anvil executable (default: tools folders, then PATH).
    #[arg(long, env = "POCMESH_ANVIL", value_name = "FILE")]
    anvil: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE", default_value = "bench-results/pages.json")]
    out: PathBuf,
    /// Print the JSON report on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn pages_bench(a: PagesBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1..=500).contains(&a.nodes),
        "--nodes must be between 1 and 500"
    );
    anyhow::ensure!(
        a.jobs > 0 && a.requests > 0,
        "--jobs and --requests must be above 0"
    );
    let bin = locate_anvil(a.anvil.as_deref(), &default_tool_dirs())?;
    let config = pocmesh_testnet::bench_pages::PagesBenchConfig {
        anvil: bin,
        pocmesh: std::env::current_exe().context("locating the pocmesh binary for the nodes")?,
        nodes: a.nodes,
        jobs: a.jobs,
        requests: a.requests,
    };
    let bar = spinner("pages benchmark")?;
    let report = bench_runtime()?
        .block_on(pocmesh_testnet::bench_pages::run(&config, &mut |m| {
            bar.set_message(m)
        }))
        .map_err(|e| anyhow::anyhow!(e))?;
    bar.finish_and_clear();
    let json = serde_json::to_string_pretty(&report)?;
    write_report(&a.out, &json)?;
    if a.json {
        println!("{json}");
    } else {
        println!(
            "{} nodes ({} online), {} jobs, {} batches, {} units on chain; {} requests per page:",
            report.nodes,
            report.nodes_online,
            report.jobs,
            report.batches,
            report.units_recorded,
            report.requests
        );
        println!(
            "  {:<60} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "path", "cold ms", "median", "p90", "max", "bytes"
        );
        for p in &report.pages {
            println!(
                "  {:<60} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9}",
                p.path, p.cold_ms, p.median_ms, p.p90_ms, p.max_ms, p.bytes
            );
        }
        println!(
            "slowest median {:.2} ms; every page under {} ms: {}",
            report.slowest_median_ms,
            report.target_ms,
            if report.all_under_target { "yes" } else { "NO" }
        );
        println!("report written to {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct GossipArgs {
    /// Network sizes to run, one after the other.
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 50, 100])]
    nodes: Vec<usize>,
    /// Heartbeat interval in milliseconds (each beat jittered ±20 %).
    #[arg(long, default_value_t = 5000)]
    interval_ms: u64,
    /// Intervals to run per size.
    #[arg(long, default_value_t = 4)]
    rounds: u32,
    /// Peers each new peer dials at start.
    #[arg(long, default_value_t = 4)]
    degree: usize,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE", default_value = "bench-results/gossip.json")]
    out: PathBuf,
    /// Print the JSON report on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn write_report(out: &std::path::Path, json: &str) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, format!("{json}\n")).with_context(|| format!("writing {}", out.display()))
}

fn gossip(a: GossipArgs) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new(a.nodes.len() as u64).with_style(ProgressStyle::with_template(
        "{spinner} gossip benchmark {pos}/{len}: {msg} [{elapsed}]",
    )?);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut results = Vec::new();
    let rt = runtime()?;
    for &n in &a.nodes {
        bar.set_message(format!("{n} nodes"));
        let config = pocmesh_mesh::bench::GossipBenchConfig {
            nodes: n,
            interval: std::time::Duration::from_millis(a.interval_ms),
            rounds: a.rounds,
            degree: a.degree,
        };
        results.push(rt.block_on(pocmesh_mesh::bench::run(&config))?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let json = serde_json::to_string_pretty(&results)?;
    write_report(&a.out, &json)?;
    if a.json {
        println!("{json}");
    } else {
        println!(
            "{:>6} {:>11} {:>15} {:>13} {:>8} {:>8} {:>11}",
            "nodes", "interval", "convergence", "(intervals)", "p50", "p99", "deliveries"
        );
        for r in &results {
            println!(
                "{:>6} {:>9}ms {:>13} {:>13} {:>6}ms {:>6}ms {:>11}",
                r.nodes,
                r.interval_ms,
                r.convergence_ms
                    .map_or("never".into(), |c| format!("{c}ms")),
                r.convergence_intervals
                    .map_or("-".into(), |c| format!("{c:.2}")),
                r.latency_p50_ms,
                r.latency_p99_ms,
                r.deliveries
            );
        }
        println!("report written to {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct GasArgs {
    /// Run against this RPC instead of starting a local anvil (needs --private-key or --key).
    #[arg(long, value_name = "URL")]
    rpc: Option<String>,
    /// The deploying account, used with --rpc.
    #[command(flatten)]
    signer: SignerArgs,
    /// anvil executable (default: tools folders, then PATH).
    #[arg(long, env = "POCMESH_ANVIL", value_name = "FILE")]
    anvil: Option<PathBuf>,
    /// Batch sizes (completions per recordBatch), over 10 providers each.
    #[arg(long, value_delimiter = ',', default_values_t = [10u64, 100, 1000])]
    sizes: Vec<u64>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE", default_value = "bench-results/gas.json")]
    out: PathBuf,
    /// Print the JSON report on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Gas(a) => gas(a),
        BenchCommand::Gossip(a) => gossip(a),
        BenchCommand::Node(a) => node_bench(a),
        BenchCommand::Dispatch(a) => dispatch_bench(a),
        BenchCommand::Pages(a) => pages_bench(a),
        BenchCommand::Verify(a) => verify_bench(a),
    }
}

fn gas(a: GasArgs) -> anyhow::Result<ExitCode> {
    let (_anvil, url, key): (Option<Anvil>, String, SecretKey) = match &a.rpc {
        Some(url) => (None, url.clone(), a.signer.load()?),
        None => {
            let bin = locate_anvil(a.anvil.as_deref(), &default_tool_dirs())?;
            let anvil = Anvil::spawn(&bin, &AnvilConfig::default())?;
            let url = anvil.rpc_url();
            (Some(anvil), url, SecretKey::from_hex(DEV_KEY_0)?)
        }
    };
    let bar = spinner("gas benchmark")?;
    let report = runtime()?.block_on(gas_bench::run(&url, &key, &a.sizes, &mut |label| {
        bar.set_message(label.to_string())
    }))?;
    bar.finish_and_clear();
    let json = serde_json::to_string_pretty(&report)?;
    write_report(&a.out, &json)?;
    if a.json {
        println!("{json}");
    } else {
        println!(
            "{:<14} {:>11} {:>9} {:<12} {:>10} {:>14}",
            "method", "completions", "providers", "state", "gas used", "gas/completion"
        );
        for r in &report.rows {
            let state = serde_json::to_value(r.state)?
                .as_str()
                .unwrap_or_default()
                .to_string();
            println!(
                "{:<14} {:>11} {:>9} {:<12} {:>10} {:>14.0}",
                r.method, r.completions, r.providers, state, r.gas_used, r.gas_per_completion
            );
        }
        println!(
            "target: ≤ {} gas per completion at 100 completions over 10 credited providers: {:.0} ({})",
            report.target_gas_per_completion,
            report.batch_100_steady_gas_per_completion,
            if report.meets_target {
                "met"
            } else {
                "NOT met"
            }
        );
        println!("report written to {}", a.out.display());
    }
    Ok(if report.meets_target {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
