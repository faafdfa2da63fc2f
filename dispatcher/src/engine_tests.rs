//! Engine unit tests: the engine driven by hand with a [`ManualClock`] and a real (temporary)
//! sled store, without sockets, chain or audit threads. Each test feeds the inputs the network
//! layer would deliver and reads the effects the engine hands to its I/O layers; results and
//! the dispatcher's own runs are real executions of the `hash` job.

use std::sync::Arc;

use pocmesh_executor::HashExecutor;
use pocmesh_protocol::consent::consent_hash;
use pocmesh_protocol::{
    Address, BatchId, Bytes, Capabilities, Hash32, Heartbeat, JobId, JobParams, JobReply,
    JobResult, JobSpec, JobType, Limits, ResultStatus,
};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::clock::ManualClock;
use crate::config::DispatcherConfig;
use crate::engine::{Engine, EngineParts, Input, OfferAnswer, Outgoing};
use crate::lifecycle::{AttemptState, Job, JobState};
use crate::metrics::DispatcherMetrics;
use crate::store::{BatchRow, DispatcherStore};
use crate::verify::{AuditOutcome, result_key};

const T0: u64 = 1_800_000_000_000;
const MAX_MS: u64 = 10_000;

/// An engine, its clock, its store's folder and the effects it has emitted so far.
struct Rig {
    engine: Engine,
    clock: ManualClock,
    config: Arc<DispatcherConfig>,
    dir: tempfile::TempDir,
    effects: Vec<Outgoing>,
    seq: u64,
    nodes: Vec<Address>,
}

fn config() -> DispatcherConfig {
    let mut c = DispatcherConfig::default();
    c.verify.probation_results = 1;
    // Trusted nodes are (almost) never audited: the tests say when the dispatcher runs a job.
    c.verify.audit_floor = 1e-9;
    c.batch.max_credits = 3;
    c.batch.max_age_ms = 3_000;
    c
}

fn load(dir: &std::path::Path, config: Arc<DispatcherConfig>, clock: &ManualClock) -> Engine {
    let store = DispatcherStore::open(dir).expect("store");
    Engine::load(EngineParts {
        config,
        address: Address::from([0xd1; 20]),
        store,
        metrics: Arc::new(DispatcherMetrics::new()),
        shutdown: CancellationToken::new(),
        clock: Arc::new(clock.clone()),
    })
    .expect("engine loads")
}

/// A `hash` job over `seed` repeated, within the tests' limits.
fn hash_spec(seed: u8, iterations: u64) -> JobSpec {
    JobSpec {
        params: JobParams::Hash {
            seed: Hash32([seed; 32]),
            iterations,
        },
        limits: Limits {
            max_ms: MAX_MS,
            max_mem_mb: 16,
            max_output_bytes: 64,
            max_fuel: None,
        },
    }
}

fn node(i: u8) -> Address {
    Address::from([i; 20])
}

fn wallet(i: u8) -> Address {
    Address::from([0x40 + i; 20])
}

/// Node `i` says it is alive (sequence `seq`), with all 4 slots free, on the current policy;
/// odd nodes take receipts 64 to a message, even ones (as older nodes) one at a time.
fn heartbeat(i: u8, seq: u64) -> Input {
    Input::Heartbeat {
        from: node(i),
        heartbeat: Box::new(Heartbeat {
            seq,
            wallet: wallet(i),
            peer: format!("peer-{i}"),
            caps: Capabilities {
                cores: 2,
                mem_mb: 1024,
                gpu: None,
                job_types: vec![JobType::Hash],
                slots_total: 4,
                slots_free: 4,
                receipts_batch: if i % 2 == 1 { 64 } else { 0 },
                jobs_batch: if i % 2 == 1 { 64 } else { 0 },
            },
            policy: consent_hash(),
            sw: "test".into(),
        }),
    }
}

impl Rig {
    fn new(config: DispatcherConfig, nodes: u8) -> Rig {
        let dir = tempfile::tempdir().expect("tmp");
        let clock = ManualClock::new(T0);
        let config = Arc::new(config);
        let engine = load(dir.path(), config.clone(), &clock);
        let mut rig = Rig {
            engine,
            clock,
            config,
            dir,
            effects: Vec::new(),
            seq: 0,
            nodes: (1..=nodes).map(node).collect(),
        };
        rig.heartbeats();
        rig
    }

    /// Stops the engine (dropping it, as a crash would lose its memory) and loads it again
    /// from the store.
    fn restart(self) -> Rig {
        let Rig {
            engine,
            clock,
            config,
            dir,
            seq,
            nodes,
            ..
        } = self;
        drop(engine);
        let engine = reopen(dir.path(), config.clone(), &clock);
        let mut rig = Rig {
            engine,
            clock,
            config,
            dir,
            effects: Vec::new(),
            seq,
            nodes,
        };
        rig.heartbeats();
        rig
    }

    /// One burst: the inputs, then what the engine does at the end of every burst.
    fn burst(&mut self, inputs: Vec<Input>) {
        for i in inputs {
            self.engine.handle(i);
        }
        let work = self.engine.finish_burst().expect("commit");
        self.effects.extend(work);
    }

    /// Every node says it is alive, with all slots free.
    fn heartbeats(&mut self) {
        self.seq += 1;
        let inputs = self
            .nodes
            .clone()
            .into_iter()
            .enumerate()
            .map(|(k, _)| heartbeat(k as u8 + 1, self.seq))
            .collect();
        self.burst(inputs);
    }

    /// Time passes (nodes keep sending heartbeats), then the engine's tick runs.
    fn advance(&mut self, ms: u64) {
        let step = 4_000;
        let mut left = ms;
        while left > 0 {
            let d = left.min(step);
            self.clock.advance(d);
            left -= d;
            self.heartbeats();
        }
        self.engine.on_tick();
        self.burst(Vec::new());
    }

    /// Submits one `hash` job per seed in a single burst (redundancy 1).
    fn submit_burst(&mut self, seeds: impl IntoIterator<Item = (u8, u64)>) {
        let inputs = seeds
            .into_iter()
            .map(|(seed, iterations)| Input::Submit {
                spec: hash_spec(seed, iterations),
                redundancy: Some(1),
                reply: oneshot::channel().0,
            })
            .collect();
        self.burst(inputs);
    }

    fn submit(&mut self, iterations: u64, redundancy: u32) -> JobId {
        let (reply, mut rx) = oneshot::channel();
        let spec = hash_spec(iterations as u8, iterations);
        self.burst(vec![Input::Submit {
            spec,
            redundancy: Some(redundancy),
            reply,
        }]);
        rx.try_recv()
            .expect("answered after commit")
            .expect("accepted")
    }

    /// Takes the effects `pick` recognises out of those emitted so far.
    fn take<T>(&mut self, pick: impl Fn(&Outgoing) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        self.effects.retain(|e| match pick(e) {
            Some(t) => {
                out.push(t);
                false
            }
            None => true,
        });
        out
    }

    fn offers(&mut self) -> Vec<(JobId, u32, Address)> {
        self.take(|e| match e {
            Outgoing::Offers { node, offers, .. } => Some(
                offers
                    .iter()
                    .map(|o| (o.job, o.attempt, *node))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .into_iter()
        .flatten()
        .collect()
    }

    fn audits(&mut self) -> Vec<JobId> {
        self.take(|e| match e {
            Outgoing::Audit { job, .. } => Some(*job),
            _ => None,
        })
    }

    fn records(&mut self) -> Vec<BatchRow> {
        self.take(|e| match e {
            Outgoing::Record(b) => Some(b.clone()),
            _ => None,
        })
    }

    /// The receipt messages to send: (peer, receipts, most per message).
    fn receipts(&mut self) -> Vec<(String, usize, usize)> {
        self.take(|e| match e {
            Outgoing::Receipts {
                peer,
                receipts,
                batch,
            } => Some((peer.clone(), receipts.len(), *batch)),
            _ => None,
        })
    }

    fn accept(&mut self, job: JobId, attempt: u32) {
        self.burst(vec![Input::OffersAnswered {
            answers: vec![(job, attempt, OfferAnswer::Accepted)],
        }]);
    }

    /// `from` delivers its result for attempt `attempt` of `job`: the real one, or a wrong one
    /// (right metering, wrong output).
    fn deliver(&mut self, from: Address, job: JobId, attempt: u32, honest: bool) -> JobReply {
        let (input, mut rx) = self.result(from, job, attempt, honest);
        self.burst(vec![input]);
        rx.try_recv().expect("result answered after commit")
    }

    /// A node's result for `job` (its own run of it), and where its answer arrives.
    fn result(
        &self,
        from: Address,
        job: JobId,
        attempt: u32,
        honest: bool,
    ) -> (Input, oneshot::Receiver<JobReply>) {
        let spec = self.job(job).spec;
        let mut exec = run(&spec);
        if !honest {
            exec.output[0] ^= 0xff;
        }
        let (reply, rx) = oneshot::channel();
        let input = Input::Results {
            from,
            results: vec![(
                JobResult {
                    job,
                    attempt,
                    status: ResultStatus::Ok,
                    result_hash: exec.result_hash(),
                    output: Some(Bytes(exec.output.clone())),
                    metering: exec.metering,
                    error: None,
                },
                reply,
            )],
        };
        (input, rx)
    }

    /// The dispatcher's own run of `job` finishes (for real).
    fn audited(&mut self, job: JobId) {
        let spec = self.job(job).spec;
        let exec = run(&spec);
        let key = result_key(
            JobType::Hash,
            exec.result_hash(),
            &exec.metering,
            &exec.output,
        );
        self.burst(vec![Input::Audited {
            job,
            outcome: AuditOutcome::Ran(key),
        }]);
    }

    /// Runs every re-execution the engine asked for (as the audit runner would), until it asks
    /// for no more.
    fn settle(&mut self) {
        for _ in 0..8 {
            let asked = self.audits();
            if asked.is_empty() {
                return;
            }
            for job in asked {
                self.audited(job);
            }
        }
    }

    fn landed(&mut self, batch: BatchId) {
        self.burst(vec![Input::BatchLanded {
            batch,
            tx: Hash32([0x77; 32]),
            block: 9,
            gas_used: Some(150_000),
        }]);
    }

    fn job(&self, id: JobId) -> Job {
        match self.engine.jobs.get(&id) {
            Some(j) => j.clone(),
            None => self.engine.store.job(&id).expect("read").expect("stored"),
        }
    }

    /// Runs one job through a node until the node is trusted (its first result is re-executed).
    fn trust_all(&mut self) {
        for _ in 0..self.nodes.len() * 4 {
            let untrusted = self
                .engine
                .registry
                .snapshot(self.clock.now())
                .into_iter()
                .filter(|v| !matches!(v.trust, crate::policy::Trust::Trusted))
                .count();
            if untrusted == 0 {
                self.effects.clear();
                return;
            }
            let id = self.submit(100, 1);
            for (job, attempt, node) in self.offers() {
                self.accept(job, attempt);
                self.deliver(node, job, attempt, true);
            }
            self.settle();
            assert!(
                ["verified", "recording"].contains(&self.job(id).state.name()),
                "warm-up job verified"
            );
        }
        panic!("nodes did not become trusted");
    }
}

fn reopen(dir: &std::path::Path, config: Arc<DispatcherConfig>, clock: &ManualClock) -> Engine {
    // sled's flusher may hold the file lock for a moment after the old handle is dropped.
    for _ in 0..250 {
        if let Ok(store) = DispatcherStore::open(dir) {
            drop(store);
            return load(dir, config, clock);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("store at {} never unlocked", dir.display());
}

trait AttemptOf {
    fn attempt(&self, n: u32) -> crate::lifecycle::Attempt;
}

impl AttemptOf for Job {
    fn attempt(&self, n: u32) -> crate::lifecycle::Attempt {
        self.attempts
            .iter()
            .find(|a| a.n == n)
            .cloned()
            .expect("attempt exists")
    }
}

fn run(spec: &JobSpec) -> pocmesh_executor::Execution {
    let JobParams::Hash { seed, iterations } = &spec.params else {
        panic!("hash jobs only");
    };
    HashExecutor.run(seed.0, *iterations, &spec.limits)
}

impl ManualClock {
    fn now(&self) -> u64 {
        crate::clock::Clock::now_ms(self)
    }
}

#[test]
fn a_lease_that_runs_out_is_taken_back_and_the_job_finishes_on_another_node() {
    let mut rig = Rig::new(config(), 2);
    rig.trust_all();
    let id = rig.submit(1_000, 1);
    let offers = rig.offers();
    assert_eq!(offers.len(), 1, "one attempt for redundancy 1");
    let (_, first, holder) = offers[0];
    rig.accept(id, first);

    // Just inside the lease: nothing moves.
    let lease = MAX_MS + rig.config.jobs.lease_margin_ms;
    rig.advance(lease - 1_000);
    assert!(
        rig.offers().is_empty(),
        "no new attempt while the lease runs"
    );
    assert!(matches!(
        rig.job(id).attempt(first).state,
        AttemptState::Running { .. }
    ));

    // Past it: the attempt is taken back and offered to the other node.
    rig.advance(2_000);
    let again = rig.offers();
    assert_eq!(again.len(), 1, "{again:?}");
    let (_, second, other) = again[0];
    assert_ne!(other, holder, "not the node that let its lease run out");
    assert!(matches!(
        rig.job(id).attempt(first).state,
        AttemptState::TimedOut
    ));

    // The late result of the first attempt earns nothing; the second one is verified.
    let late = rig.deliver(holder, id, first, true);
    assert!(!late.accept, "a result after the lease is refused");
    rig.accept(id, second);
    let reply = rig.deliver(other, id, second, true);
    assert!(reply.accept);
    rig.settle();
    let job = rig.job(id);
    assert_eq!(job.state, JobState::Verified);
    assert_eq!(job.credits.len(), 1);
    assert_eq!(job.credits[0].node, other);
}

#[test]
fn a_disagreement_is_settled_by_a_run_here_and_a_failed_run_by_a_third_node() {
    let mut rig = Rig::new(config(), 3);
    rig.trust_all();

    // Two trusted nodes disagree: the dispatcher runs the job, and the wrong one is proven wrong.
    let id = rig.submit(2_000, 2);
    let offers = rig.offers();
    assert_eq!(offers.len(), 2);
    for &(_, n, _) in &offers {
        rig.accept(id, n);
    }
    rig.deliver(offers[0].2, id, offers[0].1, true);
    rig.deliver(offers[1].2, id, offers[1].1, false);
    assert_eq!(
        rig.audits(),
        vec![id],
        "a disagreement is settled by a run here"
    );
    rig.audited(id);
    let job = rig.job(id);
    assert_eq!(job.state, JobState::Verified);
    assert_eq!(job.credits.len(), 1, "only the right answer is credited");
    assert_eq!(job.credits[0].node, offers[0].2);
    assert!(matches!(
        job.attempt(offers[1].1).state,
        AttemptState::Rejected { .. }
    ));
    assert!(
        rig.engine.registry.is_excluded(&offers[1].2) || {
            let v = rig.engine.registry.snapshot(rig.clock.now());
            v.iter().any(|n| {
                n.address == offers[1].2 && !matches!(n.trust, crate::policy::Trust::Trusted)
            })
        }
    );

    // Two more disagree and the dispatcher's run cannot finish: nobody is blamed, a third
    // node breaks the tie.
    let mut rig = Rig::new(config(), 3);
    rig.trust_all();
    let id = rig.submit(3_000, 2);
    let offers = rig.offers();
    for &(_, n, _) in &offers {
        rig.accept(id, n);
    }
    rig.deliver(offers[0].2, id, offers[0].1, true);
    rig.deliver(offers[1].2, id, offers[1].1, false);
    assert_eq!(rig.audits(), vec![id]);
    rig.burst(vec![Input::Audited {
        job: id,
        outcome: AuditOutcome::Unavailable("the dispatcher's run took too long".into()),
    }]);
    let third = rig.offers();
    assert_eq!(third.len(), 1, "a tie-break attempt: {third:?}");
    let (_, n3, tiebreaker) = third[0];
    assert!(offers.iter().all(|o| o.2 != tiebreaker), "a third node");
    assert!(
        rig.job(id)
            .attempts
            .iter()
            .all(|a| !matches!(a.state, AttemptState::Rejected { .. })),
        "the dispatcher's failure rejects nobody"
    );
    rig.accept(id, n3);
    rig.deliver(tiebreaker, id, n3, true);
    rig.settle();
    let job = rig.job(id);
    assert_eq!(job.state, JobState::Verified);
    let mut credited: Vec<Address> = job.credits.iter().map(|c| c.node).collect();
    credited.sort();
    let mut want = vec![offers[0].2, tiebreaker];
    want.sort();
    assert_eq!(credited, want, "the two agreeing results are credited");
}

#[test]
fn batches_are_cut_when_full_or_when_their_oldest_credit_is_old_enough() {
    let mut rig = Rig::new(config(), 2);
    rig.trust_all();
    // Credits of the warm-up jobs wait in the outbox: land whatever was cut, then age the rest.
    rig.advance(rig.config.batch.max_age_ms);
    for b in rig.records() {
        rig.landed(b.id);
    }
    rig.advance(rig.config.batch.max_age_ms);
    for b in rig.records() {
        rig.landed(b.id);
    }
    rig.receipts();
    assert!(rig.engine.outbox.is_empty(), "warm-up credits recorded");

    let finish = |rig: &mut Rig, id: JobId| {
        for (job, n, node) in rig.offers() {
            assert_eq!(job, id);
            rig.accept(job, n);
            rig.deliver(node, job, n, true);
        }
        rig.settle();
    };
    // Two credits: under the size (3) and not old: no batch.
    let a = rig.submit(10, 1);
    finish(&mut rig, a);
    let b = rig.submit(11, 1);
    finish(&mut rig, b);
    assert!(rig.records().is_empty(), "two credits wait");
    // The third fills a batch at once.
    let c = rig.submit(12, 1);
    finish(&mut rig, c);
    let cut = rig.records();
    assert_eq!(cut.len(), 1, "a full batch is cut at once");
    assert_eq!(cut[0].credits.len(), 3);
    // One more while that batch is in flight: nothing until it lands and the credit ages.
    let d = rig.submit(13, 1);
    finish(&mut rig, d);
    rig.advance(rig.config.batch.max_age_ms + 1_000);
    assert!(rig.records().is_empty(), "one batch in flight at a time");
    rig.landed(cut[0].id);
    let sent = rig.receipts();
    assert_eq!(
        sent.iter().map(|(_, n, _)| n).sum::<usize>(),
        3,
        "each credited node hears of its receipt: {sent:?}"
    );
    assert_eq!(sent.len(), 2, "one message list per node: {sent:?}");
    for (peer, _, batch) in &sent {
        let want = if peer == "peer-1" { 64 } else { 0 };
        assert_eq!(*batch, want, "{peer} announced receipts_batch {want}");
    }
    for id in [a, b, c] {
        assert_eq!(rig.job(id).state.name(), "recorded");
    }
    // The fourth credit is old by now: cut alone.
    rig.advance(1);
    let cut = rig.records();
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].credits.len(), 1);
    assert_eq!(cut[0].credits[0].job, d);
}

#[test]
fn a_restart_recovers_open_work_from_the_store() {
    let mut rig = Rig::new(config(), 2);
    // Fresh nodes (on probation): every result waits for the dispatcher's run.
    let waiting = rig.submit(500, 1);
    let offered = rig.submit(600, 1);
    let offers = rig.offers();
    assert_eq!(offers.len(), 2);
    let (_, n_wait, node_wait) = *offers.iter().find(|o| o.0 == waiting).expect("offered");
    let (_, n_off, _) = *offers.iter().find(|o| o.0 == offered).expect("offered");
    rig.accept(waiting, n_wait);
    rig.deliver(node_wait, waiting, n_wait, true);
    assert_eq!(rig.audits(), vec![waiting]);
    let before = rig.engine.status();

    // The process dies with the run in progress and the other offer unanswered.
    let mut rig = rig.restart();
    let after = rig.engine.status();
    assert_eq!(after.jobs, before.jobs, "per-state counts survive");
    // The states that are not final are listed in memory, rebuilt from the loaded rows.
    let listed = |rig: &Rig, state: &str| -> Vec<JobId> {
        let filter = crate::job_index::JobFilter::in_state(state);
        let (jobs, _) = rig.engine.store.list_jobs(&filter, 10, None).expect("list");
        jobs.into_iter().map(|j| j.id).collect()
    };
    assert_eq!(rig.engine.store.listed_in_memory(), 2);
    assert_eq!(listed(&rig, "submitted"), vec![waiting]);
    assert_eq!(listed(&rig, "offered"), vec![offered]);
    // The result that was waiting is decided again: the run is asked for anew.
    assert_eq!(rig.audits(), vec![waiting], "the lost run is started again");
    rig.audited(waiting);
    assert_eq!(rig.job(waiting).state, JobState::Verified);
    assert_eq!(listed(&rig, "verified"), vec![waiting]);
    assert!(listed(&rig, "submitted").is_empty());
    // The unanswered offer is assumed taken; when its lease runs out, it goes out again.
    assert!(rig.offers().is_empty());
    rig.advance(MAX_MS + rig.config.jobs.lease_margin_ms + 1_000);
    let again = rig.offers();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].0, offered);
    assert!(again[0].1 > n_off, "a new attempt");
    // Standing survives too: the node whose result was confirmed is one checked result on.
    let standing = rig
        .engine
        .registry
        .snapshot(rig.clock.now())
        .into_iter()
        .find(|v| v.address == node_wait)
        .expect("known");
    assert!(matches!(standing.trust, crate::policy::Trust::Trusted));
}

#[tokio::test]
async fn a_full_heartbeat_lane_holds_back_neither_submissions_nor_reads() {
    use crate::engine::{LaneSendError, Lanes};
    let (lanes, _rx) = Lanes::new(2);
    lanes.try_send(heartbeat(1, 1)).expect("room");
    lanes.try_send(heartbeat(1, 1)).expect("room");
    assert!(matches!(
        lanes.try_send(heartbeat(1, 1)),
        Err(LaneSendError::Full)
    ));
    let quick = std::time::Duration::from_millis(200);
    let (reply, _) = oneshot::channel();
    tokio::time::timeout(quick, lanes.send(Input::Status { reply }))
        .await
        .expect("a read is not held back by heartbeats")
        .expect("queued");
    let (reply, _) = oneshot::channel();
    let spec = JobSpec {
        params: JobParams::Hash {
            seed: Hash32([1; 32]),
            iterations: 1,
        },
        limits: Limits {
            max_ms: MAX_MS,
            max_mem_mb: 16,
            max_output_bytes: 64,
            max_fuel: None,
        },
    };
    tokio::time::timeout(
        quick,
        lanes.send(Input::Submit {
            spec,
            redundancy: None,
            reply,
        }),
    )
    .await
    .expect("a submission is not held back by heartbeats")
    .expect("queued");
}

#[test]
fn a_bursts_offers_to_a_node_that_announces_jobs_batch_travel_as_one_message() {
    let mut rig = Rig::new(config(), 2);
    rig.trust_all();
    rig.effects.clear();
    rig.submit_burst((0..8u64).map(|i| (i as u8, 100 + i)));
    let messages = rig.take(|e| match e {
        Outgoing::Offers { node, offers, .. } => Some((*node, offers.len())),
        _ => None,
    });
    let to = |n: Address| -> Vec<usize> {
        messages
            .iter()
            .filter(|(node, _)| *node == n)
            .map(|(_, len)| *len)
            .collect()
    };
    // Node 1 announces jobs_batch 64: every offer of the burst in one message. Node 2, like
    // an older node, gets one message per offer.
    assert_eq!(to(node(1)), vec![4], "{messages:?}");
    assert_eq!(to(node(2)), vec![1, 1, 1, 1], "{messages:?}");
}

#[test]
fn an_acceptance_waits_for_the_jobs_next_write_and_a_restart_recovers_without_it() {
    let mut rig = Rig::new(config(), 1);
    rig.trust_all();
    let quick = rig.submit(700, 1);
    let slow = rig.submit(701, 1);
    let offers = rig.offers();
    let attempt = |id: JobId| offers.iter().find(|o| o.0 == id).expect("offered").1;
    let stored = |rig: &Rig, id: JobId| {
        rig.engine
            .store
            .job(&id)
            .expect("read")
            .expect("row")
            .attempts[0]
            .state
            .clone()
    };
    rig.accept(quick, attempt(quick));
    rig.accept(slow, attempt(slow));
    // Accepted in memory, not yet on disk.
    assert!(matches!(
        rig.job(quick).attempts[0].state,
        AttemptState::Running { .. }
    ));
    assert_eq!(stored(&rig, quick), AttemptState::Offered);
    // The quick job's result writes its acceptance with it: one write for both.
    rig.deliver(node(1), quick, attempt(quick), true);
    assert!(!matches!(stored(&rig, quick), AttemptState::Offered));
    // The slow one is written by the tick once the wait is over.
    assert_eq!(stored(&rig, slow), AttemptState::Offered);
    rig.advance(crate::engine::LAZY_WRITE_MS + 300);
    assert!(
        matches!(stored(&rig, slow), AttemptState::Running { .. }),
        "{:?}",
        stored(&rig, slow)
    );

    // Offered, written by the tick, accepted and lost in a crash before the next write: the
    // restart assumes it accepted.
    let lost = rig.submit(702, 1);
    let n = rig
        .offers()
        .iter()
        .find(|o| o.0 == lost)
        .expect("offered")
        .1;
    rig.advance(crate::engine::LAZY_WRITE_MS + 300);
    rig.accept(lost, n);
    assert_eq!(stored(&rig, lost), AttemptState::Offered);
    let mut rig = rig.restart();
    assert!(matches!(
        rig.job(lost).attempts[0].state,
        AttemptState::Running { .. }
    ));
    assert!(
        rig.offers().is_empty(),
        "not offered again while its lease runs"
    );
    assert!(
        rig.deliver(node(1), lost, n, true).accept,
        "its result is taken"
    );
}

#[test]
fn an_offer_waits_for_the_jobs_next_write_and_a_restart_offers_the_job_again_under_new_numbers() {
    let mut rig = Rig::new(config(), 1);
    rig.trust_all();
    // A job offered in the burst that submits it is written offered with its submission;
    // these two wait in the queue for the node's four slots to free up.
    let first: Vec<JobId> = (0..4).map(|i| rig.submit(720 + i, 1)).collect();
    let quick = rig.submit(710, 1);
    let forgotten = rig.submit(711, 1);
    let on_disk = |rig: &Rig, id: JobId| rig.engine.store.job(&id).expect("read").expect("row");
    assert_eq!(on_disk(&rig, quick).state, JobState::Queued);
    let offers = rig.offers();
    for id in &first[..2] {
        let n = offers.iter().find(|o| o.0 == *id).expect("offered").1;
        rig.accept(*id, n);
        assert!(rig.deliver(node(1), *id, n, true).accept);
    }
    let offers = rig.offers();
    let attempt = |id: JobId| offers.iter().find(|o| o.0 == id).expect("offered").1;
    // Offered in memory, not yet on disk: still queued there, with no attempt.
    assert_eq!(rig.job(quick).state, JobState::Offered);
    assert_eq!(on_disk(&rig, quick).state, JobState::Queued);
    assert!(on_disk(&rig, quick).attempts.is_empty());
    // The quick job's result writes its offer, acceptance and result at once.
    rig.accept(quick, attempt(quick));
    assert!(rig.deliver(node(1), quick, attempt(quick), true).accept);
    let row = on_disk(&rig, quick);
    assert_eq!(row.attempts.len(), 1);
    assert!(!matches!(
        row.attempts[0].state,
        AttemptState::Offered | AttemptState::Running { .. }
    ));

    // The other is accepted and lost in a crash before any write.
    let lost = attempt(forgotten);
    rig.accept(forgotten, lost);
    assert!(on_disk(&rig, forgotten).attempts.is_empty());
    let mut rig = rig.restart();
    let again = rig.offers();
    let (_, n, _) = *again
        .iter()
        .find(|o| o.0 == forgotten)
        .expect("offered again");
    assert!(
        n > lost,
        "a new number ({n}), not the lost one ({lost}) the node holds"
    );
    // The first offer after a restart is written at once: a second restart counts from it.
    assert!(on_disk(&rig, forgotten).attempts.iter().any(|a| a.n == n));
    // The node's run of the lost attempt is refused as unknown; the new one is taken.
    assert!(!rig.deliver(node(1), forgotten, lost, true).accept);
    rig.accept(forgotten, n);
    // The same result twice in one burst: the repeat's answer waits for the burst's write too.
    let (first, mut first_rx) = rig.result(node(1), forgotten, n, true);
    let (repeat, mut repeat_rx) = rig.result(node(1), forgotten, n, true);
    rig.engine.handle(first);
    rig.engine.handle(repeat);
    assert!(first_rx.try_recv().is_err() && repeat_rx.try_recv().is_err());
    rig.engine.finish_burst().expect("commit");
    assert!(first_rx.try_recv().expect("answered").accept);
    assert!(repeat_rx.try_recv().expect("answered").accept);
}

#[test]
fn a_burst_stops_looking_through_a_long_queue_that_no_node_can_take() {
    let mut c = config();
    // One assignment a minute: after the first job, the node has free slots and may take none.
    c.registry.rate_limit_per_minute = 1;
    let mut rig = Rig::new(c, 1);
    let first = rig.submit(800, 1);
    assert_eq!(rig.offers().len(), 1, "the first job goes out");
    rig.submit_burst((0..200u64).map(|i| (9, 1_000 + i)));
    assert!(rig.offers().is_empty(), "rate-limited: nothing offered");
    // The burst looked at 64 of the 200 and put them at the back: the next burst starts with
    // the 65th.
    let queue: Vec<JobId> = rig.engine.runnable.iter().copied().collect();
    assert_eq!(queue.len(), 200);
    assert!(!queue.contains(&first));
    let submitted_65th = rig
        .engine
        .jobs
        .values()
        .filter(|j| {
            j.spec.params
                == JobParams::Hash {
                    seed: Hash32([9; 32]),
                    iterations: 1_064,
                }
        })
        .map(|j| j.id)
        .next()
        .expect("the 65th job");
    assert_eq!(queue[0], submitted_65th);
}

#[test]
fn a_batch_cut_leaves_its_jobs_recording_state_to_the_batch_row_until_they_are_written() {
    let mut rig = Rig::new(config(), 2);
    rig.trust_all();
    // Let the warm-up credits go first.
    for _ in 0..2 {
        rig.advance(rig.config.batch.max_age_ms);
        for b in rig.records() {
            rig.landed(b.id);
        }
    }
    rig.receipts();
    let mut ids = Vec::new();
    for seed in 30..33 {
        let id = rig.submit(seed, 1);
        for (job, n, node) in rig.offers() {
            rig.accept(job, n);
            rig.deliver(node, job, n, true);
        }
        rig.settle();
        ids.push(id);
    }
    let cut = rig.records();
    assert_eq!(cut.len(), 1, "three credits fill a batch");
    let stored =
        |rig: &Rig, id: JobId| rig.engine.store.job(&id).expect("read").expect("row").state;
    for id in &ids {
        assert!(matches!(rig.job(*id).state, JobState::Recording { .. }));
    }
    // The two verified in earlier bursts are not written again for the cut; the third was
    // verified in the cut's own burst, so its row says recording already.
    assert_eq!(stored(&rig, ids[0]), JobState::Verified, "not written yet");
    assert_eq!(stored(&rig, ids[1]), JobState::Verified, "not written yet");
    assert!(matches!(stored(&rig, ids[2]), JobState::Recording { .. }));
    let before = rig.engine.status().jobs;
    // A crash now: the batch row says which jobs are recording.
    let mut rig = rig.restart();
    assert_eq!(
        rig.engine.status().jobs,
        before,
        "per-state counts as before"
    );
    for id in &ids {
        assert_eq!(rig.job(*id).state, JobState::Recording { batch: cut[0].id });
    }
    assert_eq!(
        rig.engine.batch_in_flight.as_ref().map(|b| b.id),
        Some(cut[0].id),
        "the pending batch is sent again"
    );
    rig.landed(cut[0].id);
    for id in &ids {
        assert_eq!(rig.job(*id).state.name(), "recorded");
        assert_eq!(stored(&rig, *id).name(), "recorded");
    }
}
