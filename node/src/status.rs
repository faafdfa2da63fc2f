//! The operator's view: Prometheus metrics and the local `/status` + `/metrics` endpoint
//! (127.0.0.1 by default). `pocmesh node status` reads `/status`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pocmesh_protocol::{Address, JobType};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::store::{JobState, NodeStore};

/// One label: why or how something happened.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `accepted`, a decline reason, `ok`, `failed`, …
    pub outcome: String,
}

/// The node's Prometheus metrics (prefix `pocmesh_node_`).
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    /// Heartbeats published.
    pub heartbeats_sent: Counter,
    /// Heartbeats of other nodes received and verified.
    pub heartbeats_received: Counter,
    /// Gossip messages rejected as invalid.
    pub gossip_rejected: Counter,
    /// Offers by outcome (`accepted` or the decline reason).
    pub offers: Family<OutcomeLabel, Counter>,
    /// Finished attempts by status.
    pub jobs_finished: Family<OutcomeLabel, Counter>,
    /// Jobs running now.
    pub jobs_running: Gauge,
    /// Results acknowledged by their dispatcher.
    pub results_delivered: Counter,
    /// Result deliveries that failed and will be retried.
    pub delivery_retries: Counter,
    /// Receipts received.
    pub receipts: Counter,
    /// Units credited on chain, from receipts.
    pub units_earned: Gauge,
    /// Connected peers.
    pub peers: Gauge,
}

impl NodeMetrics {
    /// Fresh metrics registered under `pocmesh_node_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pocmesh_node");
        let m = NodeMetrics {
            heartbeats_sent: Counter::default(),
            heartbeats_received: Counter::default(),
            gossip_rejected: Counter::default(),
            offers: Family::default(),
            jobs_finished: Family::default(),
            jobs_running: Gauge::default(),
            results_delivered: Counter::default(),
            delivery_retries: Counter::default(),
            receipts: Counter::default(),
            units_earned: Gauge::default(),
            peers: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "heartbeats_sent",
            "Heartbeats published",
            m.heartbeats_sent.clone(),
        );
        registry.register(
            "heartbeats_received",
            "Heartbeats of other nodes received and verified",
            m.heartbeats_received.clone(),
        );
        registry.register(
            "gossip_rejected",
            "Gossip messages rejected as invalid",
            m.gossip_rejected.clone(),
        );
        registry.register("offers", "Job offers by outcome", m.offers.clone());
        registry.register(
            "jobs_finished",
            "Finished job attempts by status",
            m.jobs_finished.clone(),
        );
        registry.register("jobs_running", "Jobs running now", m.jobs_running.clone());
        registry.register(
            "results_delivered",
            "Results acknowledged by their dispatcher",
            m.results_delivered.clone(),
        );
        registry.register(
            "delivery_retries",
            "Result deliveries that failed and will be retried",
            m.delivery_retries.clone(),
        );
        registry.register("receipts", "Receipts received", m.receipts.clone());
        registry.register(
            "units_earned",
            "Units credited on chain",
            m.units_earned.clone(),
        );
        registry.register("peers", "Connected peers", m.peers.clone());
        NodeMetrics { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            warn!(error = %e, "encoding metrics");
        }
        out
    }

    /// Counts an outcome in a labelled family.
    pub fn count(family: &Family<OutcomeLabel, Counter>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Facts about the node fixed at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's address (its key).
    pub address: Address,
    /// The wallet credited.
    pub wallet: Address,
    /// libp2p PeerId.
    pub peer_id: String,
    /// Network name.
    pub net: String,
    /// Software version.
    pub version: String,
    /// Job types enabled.
    pub job_types: Vec<JobType>,
    /// Job slots.
    pub slots: u32,
}

/// `/status` as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Who this node is.
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Connected peers.
    pub peers: u64,
    /// Addresses the node listens on.
    pub listen: Vec<String>,
    /// Heartbeat counts.
    pub heartbeats: HeartbeatCounts,
    /// Job counts.
    pub jobs: JobCounts,
    /// Units credited on chain (from receipts).
    pub units_earned: u64,
    /// Receipts received.
    pub receipts: u64,
}

/// Heartbeat counts in `/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatCounts {
    /// Published since start.
    pub sent: u64,
    /// Received from others since start.
    pub received: u64,
    /// The last sequence number used (persisted).
    pub last_seq: u64,
}

/// Job counts in `/status` (all time, from the store).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobCounts {
    /// Running now.
    pub running: u64,
    /// Finished with a result.
    pub done: u64,
    /// Failed.
    pub failed: u64,
    /// Finished, result not yet acknowledged.
    pub awaiting_ack: u64,
}

/// What the status endpoint reads.
#[derive(Debug)]
pub struct StatusSource {
    /// Fixed facts.
    pub info: NodeInfo,
    /// Live metrics.
    pub metrics: Arc<NodeMetrics>,
    /// The store, for all-time totals.
    pub store: NodeStore,
    /// Listen addresses, updated by the network events.
    pub listen: std::sync::Mutex<Vec<String>>,
    /// Start time.
    pub started: Instant,
}

impl StatusSource {
    /// The current report.
    pub fn report(&self) -> Result<StatusReport, crate::store::StoreError> {
        let totals = self.store.totals()?;
        let awaiting = self.store.pending_results()?.len() as u64;
        let running = self
            .store
            .jobs_in(|s| matches!(s, JobState::Running))?
            .len() as u64;
        Ok(StatusReport {
            info: self.info.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            peers: self.metrics.peers.get().max(0) as u64,
            listen: self.listen.lock().map(|l| l.clone()).unwrap_or_default(),
            heartbeats: HeartbeatCounts {
                sent: self.metrics.heartbeats_sent.get(),
                received: self.metrics.heartbeats_received.get(),
                last_seq: self.store.last_seq()?,
            },
            jobs: JobCounts {
                running,
                done: totals.jobs_done,
                failed: totals.jobs_failed,
                awaiting_ack: awaiting,
            },
            units_earned: totals.units_earned,
            receipts: totals.receipts,
        })
    }
}

async fn status(State(src): State<Arc<StatusSource>>) -> Response {
    match src.report() {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics(State(src): State<Arc<StatusSource>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        src.metrics.encode(),
    )
        .into_response()
}

/// Binds the status endpoint on `addr`; returns the bound address and the serving task.
pub async fn serve(
    addr: SocketAddr,
    source: Arc<StatusSource>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(source);
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = result {
            warn!(error = %e, "status endpoint stopped");
        }
    });
    Ok((bound, task))
}
