//! `pocmesh bench verify`: a simulation of the dispatcher's verification policy against nodes
//! that cheat in named ways. It runs the policy's own code — [`crate::policy::decide`], the
//! standings, audit rates and exclusions of [`NodeRegistry`], the units rule of
//! `pocmesh_protocol` — with the network, the store and the chain replaced by a loop: jobs are
//! handed to random independent nodes, their claims decided, audits answered with the right
//! result, credits batched every `batch_credits` and then final ("recorded").
//!
//! What it reports per strategy: how many of its own jobs a cheater gets before it is excluded
//! (median, p99, share excluded within 50), wrong units accepted and recorded, and the overhead
//! (executions per credited job) — overall, and for jobs held only by trusted honest nodes —
//! plus the policy's own CPU per result.

use std::collections::HashMap;
use std::time::Instant;

use pocmesh_protocol::{
    Address, Bytes, Hash32, JobId, JobParams, JobSpec, Limits, Metering, credited_units, keccak256,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::policy::{
    AuditKey, AuditState, Claim, Decision, IndependenceRule, JobFacts, Member, Origin, ResultKey,
    Trust, VerifySettings, decide,
};
use crate::registry::{NodeRegistry, RegistryConfig};

/// How a simulated node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Strategy {
    /// Always right.
    Honest,
    /// A wrong output on a share `p` of its jobs (e.g. skips the work).
    WrongOutput {
        /// Share of jobs cheated on.
        p: f64,
    },
    /// The right output, but claims the job's whole fuel limit as its fuel on a share `p`.
    InflatedMetering {
        /// Share of jobs cheated on.
        p: f64,
    },
    /// Pairs of nodes (distinct wallets and networks) that give the same wrong output on the
    /// same share `p` of jobs, so they agree with each other when they share a job.
    ColludingPairs {
        /// Share of jobs cheated on.
        p: f64,
    },
    /// Two node keys crediting one wallet, both wrong on the same share `p` of jobs.
    SharedWallet {
        /// Share of jobs cheated on.
        p: f64,
    },
    /// Honest for its first `after` jobs, then wrong on a share `p` (a trusted node turning).
    LateCheater {
        /// Honest jobs first.
        after: u64,
        /// Share of later jobs cheated on.
        p: f64,
    },
}

impl Strategy {
    fn cheat_share(self) -> f64 {
        match self {
            Strategy::Honest => 0.0,
            Strategy::WrongOutput { p }
            | Strategy::InflatedMetering { p }
            | Strategy::ColludingPairs { p }
            | Strategy::SharedWallet { p }
            | Strategy::LateCheater { p, .. } => p,
        }
    }
}

/// One scenario: a population with some cheaters of one strategy.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// A short name.
    pub name: String,
    /// The cheaters' strategy.
    pub strategy: Strategy,
    /// Nodes per job when submitted (1: the default, adaptive audits only).
    pub redundancy: u32,
}

/// Settings of a simulation run.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    /// Nodes in the population.
    pub nodes: usize,
    /// How many of them cheat (in each scenario but `honest`).
    pub cheaters: usize,
    /// Independent runs per scenario (a fresh population and audit secret each).
    pub trials: usize,
    /// Jobs per node on average in a run.
    pub jobs_per_node: usize,
    /// Credits per batch: a credit becomes final (on chain) when its batch is cut.
    pub batch_credits: usize,
    /// Chance that the dispatcher's own run is unavailable (timeout, shed).
    pub audit_unavailable: f64,
    /// Seed of everything random.
    pub seed: u64,
    /// The policy under test.
    #[serde(skip)]
    pub verify: VerifySettings,
    /// The scenarios.
    pub scenarios: Vec<Scenario>,
}

impl Default for SimConfig {
    fn default() -> Self {
        let s = |name: &str, strategy, redundancy| Scenario {
            name: name.into(),
            strategy,
            redundancy,
        };
        SimConfig {
            nodes: 100,
            cheaters: 10,
            trials: 100,
            jobs_per_node: 400,
            batch_credits: 256,
            audit_unavailable: 0.0,
            seed: 1,
            verify: VerifySettings::default(),
            scenarios: vec![
                s("honest", Strategy::Honest, 1),
                s("wrong_output_10pct", Strategy::WrongOutput { p: 0.10 }, 1),
                s("wrong_output_1pct", Strategy::WrongOutput { p: 0.01 }, 1),
                s("wrong_output_always", Strategy::WrongOutput { p: 1.0 }, 1),
                s(
                    "inflated_metering_10pct",
                    Strategy::InflatedMetering { p: 0.10 },
                    1,
                ),
                s(
                    "colluding_pairs_10pct_r2",
                    Strategy::ColludingPairs { p: 0.10 },
                    2,
                ),
                s(
                    "shared_wallet_10pct_r2",
                    Strategy::SharedWallet { p: 0.10 },
                    2,
                ),
                s(
                    "late_cheater_10pct_after_300",
                    Strategy::LateCheater {
                        after: 300,
                        p: 0.10,
                    },
                    1,
                ),
            ],
        }
    }
}

/// Median and 99th percentile.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

fn spread(mut v: Vec<f64>) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Some(Spread {
        median: at(0.5),
        p99: at(0.99),
        max: at(1.0),
    })
}

/// What one scenario showed.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// The scenario.
    pub scenario: Scenario,
    /// Cheating nodes simulated (over all trials).
    pub cheaters: usize,
    /// Share of cheaters excluded by the end of their run.
    pub excluded_share: f64,
    /// Share of cheaters excluded within 50 of their own jobs.
    pub excluded_within_50: f64,
    /// Share of cheaters excluded within 50 of their own jobs with no wrong unit recorded.
    pub excluded_within_50_clean: f64,
    /// Share of cheaters with at least one wrong unit recorded.
    pub cheaters_with_wrong_units_recorded: f64,
    /// Among cheaters that cheated at all, share excluded within 50 jobs of their first wrong
    /// result (for strategies that start honest).
    pub excluded_within_50_of_first_cheat: f64,
    /// Jobs a cheater took until it was excluded (excluded ones only).
    pub jobs_until_exclusion: Option<Spread>,
    /// Honest nodes excluded (must be 0).
    pub honest_excluded: usize,
    /// Wrong results cheaters sent.
    pub wrong_results: u64,
    /// Wrong results accepted (credited at some point).
    pub wrong_accepted: u64,
    /// Wrong units accepted.
    pub wrong_units_accepted: u64,
    /// Wrong units that reached the chain (their batch was cut before the node was caught).
    pub wrong_units_recorded: u64,
    /// Wrong credits taken back before their batch was cut.
    pub wrong_reopened: u64,
    /// Right units credited to honest nodes.
    pub honest_units: u64,
    /// Executions (nodes' and the dispatcher's) per credited job, all jobs.
    pub overhead: f64,
    /// The same over jobs held only by trusted honest nodes.
    pub overhead_trusted: f64,
    /// The dispatcher's re-executions per 1000 credited jobs.
    pub audits_per_1000_jobs: f64,
    /// Jobs simulated.
    pub jobs: u64,
}

/// The whole report (`bench-results/verify.json`).
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The settings.
    pub config: SimConfig,
    /// The policy's settings.
    pub policy: PolicyView,
    /// Per scenario.
    pub scenarios: Vec<ScenarioReport>,
    /// The policy's own CPU per submitted result (decide + standings), nanoseconds, median over
    /// scenarios.
    pub policy_ns_per_result: f64,
    /// The targets, checked.
    pub targets: Targets,
}

/// The policy settings in the report.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    /// Checked results before trust.
    pub probation_results: u32,
    /// Lowest audit rate.
    pub audit_floor: f64,
    /// Wrong results that exclude.
    pub exclude_after_wrong: u32,
}

/// The targets of the credit-integrity issue.
#[derive(Debug, Clone, Serialize)]
pub struct Targets {
    /// A 10 % cheater is excluded within 50 of its jobs, with no wrong unit recorded, with
    /// probability ≥ 0.99.
    pub cheater_10pct_excluded_within_50_clean: f64,
    /// Wrong units recorded for all 10 % cheaters together (those that escaped the first 50).
    pub cheater_10pct_wrong_units_recorded: u64,
    /// Overhead of trusted honest nodes ≤ 1.15.
    pub overhead_trusted_honest: f64,
    /// Whether all three hold.
    pub met: bool,
}

struct SimNode {
    address: Address,
    wallet: Address,
    origin: Origin,
    strategy: Strategy,
    jobs: u64,
    first_cheat: Option<u64>,
    excluded_at: Option<u64>,
    wrong_units_recorded: u64,
}

struct Pending {
    node: usize,
    units: u64,
    wrong: bool,
    audited: bool,
}

#[derive(Default)]
struct Tally {
    wrong_results: u64,
    wrong_accepted: u64,
    wrong_units_accepted: u64,
    wrong_units_recorded: u64,
    wrong_reopened: u64,
    honest_units: u64,
    executions: u64,
    audits: u64,
    credited_jobs: u64,
    trusted_executions: u64,
    trusted_jobs: u64,
    jobs: u64,
    policy_ns: u128,
    results: u64,
}

const FUEL_LIMIT: u64 = 2_000_000_000;

fn spec(fuel_limit: u64) -> JobSpec {
    JobSpec {
        params: JobParams::Wasm {
            module: Bytes(vec![0]),
            input: Bytes(vec![]),
        },
        limits: Limits {
            max_ms: 10_000,
            max_mem_mb: 64,
            max_output_bytes: 1024,
            max_fuel: Some(fuel_limit),
        },
    }
}

/// Runs every scenario of `config`; `progress(done, total)` after each trial.
pub fn run(config: &SimConfig, mut progress: impl FnMut(u64, u64)) -> VerifyReport {
    let total = (config.scenarios.len() * config.trials) as u64;
    let mut done = 0;
    let mut reports = Vec::new();
    let mut ns = Vec::new();
    for (i, scenario) in config.scenarios.iter().enumerate() {
        let mut tally = Tally::default();
        let mut cheaters: Vec<SimNode> = Vec::new();
        let mut honest_excluded = 0;
        for t in 0..config.trials {
            let seed = config
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add((i * 10_000 + t) as u64);
            let nodes = trial(config, scenario, seed, &mut tally);
            for n in nodes {
                if matches!(n.strategy, Strategy::Honest) {
                    honest_excluded += usize::from(n.excluded_at.is_some());
                } else {
                    cheaters.push(n);
                }
            }
            done += 1;
            progress(done, total);
        }
        if tally.results > 0 {
            ns.push(tally.policy_ns as f64 / tally.results as f64);
        }
        reports.push(report(scenario, &cheaters, honest_excluded, &tally));
    }
    ns.sort_by(f64::total_cmp);
    let policy_ns_per_result = ns.get(ns.len() / 2).copied().unwrap_or(0.0);
    let find = |name: &str| reports.iter().find(|r| r.scenario.name == name);
    let ten = find("wrong_output_10pct");
    let honest = find("honest");
    let targets = Targets {
        cheater_10pct_excluded_within_50_clean: ten.map_or(0.0, |r| r.excluded_within_50_clean),
        cheater_10pct_wrong_units_recorded: ten.map_or(0, |r| r.wrong_units_recorded),
        overhead_trusted_honest: honest.map_or(f64::NAN, |r| r.overhead_trusted),
        met: false,
    };
    let met = targets.cheater_10pct_excluded_within_50_clean >= 0.99
        && targets.overhead_trusted_honest <= 1.15;
    VerifyReport {
        config: config.clone(),
        policy: PolicyView {
            probation_results: config.verify.probation_results,
            audit_floor: config.verify.audit_floor,
            exclude_after_wrong: config.verify.exclude_after_wrong,
        },
        scenarios: reports,
        policy_ns_per_result,
        targets: Targets { met, ..targets },
    }
}

fn report(
    scenario: &Scenario,
    cheaters: &[SimNode],
    honest_excluded: usize,
    t: &Tally,
) -> ScenarioReport {
    let n = cheaters.len().max(1) as f64;
    let excluded: Vec<f64> = cheaters
        .iter()
        .filter_map(|c| c.excluded_at.map(|j| j as f64))
        .collect();
    let within = |limit: u64| {
        cheaters
            .iter()
            .filter(|c| c.excluded_at.is_some_and(|j| j <= limit))
            .count() as f64
            / n
    };
    let clean_within_50 = cheaters
        .iter()
        .filter(|c| c.excluded_at.is_some_and(|j| j <= 50) && c.wrong_units_recorded == 0)
        .count() as f64
        / n;
    let with_wrong = cheaters
        .iter()
        .filter(|c| c.wrong_units_recorded > 0)
        .count() as f64
        / n;
    let cheated: Vec<&SimNode> = cheaters
        .iter()
        .filter(|c| c.first_cheat.is_some())
        .collect();
    let after_first = cheated
        .iter()
        .filter(|c| match (c.first_cheat, c.excluded_at) {
            (Some(f), Some(x)) => x <= f + 50,
            _ => false,
        })
        .count() as f64
        / cheated.len().max(1) as f64;
    let per_job = |e: u64, j: u64| {
        if j == 0 {
            f64::NAN
        } else {
            e as f64 / j as f64
        }
    };
    ScenarioReport {
        scenario: scenario.clone(),
        cheaters: cheaters.len(),
        excluded_share: excluded.len() as f64 / n,
        excluded_within_50: within(50),
        excluded_within_50_clean: clean_within_50,
        cheaters_with_wrong_units_recorded: with_wrong,
        excluded_within_50_of_first_cheat: after_first,
        jobs_until_exclusion: spread(excluded),
        honest_excluded,
        wrong_results: t.wrong_results,
        wrong_accepted: t.wrong_accepted,
        wrong_units_accepted: t.wrong_units_accepted,
        wrong_units_recorded: t.wrong_units_recorded,
        wrong_reopened: t.wrong_reopened,
        honest_units: t.honest_units,
        overhead: per_job(t.executions, t.credited_jobs),
        overhead_trusted: per_job(t.trusted_executions, t.trusted_jobs),
        audits_per_1000_jobs: per_job(t.audits * 1000, t.credited_jobs),
        jobs: t.jobs,
    }
}

/// One simulated run's world: the population, its standings and the randomness.
struct World<'a> {
    config: &'a SimConfig,
    strategy: Strategy,
    nodes: Vec<SimNode>,
    registry: NodeRegistry,
    rng: StdRng,
    rule: IndependenceRule,
}

/// One attempt of a simulated job.
struct SimAttempt {
    n: u32,
    node: usize,
    key: ResultKey,
    live: bool,
}

/// One simulated job as it runs: what is right, who holds it, what it cost.
struct JobRun {
    job: JobId,
    right: ResultKey,
    wrong_hash: Hash32,
    colluders_cheat: bool,
    redundancy: u32,
    attempts: Vec<SimAttempt>,
    executions: u64,
    all_trusted_honest: bool,
}

impl JobRun {
    /// Hands the job to fresh independent nodes until `redundancy` attempts are live; returns
    /// how many were added.
    fn fill(&mut self, w: &mut World<'_>, tally: &mut Tally) -> usize {
        let live = self.attempts.iter().filter(|a| a.live).count() as u32;
        let mut added = 0;
        for _ in live..self.redundancy {
            let members: Vec<Member> = self
                .attempts
                .iter()
                .filter(|a| a.live)
                .map(|a| member(&w.nodes[a.node], a.n))
                .collect();
            let tried: Vec<usize> = self.attempts.iter().map(|a| a.node).collect();
            let Some(pick) =
                pick_node(&mut w.rng, &w.nodes, &w.registry, &w.rule, &members, &tried)
            else {
                break;
            };
            let key = self.answer(w, pick, tally);
            let node = &w.nodes[pick];
            let trusted =
                w.registry.standing(&node.address).trust(&w.config.verify) == Trust::Trusted;
            if !(trusted && matches!(node.strategy, Strategy::Honest)) {
                self.all_trusted_honest = false;
            }
            self.executions += 1;
            let n = self.attempts.len() as u32 + 1;
            self.attempts.push(SimAttempt {
                n,
                node: pick,
                key,
                live: true,
            });
            added += 1;
        }
        added
    }

    /// What node `pick` answers, by its strategy.
    fn answer(&self, w: &mut World<'_>, pick: usize, tally: &mut Tally) -> ResultKey {
        let node = &mut w.nodes[pick];
        node.jobs += 1;
        let cheat = match node.strategy {
            Strategy::Honest => false,
            Strategy::ColludingPairs { .. } | Strategy::SharedWallet { .. } => self.colluders_cheat,
            Strategy::LateCheater { after, p } => node.jobs > after && w.rng.gen_bool(p),
            s => w.rng.gen_bool(s.cheat_share()),
        };
        if !cheat {
            return self.right;
        }
        if node.first_cheat.is_none() {
            node.first_cheat = Some(node.jobs);
        }
        tally.wrong_results += 1;
        match node.strategy {
            Strategy::InflatedMetering { .. } => ResultKey {
                fuel: FUEL_LIMIT,
                ..self.right
            },
            _ => ResultKey {
                result_hash: self.wrong_hash,
                ..self.right
            },
        }
    }
}

/// One run of one scenario; returns its nodes with their fates.
fn trial(config: &SimConfig, scenario: &Scenario, seed: u64, tally: &mut Tally) -> Vec<SimNode> {
    let mut rng = StdRng::seed_from_u64(seed);
    let key = AuditKey::from_bytes(rng.r#gen());
    let cheaters = if matches!(scenario.strategy, Strategy::Honest) {
        0
    } else {
        config.cheaters.min(config.nodes)
    };
    let nodes: Vec<SimNode> = (0..config.nodes)
        .map(|i| {
            let id = (i as u32).to_be_bytes();
            let mut a = [0u8; 20];
            a[..4].copy_from_slice(&id);
            a[19] = 1;
            let mut w = a;
            w[19] = 2;
            let strategy = if i < cheaters {
                scenario.strategy
            } else {
                Strategy::Honest
            };
            // Shared-wallet cheaters come in pairs crediting one wallet.
            if matches!(strategy, Strategy::SharedWallet { .. }) {
                w[..4].copy_from_slice(&((i / 2) as u32).to_be_bytes());
                w[18] = 0xee;
            }
            SimNode {
                address: Address(a),
                wallet: Address(w),
                origin: Origin::V4([10, (i >> 8) as u8, i as u8]),
                strategy,
                jobs: 0,
                first_cheat: None,
                excluded_at: None,
                wrong_units_recorded: 0,
            }
        })
        .collect();
    let mut w = World {
        config,
        strategy: scenario.strategy,
        nodes,
        registry: NodeRegistry::with_policy(
            RegistryConfig::default(),
            config.verify.clone(),
            Vec::new(),
        ),
        rng,
        rule: IndependenceRule {
            distinct_origins: true,
            loopback_quorum: false,
        },
    };
    let spec = spec(FUEL_LIMIT);
    let jobs = (config.nodes * config.jobs_per_node) as u64 / u64::from(scenario.redundancy.max(1));
    let mut pending: Vec<Pending> = Vec::new();
    for j in 0..jobs {
        tally.jobs += 1;
        let job = JobId::from(keccak256(
            [&seed.to_be_bytes()[..], &j.to_be_bytes()[..]].concat(),
        ));
        let fuel = w.rng.gen_range(1_000_000..50_000_000u64);
        // Colluders agree on which jobs to cheat on.
        let draw = u64::from(job.as_bytes()[0]) << 8 | u64::from(job.as_bytes()[1]);
        let mut run = JobRun {
            job,
            right: ResultKey {
                result_hash: Hash32(keccak256(job.as_bytes())),
                fuel,
                bytes: 32,
            },
            wrong_hash: Hash32(keccak256([job.as_bytes(), &b"wrong"[..]].concat())),
            colluders_cheat: draw < (w.strategy.cheat_share() * 65_536.0) as u64,
            redundancy: scenario.redundancy.max(1),
            attempts: Vec::new(),
            executions: 0,
            all_trusted_honest: true,
        };
        run.fill(&mut w, tally);
        let started = Instant::now();
        let mut results = run.attempts.len() as u64;
        let mut audit = AuditState::NotRun;
        for _round in 0..64 {
            let claims: Vec<Claim> = run
                .attempts
                .iter()
                .filter(|a| a.live)
                .map(|a| {
                    let n = &w.nodes[a.node];
                    Claim {
                        member: member(n, a.n),
                        key: a.key,
                        audit_rate: w.registry.audit_rate(
                            &n.address,
                            &n.wallet,
                            units_of(&spec, &a.key),
                        ),
                    }
                })
                .collect();
            let facts = JobFacts {
                job: run.job,
                redundancy: run.redundancy,
                max_redundancy: crate::scheduler::MAX_REDUNDANCY,
                outstanding: 0,
                audit,
                reverify: false,
                reexecutable: true,
                claims: &claims,
            };
            match decide(&facts, &w.rule, &key) {
                Decision::Wait => break,
                Decision::Audit => {
                    run.executions += 1;
                    tally.audits += 1;
                    audit = if w.rng.gen_bool(config.audit_unavailable) {
                        AuditState::Unavailable
                    } else {
                        AuditState::Done(run.right)
                    };
                }
                Decision::Wrong { attempts: wrong } => {
                    for a in run.attempts.iter_mut().filter(|a| wrong.contains(&a.n)) {
                        a.live = false;
                        let n = &w.nodes[a.node];
                        let (addr, wallet) = (n.address, n.wallet);
                        if w.registry.record_wrong(addr, wallet, "differs", j) {
                            w.nodes[a.node].excluded_at = Some(w.nodes[a.node].jobs);
                        }
                        reopen(a.node, &mut pending, tally, &mut w.registry, &w.nodes, j);
                    }
                }
                decision @ (Decision::Reassign | Decision::TieBreak) => {
                    if decision == Decision::TieBreak {
                        run.redundancy += 1;
                    }
                    let added = run.fill(&mut w, tally);
                    results += added as u64;
                    if added == 0 {
                        break;
                    }
                }
                Decision::GiveUp { .. } => break,
                Decision::Accept {
                    members,
                    checked,
                    audited,
                    ..
                } => {
                    tally.credited_jobs += 1;
                    for a in run.attempts.iter().filter(|a| members.contains(&a.n)) {
                        let n = &w.nodes[a.node];
                        let units = units_of(&spec, &a.key);
                        w.registry
                            .record_accepted(n.address, checked, audited, units, j);
                        let wrong = a.key != run.right;
                        if wrong {
                            tally.wrong_accepted += 1;
                            tally.wrong_units_accepted += units;
                        }
                        pending.push(Pending {
                            node: a.node,
                            units,
                            wrong,
                            audited,
                        });
                    }
                    break;
                }
            }
        }
        tally.policy_ns += started.elapsed().as_nanos();
        tally.results += results;
        tally.executions += run.executions;
        if run.all_trusted_honest && scenario.redundancy == 1 {
            tally.trusted_executions += run.executions;
            tally.trusted_jobs += 1;
        }
        if pending.len() >= config.batch_credits {
            record(&mut pending, tally, &mut w.nodes);
        }
    }
    record(&mut pending, tally, &mut w.nodes);
    w.nodes
}

/// The units a claim would be credited, by the units rule.
fn units_of(spec: &JobSpec, key: &ResultKey) -> u64 {
    credited_units(
        spec,
        &Metering {
            fuel: key.fuel,
            ms: 0,
            bytes: key.bytes,
        },
    )
}

/// Cuts a batch: what waits becomes final.
fn record(pending: &mut Vec<Pending>, tally: &mut Tally, nodes: &mut [SimNode]) {
    for p in pending.drain(..) {
        if p.wrong {
            tally.wrong_units_recorded += p.units;
            nodes[p.node].wrong_units_recorded += p.units;
        } else {
            tally.honest_units += p.units;
        }
    }
}

/// A node was caught: its unaudited credits not yet recorded are re-executed.
fn reopen(
    node: usize,
    pending: &mut Vec<Pending>,
    tally: &mut Tally,
    registry: &mut NodeRegistry,
    nodes: &[SimNode],
    now: u64,
) {
    let mut kept = Vec::with_capacity(pending.len());
    for p in pending.drain(..) {
        if p.node != node || p.audited {
            kept.push(p);
            continue;
        }
        tally.audits += 1;
        tally.executions += 1;
        if p.wrong {
            tally.wrong_reopened += 1;
            let n = &nodes[p.node];
            registry.record_wrong(n.address, n.wallet, "differs on re-verification", now);
        } else {
            kept.push(Pending { audited: true, ..p });
        }
    }
    *pending = kept;
}

fn member(n: &SimNode, attempt: u32) -> Member {
    Member {
        attempt,
        node: n.address,
        wallet: n.wallet,
        origin: Some(n.origin),
    }
}

/// A random node that is not excluded, not tried on this job and independent of `members`.
fn pick_node(
    rng: &mut StdRng,
    nodes: &[SimNode],
    registry: &NodeRegistry,
    rule: &IndependenceRule,
    members: &[Member],
    tried: &[usize],
) -> Option<usize> {
    let mut seen: HashMap<usize, ()> = HashMap::new();
    for _ in 0..nodes.len() * 4 {
        let i = rng.gen_range(0..nodes.len());
        if seen.insert(i, ()).is_some() {
            continue;
        }
        let n = &nodes[i];
        if tried.contains(&i) || registry.is_excluded(&n.address) {
            continue;
        }
        let m = member(n, 0);
        if members.iter().any(|x| rule.conflict(x, &m)) {
            continue;
        }
        return Some(i);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_catches_cheaters_and_spares_the_honest() {
        let mut config = SimConfig {
            trials: 4,
            jobs_per_node: 150,
            nodes: 30,
            cheaters: 5,
            ..SimConfig::default()
        };
        config.scenarios.retain(|s| {
            matches!(
                s.name.as_str(),
                "honest"
                    | "wrong_output_always"
                    | "inflated_metering_10pct"
                    | "shared_wallet_10pct_r2"
            )
        });
        let mut calls = 0;
        let r = run(&config, |_, _| calls += 1);
        assert_eq!(calls, 16);
        let by = |n: &str| r.scenarios.iter().find(|s| s.scenario.name == n).expect(n);
        let honest = by("honest");
        assert_eq!(honest.honest_excluded, 0);
        assert_eq!(honest.wrong_results, 0);
        assert!(honest.overhead >= 1.0, "{}", honest.overhead);
        let always = by("wrong_output_always");
        assert_eq!(always.excluded_share, 1.0);
        assert_eq!(
            always.wrong_units_recorded, 0,
            "on probation every result is checked"
        );
        let jobs = always.jobs_until_exclusion.expect("excluded");
        assert_eq!(jobs.max, 1.0, "caught at its first job");
        assert_eq!(by("inflated_metering_10pct").honest_excluded, 0);
        assert_eq!(by("shared_wallet_10pct_r2").honest_excluded, 0);
    }
}
