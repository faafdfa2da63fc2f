//! The dispatcher's Prometheus metrics (prefix `pocmesh_dispatcher_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::warn;

/// One label: what happened.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    /// The outcome (`accepted`, `declined`, `ok`, …).
    pub event: String,
}

/// One label: a part of the dispatcher's store.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartLabel {
    /// The part (`jobs`, `job_index`, `outbox`, …).
    pub part: &'static str,
}

/// Counters and gauges of one dispatcher.
#[derive(Debug)]
pub struct DispatcherMetrics {
    registry: Registry,
    /// Jobs accepted by the API.
    pub jobs_created: Counter,
    /// Offers by outcome.
    pub offers: Family<EventLabel, Counter>,
    /// Results received by outcome (`submitted`, `failed`, `rejected`, `late`, `unknown`).
    pub results: Family<EventLabel, Counter>,
    /// Jobs verified.
    pub jobs_verified: Counter,
    /// Jobs failed for good.
    pub jobs_failed: Counter,
    /// Jobs rejected for good.
    pub jobs_rejected: Counter,
    /// Leases that ran out.
    pub lease_timeouts: Counter,
    /// Re-executions by outcome (`match`, `mismatch`, `unavailable`).
    pub reexecutions: Family<EventLabel, Counter>,
    /// Batches recorded on chain.
    pub batches_recorded: Counter,
    /// Units recorded on chain.
    pub units_recorded: Counter,
    /// Failed tries to record a batch (RPC down, revert).
    pub chain_errors: Counter,
    /// Credits waiting in the outbox.
    pub outbox: Gauge,
    /// Nodes online.
    pub nodes_online: Gauge,
    /// Heartbeats received and verified.
    pub heartbeats: Counter,
    /// Receipts delivered to nodes.
    pub receipts_sent: Counter,
    /// Results proven wrong (by the units rule, their own hash, or a re-execution).
    pub results_wrong: Counter,
    /// Nodes excluded.
    pub nodes_excluded: Counter,
    /// Credits taken back from the outbox because their node was proven wrong elsewhere.
    pub credits_reopened: Counter,
    /// Credits quarantined (they can never be recorded).
    pub credits_quarantined: Counter,
    /// Re-executions waiting for a worker.
    pub audit_queue: Gauge,
    /// API requests refused by a rate limit (`client_rate_limited`, `token_rate_limited`).
    pub api_refused: Family<EventLabel, Counter>,
    /// What the mesh refused since start (`connection`: over a connection bound; `frame`: a
    /// job-protocol frame over the size cap, malformed or timed out), copied every second.
    pub mesh_refused: Family<EventLabel, Gauge>,
    /// Inputs dropped because the engine's lane for them was full (`heartbeat`).
    pub inputs_dropped: Family<EventLabel, Counter>,
    /// Job-protocol messages sent (`job_offer`, `job_offers`) and received (`job_result`,
    /// `job_results`), by kind: with `offers` and `results`, how well they are batched.
    pub job_messages: Family<EventLabel, Counter>,
    /// Durable commits of the engine's state (one per burst of inputs that changed anything).
    pub store_commits: Counter,
    /// Rows written or removed by those commits, by the part of the store (`jobs`,
    /// `job_index`, `outbox`, …).
    pub store_writes: Family<PartLabel, Counter>,
    /// How long a commit took, write and flush, in seconds.
    pub store_commit_seconds: Histogram,
}

impl DispatcherMetrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pocmesh_dispatcher");
        let m = DispatcherMetrics {
            registry: Registry::default(),
            jobs_created: Counter::default(),
            offers: Family::default(),
            results: Family::default(),
            jobs_verified: Counter::default(),
            jobs_failed: Counter::default(),
            jobs_rejected: Counter::default(),
            lease_timeouts: Counter::default(),
            reexecutions: Family::default(),
            batches_recorded: Counter::default(),
            units_recorded: Counter::default(),
            chain_errors: Counter::default(),
            outbox: Gauge::default(),
            nodes_online: Gauge::default(),
            heartbeats: Counter::default(),
            receipts_sent: Counter::default(),
            results_wrong: Counter::default(),
            nodes_excluded: Counter::default(),
            credits_reopened: Counter::default(),
            credits_quarantined: Counter::default(),
            audit_queue: Gauge::default(),
            api_refused: Family::default(),
            mesh_refused: Family::default(),
            inputs_dropped: Family::default(),
            job_messages: Family::default(),
            store_commits: Counter::default(),
            store_writes: Family::default(),
            // 0.25 ms to ~4 s.
            store_commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
        };
        registry.register(
            "store_commits",
            "Durable commits of the engine's state (one per burst of inputs that changed anything)",
            m.store_commits.clone(),
        );
        registry.register(
            "store_writes",
            "Rows written or removed by the engine's commits, by part of the store",
            m.store_writes.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "How long one commit of the engine's state took (write and flush)",
            m.store_commit_seconds.clone(),
        );
        registry.register(
            "job_messages",
            "Job-protocol messages sent (offers) and received (results), by kind",
            m.job_messages.clone(),
        );
        registry.register(
            "inputs_dropped",
            "Inputs dropped because the engine's lane for them was full",
            m.inputs_dropped.clone(),
        );
        registry.register(
            "mesh_refused",
            "Inbound connections and job frames the mesh refused since start",
            m.mesh_refused.clone(),
        );
        registry.register(
            "jobs_created",
            "Jobs accepted by the API",
            m.jobs_created.clone(),
        );
        registry.register("offers", "Job offers by outcome", m.offers.clone());
        registry.register("results", "Results received by outcome", m.results.clone());
        registry.register("jobs_verified", "Jobs verified", m.jobs_verified.clone());
        registry.register("jobs_failed", "Jobs failed for good", m.jobs_failed.clone());
        registry.register(
            "jobs_rejected",
            "Jobs rejected for good",
            m.jobs_rejected.clone(),
        );
        registry.register(
            "lease_timeouts",
            "Leases that ran out",
            m.lease_timeouts.clone(),
        );
        registry.register(
            "reexecutions",
            "Spot-check re-executions by outcome",
            m.reexecutions.clone(),
        );
        registry.register(
            "batches_recorded",
            "Batches recorded on chain",
            m.batches_recorded.clone(),
        );
        registry.register(
            "units_recorded",
            "Units recorded on chain",
            m.units_recorded.clone(),
        );
        registry.register(
            "chain_errors",
            "Failed tries to record a batch",
            m.chain_errors.clone(),
        );
        registry.register("outbox", "Credits waiting for a batch", m.outbox.clone());
        registry.register("nodes_online", "Nodes online", m.nodes_online.clone());
        registry.register(
            "heartbeats",
            "Heartbeats received and verified",
            m.heartbeats.clone(),
        );
        registry.register(
            "receipts_sent",
            "Receipts delivered to nodes",
            m.receipts_sent.clone(),
        );
        registry.register(
            "results_wrong",
            "Results proven wrong (units rule, own hash, or re-execution)",
            m.results_wrong.clone(),
        );
        registry.register(
            "nodes_excluded",
            "Nodes excluded for results proven wrong",
            m.nodes_excluded.clone(),
        );
        registry.register(
            "credits_reopened",
            "Credits taken back for re-verification after their node was proven wrong",
            m.credits_reopened.clone(),
        );
        registry.register(
            "credits_quarantined",
            "Credits set aside because they can never be recorded",
            m.credits_quarantined.clone(),
        );
        registry.register(
            "audit_queue",
            "Re-executions waiting for a worker",
            m.audit_queue.clone(),
        );
        registry.register(
            "api_refused",
            "API requests refused by a rate limit",
            m.api_refused.clone(),
        );
        DispatcherMetrics { registry, ..m }
    }

    /// Copies the mesh's refusal counters into [`Self::mesh_refused`].
    pub fn set_mesh(&self, c: pocmesh_mesh::CounterSnapshot) {
        for (event, v) in [
            ("connection", c.connections_refused),
            ("frame", c.frames_refused),
        ] {
            self.mesh_refused
                .get_or_create(&EventLabel {
                    event: event.to_string(),
                })
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Counts an event in a labelled family.
    pub fn count(family: &Family<EventLabel, Counter>, event: &str) {
        family
            .get_or_create(&EventLabel {
                event: event.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            warn!(error = %e, "encoding metrics");
        }
        out
    }
}

impl Default for DispatcherMetrics {
    fn default() -> Self {
        Self::new()
    }
}
