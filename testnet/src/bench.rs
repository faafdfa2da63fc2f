//! `pocmesh bench dispatch`: verified completions per second, end to end, on one machine — a
//! dispatcher in this process and N `pocmesh node run` processes (as they run in reality, and as
//! `../shared/rrbench` runs its nodes), real swarms on 127.0.0.1 and sled stores, trivial `hash`
//! jobs submitted through the engine, results signed by the nodes and checked by the dispatcher
//! under the deployed verification policy, and every credit recorded on a real anvil.
//!
//! The nodes first earn their standing (probation, then a run of results that brings their
//! audit rate down to the floor) in an unmeasured warm-up; the measured jobs then run as they
//! would on a network of trusted volunteers. With `rrbench` pointed at a built copy of
//! `../shared/rrbench`, each round also runs that bare-libp2p harness with the same nodes, jobs
//! and requests in flight, and the report carries the ceiling and the ratio (medians of the
//! rounds).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pocmesh_chain::Devnet;
use pocmesh_chain::anvil::AnvilConfig;
use pocmesh_dispatcher::DispatcherConfig;
use pocmesh_protocol::{Address, Hash32, JobParams, JobSpec, Limits};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::procs::{self, Proc};

/// What to run.
#[derive(Debug, Clone)]
pub struct DispatchBenchConfig {
    /// The anvil executable.
    pub anvil: PathBuf,
    /// The `pocmesh` executable the nodes run as.
    pub pocmesh: PathBuf,
    /// Nodes.
    pub nodes: usize,
    /// Jobs measured per round.
    pub jobs: usize,
    /// Job slots per node (requests in flight per node).
    pub slots: u32,
    /// Credits per on-chain batch.
    pub batch_max: usize,
    /// Rounds (the report gives medians).
    pub rounds: usize,
    /// Unmeasured jobs per node before the first round, so nodes reach their audit floor.
    pub warmup_per_node: usize,
    /// A folder holding a built `../shared/rrbench` (`target/release/rrbench`), run beside.
    pub rrbench: Option<PathBuf>,
}

/// One measured round.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Seconds until every job was accepted (durable).
    pub submit_s: f64,
    /// Seconds from the first submission until every job was verified.
    pub verified_s: f64,
    /// Verified completions per second, end to end.
    pub verified_per_s: f64,
    /// Seconds from the first submission until every credit was on chain.
    pub recorded_s: f64,
    /// rrbench's completions per second in the same round, when it ran.
    pub rrbench_per_s: Option<f64>,
    /// Offers per `job_offer`/`job_offers` message sent in the round (batching at work).
    pub offers_per_message: f64,
    /// Results per `job_result`/`job_results` message received in the round.
    pub results_per_message: f64,
    /// The dispatcher's durable commits per job in the round (one per burst of inputs).
    pub commits_per_job: f64,
    /// Rows its commits wrote or removed per job in the round.
    pub store_writes_per_job: f64,
    /// The same by part of the store (`jobs`, `job_index`, `outbox`, …).
    pub store_writes_by_part: std::collections::BTreeMap<String, f64>,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchBenchReport {
    /// Nodes (separate processes).
    pub nodes: usize,
    /// Jobs per round (`hash`, 1 iteration, redundancy 1).
    pub jobs: usize,
    /// Slots per node.
    pub slots: u32,
    /// Warm-up jobs in total (not measured).
    pub warmup_jobs: usize,
    /// Verification as deployed: probation results, audit floor.
    pub probation_results: u32,
    /// The audit floor trusted nodes reach.
    pub audit_floor: f64,
    /// Each round.
    pub rounds: Vec<Round>,
    /// Median verified completions per second.
    pub verified_per_s: f64,
    /// Median rrbench completions per second (the ceiling), when it ran.
    pub rrbench_per_s: Option<f64>,
    /// `verified_per_s / rrbench_per_s`.
    pub ratio: Option<f64>,
    /// The dispatcher's re-executions during the measured rounds.
    pub audits_measured: u64,
    /// Batches recorded in all.
    pub batches: u64,
    /// Units recorded on chain in all.
    pub units_recorded: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs the benchmark; `progress` hears what happens.
pub async fn run(
    config: &DispatchBenchConfig,
    progress: &mut dyn FnMut(String),
) -> Result<DispatchBenchReport, String> {
    let mut scratch = Scratch::new("pocmesh-bench")?;
    run_in(config, &scratch.dir, &mut scratch.nodes, progress).await
}

/// A benchmark run's scratch folder and the node processes it starts: when it goes (the run
/// ended, failed or panicked), the processes are stopped by PID and the folder removed.
pub(crate) struct Scratch {
    /// The folder (stores, keys, logs).
    pub dir: PathBuf,
    /// Node processes started so far.
    pub nodes: Vec<Proc>,
}

impl Scratch {
    /// A new folder under the system's temporary directory, named `<prefix>-<pid>-<ms>`.
    pub(crate) fn new(prefix: &str) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            pocmesh_protocol::unix_ms_now()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch {
            dir,
            nodes: Vec::new(),
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for n in &self.nodes {
            procs::stop(n, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What [`launch`] starts: the chain and the dispatcher (its nodes are in the caller's list).
pub(crate) struct Launched {
    /// anvil, the contract and the dispatcher's key.
    pub devnet: Devnet,
    /// The dispatcher, in this process.
    pub dispatcher: pocmesh_dispatcher::Running,
}

/// How [`launch`] sets up the network.
pub(crate) struct LaunchShape<'a> {
    /// The anvil executable.
    pub anvil: &'a Path,
    /// The `pocmesh` executable the nodes run as.
    pub pocmesh: &'a Path,
    /// Node processes.
    pub nodes: usize,
    /// Job slots per node.
    pub slots: u32,
    /// Credits per on-chain batch.
    pub batch_max: usize,
    /// The nodes' heartbeat interval, ms (the dispatcher is told the same).
    pub heartbeat_ms: u64,
}

/// Starts anvil with the contract, a dispatcher in this process (verification as deployed, the
/// loopback origin rule relaxed as on any devnet) and `shape.nodes` node processes (pushed on
/// `nodes` as they start, so the caller stops them whatever happens), and waits until every
/// node is online.
pub(crate) async fn launch(
    shape: &LaunchShape<'_>,
    dir: &Path,
    nodes: &mut Vec<Proc>,
    progress: &mut dyn FnMut(String),
) -> Result<Launched, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    progress("starting anvil and deploying".into());
    let devnet = Devnet::start(Some(shape.anvil), &AnvilConfig::default())
        .await
        .map_err(|e| err(&e))?;
    let key = devnet.dispatcher.clone();
    let recorder = devnet.recorder().await.map_err(|e| err(&e))?;

    let net = pocmesh_protocol::topics::network_for_chain(devnet.anvil.chain_id());
    let mut dc = DispatcherConfig {
        data_dir: dir.join("dispatcher"),
        ..DispatcherConfig::default()
    };
    dc.network.net = net.clone();
    dc.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    dc.network.mdns = false;
    // Every node here comes from 127.0.0.1.
    dc.network.max_connections_per_ip = dc
        .network
        .max_connections_per_ip
        .max(2 * shape.nodes as u32 + 16);
    dc.api.listen = "127.0.0.1:0".parse().map_err(|e| err(&e))?;
    dc.api.tokens = vec!["bench".into()];
    dc.registry.heartbeat_interval_ms = shape.heartbeat_ms;
    // A node here takes well over 100 trivial jobs a second: the default cap of 6,000
    // assignments a minute per node (an operator's setting, not verification) would be what is
    // measured. The highest cap the config allows.
    dc.registry.rate_limit_per_minute = pocmesh_dispatcher::registry::MAX_RECENT_ASSIGNMENTS as u32;
    // Verification as deployed (probation, adaptive audits down to the floor); only the origin
    // rule is relaxed, as on any devnet: every node here is on 127.0.0.1.
    dc.verify.loopback_quorum = true;
    dc.batch.max_credits = shape.batch_max;
    dc.batch.max_age_ms = 500;
    // The chain reads of the API (wallet units, the explorer pages).
    dc.contract = Some(devnet.contract());
    dc.rpc = Some(devnet.rpc());
    progress("starting the dispatcher".into());
    let dispatcher = pocmesh_dispatcher::start(dc, key.clone(), Arc::new(recorder))
        .await
        .map_err(|e| err(&e))?;
    let bootstrap = dispatcher
        .listen
        .first()
        .cloned()
        .ok_or("the dispatcher has no listen address")?;
    progress(format!("starting {} node processes", shape.nodes));
    let consent = pocmesh_protocol::consent::consent_hash().to_string();
    for i in 0..shape.nodes {
        let name = format!("node-{i}");
        let data = dir.join(&name);
        let args: Vec<String> = [
            "node",
            "run",
            "--wallet",
            &bench_wallet(i).to_string(),
            "--data-dir",
            &data.display().to_string(),
            "--net",
            &net,
            "--bootstrap",
            &bootstrap,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--heartbeat-ms",
            &shape.heartbeat_ms.to_string(),
            "--max-jobs",
            &shape.slots.to_string(),
            "--job-types",
            "hash",
            "--trust-dispatcher",
            &key.address().to_string(),
            "--status",
            "127.0.0.1:0",
            "--accept-policy",
            &consent,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let marker = data.display().to_string();
        let p = procs::spawn(
            &name,
            shape.pocmesh,
            &args,
            &dir.join(format!("{name}.log")),
            &marker,
        )
        .map_err(|e| format!("starting {}: {e}", shape.pocmesh.display()))?;
        nodes.push(p);
    }
    let handle = dispatcher.handle.clone();
    let started = Instant::now();
    let wait = Duration::from_secs(120 + shape.nodes as u64);
    let deadline = started + wait;
    loop {
        let s = handle.status().await.map_err(|e| err(&e))?;
        progress(format!("{}/{} nodes online", s.nodes_online, shape.nodes));
        if s.nodes_online >= shape.nodes {
            break;
        }
        // (Right after the fork, a child's command line is still ours: give them a moment.)
        if started.elapsed() > Duration::from_secs(3)
            && let Some(dead) = nodes.iter().find(|p| !procs::alive(p))
        {
            let log = std::fs::read_to_string(&dead.log).unwrap_or_default();
            return Err(format!("{} exited:\n{log}", dead.name));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} nodes online after {} s",
                s.nodes_online,
                shape.nodes,
                wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Launched { devnet, dispatcher })
}

/// The wallet bench node `i` earns for (one per node).
pub(crate) fn bench_wallet(i: usize) -> Address {
    let mut b = [0x20; 20];
    b[12..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    Address::from(b)
}

async fn run_in(
    config: &DispatchBenchConfig,
    dir: &Path,
    nodes: &mut Vec<Proc>,
    progress: &mut dyn FnMut(String),
) -> Result<DispatchBenchReport, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    if config.rounds == 0 || config.nodes == 0 || config.jobs == 0 {
        return Err("rounds, nodes and jobs must be above 0".into());
    }
    let shape = LaunchShape {
        anvil: &config.anvil,
        pocmesh: &config.pocmesh,
        nodes: config.nodes,
        slots: config.slots,
        batch_max: config.batch_max,
        // Fast beats: the nodes are online within a second of starting.
        heartbeat_ms: 1_000,
    };
    let Launched { devnet, dispatcher } = launch(&shape, dir, nodes, progress).await?;
    let verify = pocmesh_dispatcher::policy::VerifySettings::default();
    let (probation_results, audit_floor) = (verify.probation_results, verify.audit_floor);
    let handle = dispatcher.handle.clone();
    let client =
        pocmesh_dispatcher::api::client::ApiClient::new(format!("http://{}", dispatcher.api));

    let warmup = config.warmup_per_node * config.nodes;
    let mut seq = 0u64;
    if warmup > 0 {
        progress(format!(
            "warm-up: {warmup} jobs so the nodes earn their standing"
        ));
        run_jobs(&handle, &mut seq, warmup, progress, "warm-up").await?;
    }
    let mut rounds = Vec::new();
    let audits_before = audits(&handle).await?;
    for r in 0..config.rounds {
        progress(format!("round {}/{}", r + 1, config.rounds));
        let before = MessageCounts::read(&client).await?;
        let mut round = run_jobs(&handle, &mut seq, config.jobs, progress, "round").await?;
        let after = MessageCounts::read(&client).await?;
        round.offers_per_message = after.per_message(&before, |c| (c.offers, c.offer_messages));
        round.results_per_message = after.per_message(&before, |c| (c.results, c.result_messages));
        let jobs = config.jobs.max(1) as f64;
        round.commits_per_job = (after.commits - before.commits) / jobs;
        round.store_writes_per_job = (after.store_writes - before.store_writes) / jobs;
        round.store_writes_by_part = after
            .writes_by_part
            .iter()
            .map(|(part, n)| {
                let was = before.writes_by_part.get(part).copied().unwrap_or(0.0);
                (part.clone(), (n - was) / jobs)
            })
            .filter(|(_, n)| *n > 0.0)
            .collect();
        if let Some(rr) = &config.rrbench {
            progress(format!("round {}/{}: rrbench beside", r + 1, config.rounds));
            round.rrbench_per_s = Some(rrbench(rr, config).await?);
        }
        rounds.push(round);
    }
    let audits_measured = audits(&handle).await?.saturating_sub(audits_before);
    let s = handle.status().await.map_err(|e| err(&e))?;
    dispatcher.stop().await;
    drop(devnet);
    let verified_per_s = median(rounds.iter().map(|r| r.verified_per_s).collect());
    let rrbench_per_s = config
        .rrbench
        .as_ref()
        .map(|_| median(rounds.iter().filter_map(|r| r.rrbench_per_s).collect()));
    Ok(DispatchBenchReport {
        nodes: config.nodes,
        jobs: config.jobs,
        slots: config.slots,
        warmup_jobs: warmup,
        probation_results,
        audit_floor,
        rounds,
        verified_per_s,
        rrbench_per_s,
        ratio: rrbench_per_s.map(|c| verified_per_s / c),
        audits_measured,
        batches: s.batches_recorded,
        units_recorded: s.units_recorded,
    })
}

/// The dispatcher's job-protocol and store counters, from its `/metrics`.
#[derive(Debug, Clone, Default)]
struct MessageCounts {
    offers: f64,
    offer_messages: f64,
    results: f64,
    result_messages: f64,
    commits: f64,
    store_writes: f64,
    writes_by_part: std::collections::BTreeMap<String, f64>,
}

impl MessageCounts {
    async fn read(client: &pocmesh_dispatcher::api::client::ApiClient) -> Result<Self, String> {
        let text = client
            .get_text("/metrics")
            .await
            .map_err(|e| e.to_string())?;
        let sum = |name: &str, events: &[&str]| -> f64 {
            text.lines()
                .filter_map(|l| l.strip_prefix(&format!("pocmesh_dispatcher_{name}_total{{")))
                .filter(|l| {
                    events
                        .iter()
                        .any(|e| l.starts_with(&format!("event=\"{e}\"")))
                })
                .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .sum()
        };
        let plain = |name: &str| -> f64 {
            let prefix = format!("pocmesh_dispatcher_{name}_total ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // pocmesh_dispatcher_store_writes_total{part="jobs"} 123
        let writes_by_part: std::collections::BTreeMap<String, f64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("pocmesh_dispatcher_store_writes_total{part=\""))
            .filter_map(|l| {
                let (part, rest) = l.split_once('"')?;
                let n = rest.split_whitespace().last()?.parse::<f64>().ok()?;
                Some((part.to_string(), n))
            })
            .collect();
        Ok(MessageCounts {
            offers: sum("offers", &["accepted", "declined", "unreachable"]),
            offer_messages: sum("job_messages", &["job_offer", "job_offers"]),
            results: sum(
                "results",
                &[
                    "submitted",
                    "failed",
                    "rejected",
                    "late",
                    "unknown",
                    "repeat",
                ],
            ),
            result_messages: sum("job_messages", &["job_result", "job_results"]),
            commits: plain("store_commits"),
            store_writes: writes_by_part.values().sum(),
            writes_by_part,
        })
    }

    /// Items per message between `before` and now, for the pair `pick` names.
    fn per_message(&self, before: &Self, pick: impl Fn(&Self) -> (f64, f64)) -> f64 {
        let (items, messages) = pick(self);
        let (items0, messages0) = pick(before);
        let messages = messages - messages0;
        if messages > 0.0 {
            (items - items0) / messages
        } else {
            0.0
        }
    }
}

/// The dispatcher's re-executions so far, from its metrics.
async fn audits(handle: &pocmesh_dispatcher::api::EngineHandle) -> Result<u64, String> {
    // The status counts verified jobs; re-executions are counted in the node standings.
    let nodes = handle.nodes().await.map_err(|e| e.to_string())?;
    Ok(nodes.iter().map(|n| n.counters.audited).sum())
}

/// Submits `n` jobs (`hash`, 1 iteration, redundancy 1, seeds from `seq` on) and waits until
/// they are all recorded.
pub(crate) async fn run_jobs(
    handle: &pocmesh_dispatcher::api::EngineHandle,
    seq: &mut u64,
    n: usize,
    progress: &mut dyn FnMut(String),
    what: &str,
) -> Result<Round, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let count = |s: &pocmesh_dispatcher::StatusView, names: &[&str]| -> u64 {
        names
            .iter()
            .map(|n| s.jobs.get(*n).copied().unwrap_or(0))
            .sum()
    };
    let before = handle.status().await.map_err(|e| err(&e))?;
    let (verified0, recorded0) = (
        count(&before, &["verified", "recording", "recorded"]),
        count(&before, &["recorded"]),
    );
    let start = Instant::now();
    let mut submits = JoinSet::new();
    let first = *seq;
    *seq += n as u64;
    let per_task = n.div_ceil(64);
    for t in 0..64usize {
        let handle = handle.clone();
        let k = per_task.min(n.saturating_sub(t * per_task));
        submits.spawn(async move {
            for j in 0..k {
                let spec = JobSpec {
                    params: JobParams::Hash {
                        seed: Hash32::keccak((first + (t * per_task + j) as u64).to_be_bytes()),
                        iterations: 1,
                    },
                    limits: Limits {
                        max_ms: 10_000,
                        max_mem_mb: 16,
                        max_output_bytes: 64,
                        max_fuel: None,
                    },
                };
                handle
                    .submit(spec, Some(1))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = submits.join_next().await {
        r.map_err(|e| err(&e))??;
    }
    let submit_s = start.elapsed().as_secs_f64();
    let total = n as u64;
    let mut verified_s = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let s = handle.status().await.map_err(|e| err(&e))?;
        let verified = count(&s, &["verified", "recording", "recorded"]) - verified0;
        let recorded = count(&s, &["recorded"]) - recorded0;
        if verified_s.is_none() && verified >= total {
            verified_s = Some(start.elapsed().as_secs_f64());
        }
        if recorded >= total {
            let recorded_s = start.elapsed().as_secs_f64();
            let verified_s = verified_s.unwrap_or(recorded_s);
            return Ok(Round {
                submit_s,
                verified_s,
                verified_per_s: total as f64 / verified_s,
                recorded_s,
                rrbench_per_s: None,
                offers_per_message: 0.0,
                results_per_message: 0.0,
                commits_per_job: 0.0,
                store_writes_per_job: 0.0,
                store_writes_by_part: Default::default(),
            });
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what}: {verified} verified, {recorded} recorded of {total} after 900 s"
            ));
        }
        progress(format!(
            "{what}: {verified}/{total} verified, {recorded} recorded"
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One run of rrbench (its own `run.sh`: node processes, one dispatcher, JSON out) with this
/// benchmark's shape; its `completions_per_s`.
async fn rrbench(folder: &Path, config: &DispatchBenchConfig) -> Result<f64, String> {
    let bin = folder.join("target/release/rrbench");
    if !bin.is_file() {
        return Err(format!(
            "{} not found: build it first (cd {} && cargo build --release)",
            bin.display(),
            folder.display()
        ));
    }
    let results = std::env::temp_dir().join(format!(
        "pocmesh-rrbench-{}-{}.jsonl",
        std::process::id(),
        pocmesh_protocol::unix_ms_now()
    ));
    let out = tokio::process::Command::new("bash")
        .arg("run.sh")
        .current_dir(folder)
        .env("NODES", config.nodes.to_string())
        .env("KS", config.slots.to_string())
        .env("JOBS", config.jobs.max(5_000).to_string())
        .env("REPEAT", "1")
        .env("LABEL", "pocmesh-bench")
        .env("RESULTS", &results)
        .output()
        .await
        .map_err(|e| format!("running rrbench: {e}"))?;
    let text = std::fs::read_to_string(&results).unwrap_or_default();
    let _ = std::fs::remove_file(&results);
    let _ = std::fs::remove_file(format!("{}.tmp", results.display()));
    let line = text.lines().last().ok_or_else(|| {
        format!(
            "rrbench wrote no result: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("rrbench result `{line}`: {e}"))?;
    v["completions_per_s"]
        .as_f64()
        .ok_or_else(|| format!("rrbench result without completions_per_s: {line}"))
}
