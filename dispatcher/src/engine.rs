//! The engine: the one task that owns the dispatcher's state (registry, open jobs, outbox,
//! batches). Everything else — the API, the network, the recorder — sends it [`Input`]s and
//! waits for answers. It handles a burst of inputs, commits their changes to the store in one
//! flushed transaction, and only then answers (acknowledgements never run ahead of the disk)
//! and sends the offers and receipts the burst produced.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use pocmesh_protocol::{
    Address, BatchId, Hash32, Heartbeat, JobId, JobReply, JobResult, JobSpec, OptOut, keccak256,
    max_units,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::allowlist::{AllowList, CsvKind, ImportSummary};
use crate::clock::Clock;
use crate::community::{CrawlSlots, ImportError};
use crate::config::DispatcherConfig;
use crate::lifecycle::{Credit, Job, JobState, STATE_NAMES};
use crate::metrics::DispatcherMetrics;
use crate::policy::{AuditKey, IndependenceRule, Origin};
use crate::registry::{NodeRegistry, NodeView, RegistryChange};
use crate::scheduler::SchedulerPolicy;
use crate::store::{BatchRow, BatchStatus, Changes, Counters, DispatcherStore, StoreError};
use crate::verify::AuditOutcome;

/// Inputs queued to the engine.
pub(crate) const INPUT_CAPACITY: usize = 8192;

/// Which queue an input waits in: results and answers, heartbeats, submissions, reads. Each
/// lane is bounded on its own and the engine takes from them in turn, so a flood of one kind
/// (heartbeats from thousands of nodes, a burst of submissions, a dashboard polling) never
/// holds the others back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Results, offer answers, audits, batch outcomes: work already in flight.
    Work,
    /// Heartbeats, opt-outs, peer origins: what the mesh says about nodes.
    Nodes,
    /// Job submissions and allow-list imports.
    Submissions,
    /// Reads for the API.
    Reads,
}

impl Input {
    /// The lane this input waits in.
    pub(crate) fn lane(&self) -> Lane {
        match self {
            Input::Heartbeat { .. } | Input::OptOut { .. } | Input::PeerOrigin { .. } => {
                Lane::Nodes
            }
            Input::Submit { .. } | Input::AllowlistImport { .. } => Lane::Submissions,
            Input::GetJob { .. } | Input::Nodes { .. } | Input::Status { .. } => Lane::Reads,
            Input::OffersAnswered { .. }
            | Input::Results { .. }
            | Input::Audited { .. }
            | Input::BatchRefused { .. }
            | Input::BatchLanded { .. } => Lane::Work,
        }
    }
}

/// The sending side of the engine's lanes (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Lanes {
    work: mpsc::Sender<Input>,
    nodes: mpsc::Sender<Input>,
    submissions: mpsc::Sender<Input>,
    reads: mpsc::Sender<Input>,
}

/// The receiving side, owned by the engine's run loop.
pub(crate) struct LaneReceivers {
    work: mpsc::Receiver<Input>,
    nodes: mpsc::Receiver<Input>,
    submissions: mpsc::Receiver<Input>,
    reads: mpsc::Receiver<Input>,
}

#[cfg(test)]
impl LaneReceivers {
    /// The next submission, for tests that stand in for the engine.
    pub(crate) async fn next_submission(&mut self) -> Option<Input> {
        self.submissions.recv().await
    }
}

/// Why an input was not queued (only heartbeats are ever sent with `try_send` and dropped).
#[derive(Debug)]
pub(crate) enum LaneSendError {
    /// The engine has stopped.
    Closed,
    /// The lane is full.
    Full,
}

impl Lanes {
    /// Four lanes of `capacity` each.
    pub(crate) fn new(capacity: usize) -> (Lanes, LaneReceivers) {
        let (work, work_rx) = mpsc::channel(capacity);
        let (nodes, nodes_rx) = mpsc::channel(capacity);
        let (submissions, submissions_rx) = mpsc::channel(capacity);
        let (reads, reads_rx) = mpsc::channel(capacity);
        (
            Lanes {
                work,
                nodes,
                submissions,
                reads,
            },
            LaneReceivers {
                work: work_rx,
                nodes: nodes_rx,
                submissions: submissions_rx,
                reads: reads_rx,
            },
        )
    }

    fn lane(&self, lane: Lane) -> &mpsc::Sender<Input> {
        match lane {
            Lane::Work => &self.work,
            Lane::Nodes => &self.nodes,
            Lane::Submissions => &self.submissions,
            Lane::Reads => &self.reads,
        }
    }

    /// Queues `input` in its lane, waiting for room.
    pub(crate) async fn send(&self, input: Input) -> Result<(), LaneSendError> {
        self.lane(input.lane())
            .send(input)
            .await
            .map_err(|_| LaneSendError::Closed)
    }

    /// Queues `input` in its lane if there is room now.
    pub(crate) fn try_send(&self, input: Input) -> Result<(), LaneSendError> {
        self.lane(input.lane())
            .try_send(input)
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => LaneSendError::Full,
                mpsc::error::TrySendError::Closed(_) => LaneSendError::Closed,
            })
    }
}
/// How long a change a restart recovers without may wait for the job's next write.
pub(crate) const LAZY_WRITE_MS: u64 = 1_000;

/// Inputs handled per commit at most.
const BURST: usize = 2048;
/// How often leases, batches and liveness are checked without other inputs.
const TICK: Duration = Duration::from_millis(250);

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The spec is not runnable; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// The store failed; nothing was accepted.
    #[error("the job store failed: {0}")]
    Store(String),
    /// The dispatcher is stopping.
    #[error("the dispatcher is shutting down")]
    ShuttingDown,
}

/// How a node answered an offer.
#[derive(Debug, Clone)]
pub(crate) enum OfferAnswer {
    /// It took the job.
    Accepted,
    /// It declined.
    Declined(pocmesh_protocol::DeclineReason),
    /// It could not be reached, or answered nonsense.
    Unreachable(String),
}

/// Network status counts for `/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    /// Nodes online now.
    pub nodes_online: usize,
    /// Nodes known.
    pub nodes_total: usize,
    /// Jobs per state.
    pub jobs: BTreeMap<String, u64>,
    /// Jobs submitted in the last 24 hours.
    pub jobs_last_24h: u64,
    /// Units recorded on chain.
    pub units_recorded: u64,
    /// Batches recorded on chain.
    pub batches_recorded: u64,
    /// Credits waiting for a batch.
    pub outbox: usize,
    /// The batch on its way to the chain, if any.
    pub batch_in_flight: Option<BatchId>,
    /// Nodes excluded for results proven wrong (all time).
    #[serde(default)]
    pub nodes_excluded: usize,
    /// Credits set aside because they can never be recorded (all time).
    #[serde(default)]
    pub credits_quarantined: u64,
    /// Units of those credits.
    #[serde(default)]
    pub units_quarantined: u64,
    /// Re-executions queued or running here.
    #[serde(default)]
    pub audits_running: usize,
}

/// What the engine is asked to do.
pub(crate) enum Input {
    Submit {
        spec: JobSpec,
        redundancy: Option<u32>,
        reply: oneshot::Sender<Result<JobId, SubmitError>>,
    },
    Heartbeat {
        from: Address,
        heartbeat: Box<Heartbeat>,
    },
    OptOut {
        from: Address,
        opt_out: OptOut,
    },
    /// The answers to one `job_offer` or `job_offers` message, handled in one burst.
    OffersAnswered {
        answers: Vec<(JobId, u32, OfferAnswer)>,
    },
    /// The results of one `job_result` or `job_results` message, handled in one burst (so the
    /// slots they free are offered again together), each answered on its own sender.
    Results {
        from: Address,
        results: Vec<(JobResult, oneshot::Sender<JobReply>)>,
    },
    Audited {
        job: JobId,
        outcome: AuditOutcome,
    },
    PeerOrigin {
        node: Address,
        origin: Origin,
    },
    BatchRefused {
        batch: BatchId,
        provider: Address,
        reason: String,
    },
    AllowlistImport {
        kind: CsvKind,
        text: String,
        reply: oneshot::Sender<Result<ImportSummary, ImportError>>,
    },
    BatchLanded {
        batch: BatchId,
        tx: Hash32,
        block: u64,
        gas_used: Option<u64>,
    },
    GetJob {
        id: JobId,
        reply: oneshot::Sender<Result<Option<Job>, String>>,
    },
    Nodes {
        reply: oneshot::Sender<Vec<NodeView>>,
    },
    Status {
        reply: oneshot::Sender<StatusView>,
    },
}

/// Work the engine decided on, carried out by [`crate::net::EngineIo`] after its commit (the
/// engine itself does no I/O but its store commit).
pub(crate) enum Outgoing {
    /// Offer attempts to one node: one `job_offer` message when there is one, else one
    /// `job_offers` message (only to a node that announces `jobs_batch`; see
    /// [`Engine::group_offers`]).
    Offers {
        peer: String,
        node: Address,
        offers: Vec<pocmesh_protocol::JobOffer>,
    },
    /// Tell a node its credits are on chain: in `receipts` messages of at most `batch` each
    /// when the node announces `receipts_batch`, else one `receipt` message per credit.
    Receipts {
        peer: String,
        receipts: Vec<pocmesh_protocol::Receipt>,
        batch: usize,
    },
    /// Put a batch on chain (until it lands).
    Record(BatchRow),
    /// Re-execute a job here to check its results.
    Audit { job: JobId, spec: JobSpec },
}

/// An answer held back until the changes it reports are on disk.
pub(crate) enum Ack {
    Submit(oneshot::Sender<Result<JobId, SubmitError>>, JobId),
    Result(oneshot::Sender<JobReply>, JobReply),
    Import(
        oneshot::Sender<Result<ImportSummary, ImportError>>,
        ImportSummary,
    ),
}

/// The engine's state. Methods are spread over `engine.rs`, `assign.rs`, `verify.rs` and
/// `batcher.rs` by concern.
pub(crate) struct Engine {
    pub(crate) config: Arc<DispatcherConfig>,
    pub(crate) address: Address,
    pub(crate) store: DispatcherStore,
    pub(crate) registry: NodeRegistry,
    pub(crate) policy: SchedulerPolicy,
    /// Jobs not final yet (open, verified, recording).
    pub(crate) jobs: HashMap<JobId, Job>,
    /// Open jobs that may need more attempts, oldest first.
    pub(crate) runnable: VecDeque<JobId>,
    pub(crate) runnable_set: HashSet<JobId>,
    /// Verified credits waiting for a batch.
    pub(crate) outbox: VecDeque<(u64, Credit)>,
    /// When the oldest outbox credit arrived (in this run).
    pub(crate) outbox_since_ms: Option<u64>,
    pub(crate) batch_in_flight: Option<BatchRow>,
    pub(crate) counters: Counters,
    /// Jobs per state, all time.
    pub(crate) state_counts: HashMap<&'static str, u64>,
    /// Submissions per minute for the last 24 hours (ring of 1440 buckets).
    pub(crate) per_minute: Vec<(u64, u64)>,
    /// Jobs waiting for the dispatcher's own re-execution.
    pub(crate) audits: HashSet<JobId>,
    /// Results per node that wait for a verdict (a node on probation may have only a few).
    pub(crate) unverified: HashMap<Address, u32>,
    /// Domains HTTP checks may touch.
    pub(crate) allowlist: AllowList,
    /// When each domain may next be requested (its crawl delay).
    pub(crate) domain_next_ms: CrawlSlots,
    /// The secret behind audit draws (never logged, never sent).
    pub(crate) audit_key: AuditKey,
    /// When two results count as one operator's.
    pub(crate) independence: IndependenceRule,
    pub(crate) metrics: Arc<DispatcherMetrics>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) clock: Arc<dyn Clock>,
    // Per-burst work, flushed by `commit`.
    pub(crate) dirty: HashSet<JobId>,
    /// What the job index lists each job in memory under on disk, so a commit writes only
    /// what changed without reading; a job missing here has its previous row read.
    pub(crate) indexed_as: HashMap<JobId, crate::job_index::Listed>,
    /// Jobs changed only in ways a restart recovers without (an offer: a restart offers the
    /// job again; an accepted offer: recovery assumes it), with since when: written with their
    /// next change, or after [`LAZY_WRITE_MS`] — so a quick job's offer, acceptance and
    /// result share one write.
    pub(crate) lazy: HashMap<JobId, u64>,
    /// Jobs recovered at start, with the number their new attempts start above: offers of
    /// the job made since its last write were lost with their numbers, and a node that holds
    /// one would refuse the number again.
    pub(crate) attempt_floor: HashMap<JobId, u32>,
    pub(crate) changes: Changes,
    pub(crate) acks: Vec<Ack>,
    pub(crate) outgoing: Vec<Outgoing>,
}

/// Builds the engine from the store.
pub(crate) struct EngineParts {
    pub(crate) config: Arc<DispatcherConfig>,
    pub(crate) address: Address,
    pub(crate) store: DispatcherStore,
    pub(crate) metrics: Arc<DispatcherMetrics>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Engine {
    /// Loads the open work from the store.
    pub(crate) fn load(parts: EngineParts) -> Result<Self, StoreError> {
        let EngineParts {
            config,
            address,
            store,
            metrics,
            shutdown,
            clock,
        } = parts;
        let counters = store.counters()?;
        let audit_key = store.audit_key()?;
        let mut jobs = HashMap::new();
        let mut state_counts: HashMap<&'static str, u64> = HashMap::new();
        let mut per_minute = vec![(0u64, 0u64); 1440];
        let now_minute = clock.now_ms() / 60_000;
        let mut open: Vec<(u64, JobId)> = Vec::new();
        for job in store.jobs() {
            let job = job?;
            *state_counts.entry(job.state.name()).or_default() += 1;
            let minute = job.submitted_ms / 60_000;
            if now_minute.saturating_sub(minute) < 1440 {
                let slot = &mut per_minute[(minute % 1440) as usize];
                if slot.0 != minute {
                    *slot = (minute, 0);
                }
                slot.1 += 1;
            }
            if !job.state.is_final() {
                if job.state.is_open() {
                    open.push((job.submitted_ms, job.id));
                }
                jobs.insert(job.id, job);
            }
        }
        open.sort();
        let outbox: VecDeque<(u64, Credit)> = store.outbox()?.into();
        let batch_in_flight = store
            .batches()?
            .into_iter()
            .find(|b| b.status == BatchStatus::Pending);
        info!(
            open = open.len(),
            outbox = outbox.len(),
            pending_batch = batch_in_flight.is_some(),
            "dispatcher state loaded"
        );
        let independence = IndependenceRule {
            distinct_origins: config.verify.distinct_origins,
            loopback_quorum: config.verify.loopback_quorum,
        };
        // Nodes must have accepted the consent text this dispatcher announces.
        let mut policy = SchedulerPolicy::from_registry(
            &config.registry,
            Some(pocmesh_protocol::consent::consent_hash()),
            independence,
        );
        policy.probation_outstanding = config.verify.probation_outstanding;
        let mut registry = NodeRegistry::with_policy(
            config.registry.clone(),
            config.verify.clone(),
            config.contract.into_iter().collect(),
        );
        let standings = store.standings()?;
        let flagged = store.flagged_wallets()?;
        info!(
            standings = standings.len(),
            flagged_wallets = flagged.len(),
            "node standings loaded"
        );
        registry.load(standings, flagged);
        let mut engine = Engine {
            registry,
            policy,
            audit_key,
            independence,
            runnable: VecDeque::new(),
            runnable_set: HashSet::new(),
            outbox_since_ms: if outbox.is_empty() {
                None
            } else {
                Some(clock.now_ms())
            },
            outbox,
            batch_in_flight,
            counters,
            state_counts,
            per_minute,
            audits: HashSet::new(),
            unverified: HashMap::new(),
            allowlist: AllowList::default(),
            domain_next_ms: CrawlSlots::new(),
            dirty: HashSet::new(),
            indexed_as: HashMap::new(),
            lazy: HashMap::new(),
            attempt_floor: HashMap::new(),
            changes: Changes::default(),
            acks: Vec::new(),
            outgoing: Vec::new(),
            jobs,
            config,
            address,
            store,
            metrics,
            shutdown,
            clock,
        };
        engine.load_allowlist();
        let claims: Vec<(JobId, Address)> = engine
            .jobs
            .values()
            .flat_map(|j| j.attempts.iter().map(move |a| (j.id, a)))
            .filter(|(_, a)| a.state == crate::lifecycle::AttemptState::Submitted)
            .map(|(id, a)| (id, a.node))
            .collect();
        for (id, node) in claims {
            engine.claim_opened(id, node);
        }
        // Loaded rows are what the index lists them under (both are written together); the
        // states that are not final are listed in memory, from these rows.
        engine.store.list_loaded(engine.jobs.values());
        engine.indexed_as = engine
            .jobs
            .values()
            .map(|j| (j.id, crate::job_index::Listed::of(j)))
            .collect();
        // A batch cut writes its jobs' `recording` state lazily: the pending batch row is what
        // says they are recording.
        if let Some(batch) = engine.batch_in_flight.clone() {
            for credit in &batch.credits {
                let Some(job) = engine.jobs.get_mut(&credit.job) else {
                    continue;
                };
                if job.state == JobState::Verified
                    && job
                        .state
                        .advance(JobState::Recording { batch: batch.id })
                        .is_ok()
                {
                    if let Some(c) = engine.state_counts.get_mut("verified") {
                        *c = c.saturating_sub(1);
                    }
                    *engine.state_counts.entry("recording").or_default() += 1;
                }
            }
        }
        for (_, id) in open {
            engine.recover_open_job(id);
            // Results that arrived before the stop may be waiting for a verdict (or for a
            // re-execution that died with the process): decide them again.
            engine.evaluate(id);
        }
        engine.metrics.outbox.set(engine.outbox.len() as i64);
        Ok(engine)
    }

    /// Runs until shutdown.
    pub(crate) async fn run(mut self, mut lanes: LaneReceivers, io: crate::net::EngineIo) {
        if let Some(batch) = self.batch_in_flight.clone() {
            self.outgoing.push(Outgoing::Record(batch));
        }
        io.flush(self.outgoing.drain(..));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Whichever lane has something; then a burst taken from the lanes in turn.
            // (Every sender lives in one `Lanes`, so one lane closing means all have.)
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tick.tick() => self.on_tick(),
                i = lanes.work.recv() => match i {
                    Some(i) => self.handle(i),
                    None => break,
                },
                i = lanes.nodes.recv() => match i {
                    Some(i) => self.handle(i),
                    None => break,
                },
                i = lanes.submissions.recv() => match i {
                    Some(i) => self.handle(i),
                    None => break,
                },
                i = lanes.reads.recv() => match i {
                    Some(i) => self.handle(i),
                    None => break,
                },
            }
            let mut n = 1;
            'burst: while n < BURST {
                let mut took = false;
                for rx in [
                    &mut lanes.work,
                    &mut lanes.nodes,
                    &mut lanes.submissions,
                    &mut lanes.reads,
                ] {
                    if let Ok(i) = rx.try_recv() {
                        self.handle(i);
                        took = true;
                        n += 1;
                        if n >= BURST {
                            break 'burst;
                        }
                    }
                }
                if !took {
                    break;
                }
            }
            match self.finish_burst() {
                Ok(work) => io.flush(work.into_iter()),
                Err(e) => {
                    // Nothing of this burst was acknowledged; stop rather than run ahead of the disk.
                    warn!(error = %e, "cannot write the job store; stopping the dispatcher");
                    self.shutdown.cancel();
                    break;
                }
            }
        }
        info!("engine stopped");
    }

    pub(crate) fn handle(&mut self, input: Input) {
        match input {
            Input::Submit {
                spec,
                redundancy,
                reply,
            } => self.submit(spec, redundancy, reply),
            Input::Heartbeat { from, heartbeat } => {
                self.metrics.heartbeats.inc();
                match self.registry.on_heartbeat(from, &heartbeat, self.now()) {
                    RegistryChange::Registered | RegistryChange::Rejoined => {
                        info!(node = %from, wallet = %heartbeat.wallet, slots = heartbeat.caps.slots_total, "node joined");
                    }
                    RegistryChange::RefusedWallet => {
                        warn!(node = %from, wallet = %heartbeat.wallet, "heartbeat names a wallet that can never be credited; node ignored");
                    }
                    _ => {}
                }
            }
            Input::PeerOrigin { node, origin } => self.registry.on_origin(node, origin),
            Input::OptOut { from, opt_out } => {
                if self.registry.on_opt_out(from, &opt_out, self.now()) == RegistryChange::OptedOut
                {
                    info!(node = %from, "node opted out; it gets no new work and its jobs go elsewhere");
                    self.hand_back(from);
                }
            }
            Input::AllowlistImport { kind, text, reply } => {
                self.import_allowlist(kind, &text, reply);
            }
            Input::OffersAnswered { answers } => {
                for (job, attempt, answer) in answers {
                    self.on_offer_answered(job, attempt, answer);
                }
            }
            Input::Results { from, results } => {
                for (result, reply) in results {
                    self.on_result(from, result, reply);
                }
            }
            Input::Audited { job, outcome } => self.on_audited(job, outcome),
            Input::BatchRefused {
                batch,
                provider,
                reason,
            } => self.on_batch_refused(batch, provider, reason),
            Input::BatchLanded {
                batch,
                tx,
                block,
                gas_used,
            } => self.on_batch_landed(batch, tx, block, gas_used),
            Input::GetJob { id, reply } => {
                let found = match self.jobs.get(&id) {
                    Some(j) => Ok(Some(j.clone())),
                    None => self.store.job(&id).map_err(|e| e.to_string()),
                };
                let _ = reply.send(found);
            }
            Input::Nodes { reply } => {
                let mut nodes = self.registry.snapshot(self.now());
                for n in &mut nodes {
                    n.policy_current = self.policy.required_policy.is_none_or(|p| p == n.policy);
                    n.unverified = self.unverified.get(&n.address).copied().unwrap_or(0);
                }
                let _ = reply.send(nodes);
            }
            Input::Status { reply } => {
                let _ = reply.send(self.status());
            }
        }
    }

    pub(crate) fn on_tick(&mut self) {
        let now = self.now();
        self.metrics
            .nodes_online
            .set(self.registry.online_count(now) as i64);
        self.expire_leases(now);
        let due: Vec<JobId> = self
            .lazy
            .iter()
            .filter(|(_, since)| now.saturating_sub(**since) >= LAZY_WRITE_MS)
            .map(|(id, _)| *id)
            .collect();
        self.dirty.extend(due);
        // Forget nodes silent for a day; the map is fed by the network.
        self.registry.prune(now, 24 * 3600 * 1000);
    }

    /// Marks a job changed in this burst.
    pub(crate) fn touch(&mut self, id: JobId) {
        let now = self.now();
        if let Some(job) = self.jobs.get_mut(&id) {
            job.updated_ms = now;
        }
        self.dirty.insert(id);
    }

    /// Marks a job changed in a way a restart recovers without: written with its next change,
    /// or within [`LAZY_WRITE_MS`].
    pub(crate) fn touch_later(&mut self, id: JobId) {
        let now = self.now();
        if let Some(job) = self.jobs.get_mut(&id) {
            job.updated_ms = now;
        }
        self.lazy.entry(id).or_insert(now);
    }

    /// Moves a job to `next`, keeping the per-state counts right.
    pub(crate) fn set_state(&mut self, id: JobId, next: JobState) {
        self.set_state_as(id, next, false);
    }

    /// [`Engine::set_state`] for a change a restart recovers without (see [`Engine::lazy`]).
    pub(crate) fn set_state_later(&mut self, id: JobId, next: JobState) {
        self.set_state_as(id, next, true);
    }

    fn set_state_as(&mut self, id: JobId, next: JobState, later: bool) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let before = job.state.name();
        match job.state.advance(next) {
            Ok(()) => {
                let after = job.state.name();
                if before != after {
                    if let Some(c) = self.state_counts.get_mut(before) {
                        *c = c.saturating_sub(1);
                    }
                    *self.state_counts.entry(after).or_default() += 1;
                }
                if later {
                    self.touch_later(id);
                } else {
                    self.touch(id);
                }
            }
            Err(e) => warn!(job = %id, error = %e, "illegal job transition refused"),
        }
    }

    /// Whether a result of job `id` waiting for a verdict counts against its node's probation
    /// limit: those that wait for the dispatcher's own run do. (A result waiting for a second
    /// node does not: two new nodes checking each other must not block each other.)
    fn counts_on_probation(&self, id: &JobId) -> bool {
        self.jobs
            .get(id)
            .is_some_and(|j| pocmesh_protocol::http_check::reexecutable(j.spec.params.job_type()))
    }

    /// One more result of `node` (for job `id`) waits for a verdict.
    pub(crate) fn claim_opened(&mut self, id: JobId, node: Address) {
        if self.counts_on_probation(&id) {
            *self.unverified.entry(node).or_default() += 1;
        }
    }

    /// One result of `node` (for job `id`) got its verdict.
    pub(crate) fn claim_settled(&mut self, id: JobId, node: Address) {
        if !self.counts_on_probation(&id) {
            return;
        }
        if let Some(n) = self.unverified.get_mut(&node) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.unverified.remove(&node);
            }
        }
    }

    /// Queues a job for (more) attempts.
    pub(crate) fn make_runnable(&mut self, id: JobId) {
        if self.runnable_set.insert(id) {
            self.runnable.push_back(id);
        }
    }

    fn submit(
        &mut self,
        spec: JobSpec,
        redundancy: Option<u32>,
        reply: oneshot::Sender<Result<JobId, SubmitError>>,
    ) {
        if self.shutdown.is_cancelled() {
            let _ = reply.send(Err(SubmitError::ShuttingDown));
            return;
        }
        if let Err(e) = self.check_spec(&spec, redundancy) {
            let _ = reply.send(Err(SubmitError::Invalid(e)));
            return;
        }
        let now = self.now();
        self.counters.job_seq += 1;
        let mut seed = Vec::with_capacity(64);
        seed.extend_from_slice(b"pocmesh/job/1");
        seed.extend_from_slice(self.address.as_bytes());
        seed.extend_from_slice(&self.counters.job_seq.to_be_bytes());
        seed.extend_from_slice(&now.to_be_bytes());
        let id = JobId::from(keccak256(&seed));
        let k = crate::scheduler::redundancy_for(redundancy, spec.params.job_type())
            .min(self.config.jobs.max_redundancy);
        let job = Job::queued(id, spec, k, now);
        self.jobs.insert(id, job);
        self.indexed_as
            .insert(id, crate::job_index::Listed::default());
        *self.state_counts.entry("queued").or_default() += 1;
        let minute = now / 60_000;
        let slot = &mut self.per_minute[(minute % 1440) as usize];
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        slot.1 += 1;
        self.changes.counters = Some(self.counters);
        self.touch(id);
        self.make_runnable(id);
        self.metrics.jobs_created.inc();
        self.acks.push(Ack::Submit(reply, id));
    }

    fn check_spec(&self, spec: &JobSpec, redundancy: Option<u32>) -> Result<(), String> {
        let l = &spec.limits;
        if l.max_ms == 0 || l.max_mem_mb == 0 || l.max_output_bytes == 0 {
            return Err("limits.max_ms, max_mem_mb and max_output_bytes must be above 0".into());
        }
        if let Some(k) = redundancy
            && (k == 0 || k > self.config.jobs.max_redundancy)
        {
            return Err(format!(
                "redundancy must be between 1 and {}",
                self.config.jobs.max_redundancy
            ));
        }
        match &spec.params {
            pocmesh_protocol::JobParams::Hash { iterations, .. } => {
                if *iterations == 0 {
                    return Err("hash: iterations must be above 0".into());
                }
                if let Some(f) = l.max_fuel
                    && *iterations > f
                {
                    return Err(format!("hash: {iterations} iterations exceed max_fuel {f}"));
                }
            }
            pocmesh_protocol::JobParams::Wasm { module, .. } => {
                if module.0.is_empty() {
                    return Err("wasm: the module is empty".into());
                }
                if max_units(spec) == 0 {
                    return Err(
                        "wasm: limits.max_fuel is required; a wasm job's units are bounded by its fuel limit"
                            .into(),
                    );
                }
            }
            pocmesh_protocol::JobParams::LinkHealth { .. }
            | pocmesh_protocol::JobParams::RobotsRecheck { .. } => {
                crate::community::check_http_spec(spec, &self.allowlist)?;
            }
        }
        Ok(())
    }

    pub(crate) fn status(&self) -> StatusView {
        let now = self.now();
        let minute = now / 60_000;
        let jobs_last_24h = self
            .per_minute
            .iter()
            .filter(|(m, _)| minute.saturating_sub(*m) < 1440)
            .map(|(_, n)| n)
            .sum();
        let mut jobs = BTreeMap::new();
        for name in STATE_NAMES {
            jobs.insert(
                name.to_string(),
                self.state_counts.get(name).copied().unwrap_or(0),
            );
        }
        StatusView {
            nodes_online: self.registry.online_count(now),
            nodes_total: self.registry.len(),
            jobs,
            jobs_last_24h,
            units_recorded: self.counters.units_recorded,
            batches_recorded: self.counters.batches_recorded,
            outbox: self.outbox.len(),
            batch_in_flight: self.batch_in_flight.as_ref().map(|b| b.id),
            nodes_excluded: self.registry.excluded_count(),
            credits_quarantined: self.counters.credits_quarantined,
            units_quarantined: self.counters.units_quarantined,
            audits_running: self.audits.len(),
        }
    }

    /// Writes this burst's changes, then releases its answers and messages.
    fn commit(&mut self) -> Result<(), StoreError> {
        let mut changes = std::mem::take(&mut self.changes);
        let dirty = self.registry.take_dirty();
        changes.standings = dirty.nodes;
        changes.wallets = dirty.wallets;
        let ids: Vec<JobId> = self.dirty.drain().collect();
        for id in &ids {
            self.lazy.remove(id);
            if let Some(known) = self.indexed_as.get(id) {
                changes.indexed_as.insert(*id, *known);
            }
        }
        // The rows are written from memory as they are (no copy per burst).
        let jobs: Vec<&Job> = ids.iter().filter_map(|id| self.jobs.get(id)).collect();
        let started = std::time::Instant::now();
        let result = self.store.commit_with(&changes, &jobs);
        if let Ok(written) = &result
            && !written.is_empty()
        {
            self.metrics.store_commits.inc();
            for (part, rows) in written.by_part() {
                self.metrics
                    .store_writes
                    .get_or_create(&crate::metrics::PartLabel { part })
                    .inc_by(rows as u64);
            }
            self.metrics
                .store_commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        let mut finals = Vec::new();
        let mut listed = Vec::with_capacity(jobs.len());
        for job in jobs {
            if job.state.is_final() {
                finals.push(job.id);
            } else {
                listed.push((job.id, crate::job_index::Listed::of(job)));
            }
        }
        if result.is_ok() {
            for id in &finals {
                self.indexed_as.remove(id);
                self.attempt_floor.remove(id);
            }
            self.indexed_as.extend(listed);
        } else {
            // What is on disk is unknown now: read it next time.
            self.indexed_as.clear();
        }
        // Final jobs leave memory once written.
        for id in finals {
            self.jobs.remove(&id);
        }
        if let Err(e) = result {
            for ack in self.acks.drain(..) {
                match ack {
                    Ack::Submit(reply, _) => {
                        let _ = reply.send(Err(SubmitError::Store(e.to_string())));
                    }
                    Ack::Import(reply, _) => {
                        let _ = reply.send(Err(ImportError::Store(e.to_string())));
                    }
                    Ack::Result(..) => {}
                }
            }
            self.outgoing.clear();
            return Err(e);
        }
        for ack in self.acks.drain(..) {
            match ack {
                Ack::Submit(reply, id) => {
                    let _ = reply.send(Ok(id));
                }
                Ack::Result(reply, answer) => {
                    let _ = reply.send(answer);
                }
                Ack::Import(reply, summary) => {
                    let _ = reply.send(Ok(summary));
                }
            }
        }
        Ok(())
    }

    /// Ends a burst of inputs: offers what can be offered, cuts a batch when one is due, writes
    /// every change, then releases the held answers. Returns the work for the I/O layers;
    /// nothing of it exists before the changes are on disk.
    pub(crate) fn finish_burst(&mut self) -> Result<Vec<Outgoing>, StoreError> {
        self.schedule();
        self.maybe_batch();
        self.commit()?;
        let outgoing = std::mem::take(&mut self.outgoing);
        Ok(self.group_offers(outgoing))
    }

    /// Merges this burst's offers to each node that announces `jobs_batch` into messages of at
    /// most that many offers (and [`MAX_BATCH_ITEMS`](pocmesh_protocol::MAX_BATCH_ITEMS), and
    /// about [`BATCH_PAYLOAD_BYTES`](pocmesh_protocol::BATCH_PAYLOAD_BYTES) of parameters):
    /// one signature, one stream and one durable write on the node for all of them.
    fn group_offers(&self, outgoing: Vec<Outgoing>) -> Vec<Outgoing> {
        let mut out = Vec::with_capacity(outgoing.len());
        // Per node: the index in `out` of its message being filled, and its parameter bytes.
        let mut open: HashMap<Address, (usize, usize)> = HashMap::new();
        for o in outgoing {
            let Outgoing::Offers { peer, node, offers } = o else {
                out.push(o);
                continue;
            };
            let max = self
                .registry
                .get(&node)
                .map_or(0, |e| e.caps.jobs_batch as usize)
                .min(pocmesh_protocol::MAX_BATCH_ITEMS);
            for offer in offers {
                let size = offer.spec.payload_bytes();
                if let Some((i, bytes)) = open.get_mut(&node)
                    && let Some(Outgoing::Offers { offers, .. }) = out.get_mut(*i)
                    && offers.len() < max
                    && *bytes + size <= pocmesh_protocol::BATCH_PAYLOAD_BYTES
                {
                    *bytes += size;
                    offers.push(offer);
                    continue;
                }
                if max > 1 {
                    open.insert(node, (out.len(), size));
                }
                out.push(Outgoing::Offers {
                    peer: peer.clone(),
                    node,
                    offers: vec![offer],
                });
            }
        }
        out
    }

    /// Now, by the engine's clock.
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }
}
