//! The operator's view: Prometheus metrics and the local `/status` + `/metrics` endpoint
//! (127.0.0.1 by default), which also serves the control routes of [`crate::control`].
//! `pocmesh node status` reads `/status`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pocmesh_protocol::{Address, BatchId, Hash32, JobId, JobType};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::consent::{CONSENT_VERSION, ConsentState, Participation, consent_hash};
use crate::receipts::FailedReceipt;
use crate::store::{JobState, NodeStore, Totals};

/// Failed receipts listed in `/status`, newest first.
pub const FAILED_RECEIPTS_SHOWN: usize = 20;

/// One label: why or how something happened.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `accepted`, a decline reason, `ok`, `failed`, …
    pub outcome: String,
}

/// One label: the state a receipt reached.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiptStateLabel {
    /// `pending`, `verified`, `failed` or `unchecked`.
    pub state: String,
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
    /// Receipts by the state they reached since start (`pending`, `unchecked` or `failed` on
    /// arrival; `verified` or `failed` after a check).
    pub receipts: Family<ReceiptStateLabel, Counter>,
    /// Receipts that failed their check, all time (from the store).
    pub receipts_failed: Gauge,
    /// Receipts waiting for their check now.
    pub receipts_pending: Gauge,
    /// Units of receipts verified on chain, all time (from the store).
    pub units_earned: Gauge,
    /// Units of receipts this node cannot check (no chain configured), all time.
    pub units_unconfirmed: Gauge,
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
            receipts: Family::default(),
            receipts_failed: Gauge::default(),
            receipts_pending: Gauge::default(),
            units_earned: Gauge::default(),
            units_unconfirmed: Gauge::default(),
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
        registry.register(
            "receipts",
            "Receipts by the state they reached (pending, unchecked, failed on arrival; verified, failed after a check)",
            m.receipts.clone(),
        );
        registry.register(
            "receipts_failed",
            "Receipts that failed their check on chain, all time",
            m.receipts_failed.clone(),
        );
        registry.register(
            "receipts_pending",
            "Receipts waiting for their check on chain",
            m.receipts_pending.clone(),
        );
        registry.register(
            "units_earned",
            "Units of receipts verified on chain, all time",
            m.units_earned.clone(),
        );
        registry.register(
            "units_unconfirmed",
            "Units of receipts not checked on chain (no --rpc/--contract), all time",
            m.units_unconfirmed.clone(),
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

impl NodeMetrics {
    /// Counts a receipt reaching `state`.
    pub fn count_receipt(&self, state: &str) {
        self.receipts
            .get_or_create(&ReceiptStateLabel {
                state: state.to_string(),
            })
            .inc();
    }

    /// Sets the receipt gauges from the store's totals.
    pub fn set_receipt_totals(&self, totals: &Totals) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.units_earned.set(gauge(totals.units_earned));
        self.units_unconfirmed.set(gauge(totals.units_unconfirmed));
        self.receipts_failed.set(gauge(totals.receipts_failed));
        self.receipts_pending.set(gauge(totals.receipts_pending));
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
    /// Units of receipts verified against the batch roots on chain.
    pub units_earned: u64,
    /// Units of receipts the node cannot check (it has no `--rpc`/`--contract`): claimed by
    /// the dispatcher, not confirmed.
    #[serde(default)]
    pub units_unconfirmed: u64,
    /// Units of receipts waiting for their check.
    #[serde(default)]
    pub units_pending: u64,
    /// Receipts by state, and the latest failures.
    #[serde(deserialize_with = "receipt_counts_or_total")]
    pub receipts: ReceiptCounts,
    /// The consent accepted and whether the volunteer opted out (absent from nodes before
    /// consent version 2).
    #[serde(default)]
    pub consent: Option<ConsentView>,
}

/// The consent part of `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentView {
    /// Whether the volunteer has opted out.
    pub opted_out: bool,
    /// Since when, unix ms.
    pub opted_out_since_ms: Option<u64>,
    /// The hash of the consent text accepted (what heartbeats carry).
    pub accepted_hash: Option<Hash32>,
    /// Its version.
    pub accepted_version: Option<u32>,
    /// When it was accepted, unix ms.
    pub accepted_ms: Option<u64>,
    /// The hash of this build's consent text.
    pub current_hash: Hash32,
    /// Its version.
    pub current_version: u32,
}

impl From<&ConsentState> for ConsentView {
    fn from(s: &ConsentState) -> Self {
        let since = match s.participation {
            Participation::OptedOut { since_ms, .. } => Some(since_ms),
            Participation::Active => None,
        };
        ConsentView {
            opted_out: since.is_some(),
            opted_out_since_ms: since,
            accepted_hash: s.accepted.map(|a| a.hash),
            accepted_version: s.accepted.map(|a| a.version),
            accepted_ms: s.accepted.map(|a| a.accepted_ms),
            current_hash: consent_hash(),
            current_version: CONSENT_VERSION,
        }
    }
}

/// Receipts in `/status` (all time, from the store).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReceiptCounts {
    /// Received, in all states.
    pub total: u64,
    /// Verified on chain: their units are in `units_earned`.
    pub verified: u64,
    /// Waiting for their check (RPC unreachable, batch not visible yet).
    pub pending: u64,
    /// Failed their check: flagged, never counted.
    pub failed: u64,
    /// Not checked: the node has no chain to ask; their units are in `units_unconfirmed`.
    pub unchecked: u64,
    /// Whether this node checks receipts on chain (it runs with `--rpc` and `--contract`).
    pub checked_on_chain: bool,
    /// The latest failed receipts, newest first (at most [`FAILED_RECEIPTS_SHOWN`]).
    pub failed_recent: Vec<FailedReceiptView>,
}

/// A failed receipt in `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedReceiptView {
    /// The job.
    pub job: JobId,
    /// The batch the receipt named.
    pub batch: BatchId,
    /// The units it claimed (not counted).
    pub units: u64,
    /// Why it failed, and what it means.
    pub reason: String,
    /// When, unix ms.
    pub at_ms: u64,
}

impl From<FailedReceipt> for FailedReceiptView {
    fn from(f: FailedReceipt) -> Self {
        FailedReceiptView {
            job: f.job,
            batch: f.batch,
            units: f.units,
            reason: f.reason.to_string(),
            at_ms: f.at_ms,
        }
    }
}

/// Reads `receipts` as the breakdown, or as the bare count nodes before it reported.
fn receipt_counts_or_total<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<ReceiptCounts, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum CountsOrTotal {
        Counts(ReceiptCounts),
        Total(u64),
    }
    Ok(match CountsOrTotal::deserialize(deserializer)? {
        CountsOrTotal::Counts(c) => c,
        CountsOrTotal::Total(total) => ReceiptCounts {
            total,
            ..ReceiptCounts::default()
        },
    })
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
    /// Whether receipts are checked on chain.
    pub checks_receipts: bool,
    /// The volunteer's consent and participation, as the node holds them now.
    pub consent: tokio::sync::watch::Receiver<ConsentState>,
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
            units_unconfirmed: totals.units_unconfirmed,
            units_pending: totals.units_pending,
            receipts: ReceiptCounts {
                total: totals.receipts,
                verified: totals.receipts_verified,
                pending: totals.receipts_pending,
                failed: totals.receipts_failed,
                unchecked: totals.receipts_unchecked,
                checked_on_chain: self.checks_receipts,
                failed_recent: self
                    .store
                    .failed_receipts(FAILED_RECEIPTS_SHOWN)?
                    .into_iter()
                    .map(FailedReceiptView::from)
                    .collect(),
            },
            consent: Some(ConsentView::from(&*self.consent.borrow())),
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

/// Binds the status endpoint on `addr` with the `control` routes beside it; returns the bound
/// address and the serving task.
pub async fn serve(
    addr: SocketAddr,
    source: Arc<StatusSource>,
    control: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(source)
        .merge(control);
    let task = tokio::spawn(async move {
        // The peer's address is needed by the control routes (loopback only).
        let result = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
        if let Err(e) = result {
            warn!(error = %e, "status endpoint stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use pocmesh_protocol::{Hash32, Receipt};

    use super::*;
    use crate::receipts::{ReceiptFailure, ReceiptState};

    fn source(store: NodeStore, checks_receipts: bool) -> StatusSource {
        StatusSource {
            info: NodeInfo {
                address: Address::from([1u8; 20]),
                wallet: Address::from([2u8; 20]),
                peer_id: "peer".into(),
                net: "devnet-551".into(),
                version: "0".into(),
                job_types: vec![JobType::Hash],
                slots: 1,
            },
            metrics: Arc::new(NodeMetrics::new()),
            store,
            listen: std::sync::Mutex::new(Vec::new()),
            started: Instant::now(),
            checks_receipts,
            consent: tokio::sync::watch::channel(ConsentState::default()).1,
        }
    }

    fn receipt(n: u8, units: u64) -> Receipt {
        Receipt {
            job: JobId::from([n; 32]),
            batch: BatchId::from([50u8; 32]),
            tx: Hash32([3u8; 32]),
            block: 1,
            units,
            provider: Address::from([2u8; 20]),
            result_hash: Hash32([n; 32]),
            proof: vec![],
        }
    }

    #[test]
    fn the_report_breaks_receipts_down_and_lists_failures() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = NodeStore::open(dir.path()).expect("open");
        store
            .receipt(&receipt(1, 4), None, ReceiptState::pending(0), 0)
            .expect("store");
        let reason = ReceiptFailure::WrongProvider {
            provider: Address::from([9u8; 20]),
            wallet: Address::from([2u8; 20]),
        };
        store
            .receipt(
                &receipt(2, 6),
                None,
                ReceiptState::Failed {
                    reason: reason.clone(),
                    at_ms: 5,
                },
                5,
            )
            .expect("store");
        let r = source(store, true).report().expect("report");
        assert_eq!(
            (r.units_earned, r.units_pending, r.units_unconfirmed),
            (0, 4, 0)
        );
        assert_eq!(
            (r.receipts.total, r.receipts.pending, r.receipts.failed),
            (2, 1, 1)
        );
        assert!(r.receipts.checked_on_chain);
        assert_eq!(
            r.receipts.failed_recent,
            vec![FailedReceiptView {
                job: JobId::from([2u8; 32]),
                batch: BatchId::from([50u8; 32]),
                units: 6,
                reason: reason.to_string(),
                at_ms: 5,
            }]
        );
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["receipts"]["failed"], 1);
        assert_eq!(json["units_unconfirmed"], 0);
        assert!(
            json["receipts"]["failed_recent"][0]["reason"]
                .as_str()
                .is_some_and(|s| s.contains("not this node's wallet"))
        );
    }

    #[test]
    fn a_report_of_an_earlier_node_still_reads() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = NodeStore::open(dir.path()).expect("open");
        let r = source(store, false).report().expect("report");
        let mut json = serde_json::to_value(&r).expect("json");
        json["receipts"] = serde_json::json!(37);
        if let Some(map) = json.as_object_mut() {
            map.remove("units_unconfirmed");
            map.remove("units_pending");
        }
        let old: StatusReport = serde_json::from_value(json).expect("old shape reads");
        assert_eq!(old.receipts.total, 37);
        assert_eq!(old.units_unconfirmed, 0);
    }

    #[test]
    fn receipt_metrics_are_exported_by_state() {
        let m = NodeMetrics::new();
        m.count_receipt("verified");
        m.count_receipt("verified");
        m.count_receipt("failed");
        m.set_receipt_totals(&Totals {
            receipts_failed: 3,
            units_earned: 40,
            units_unconfirmed: 2,
            ..Totals::default()
        });
        let text = m.encode();
        for line in [
            "pocmesh_node_receipts_total{state=\"verified\"} 2",
            "pocmesh_node_receipts_total{state=\"failed\"} 1",
            "pocmesh_node_receipts_failed 3",
            "pocmesh_node_receipts_pending 0",
            "pocmesh_node_units_earned 40",
            "pocmesh_node_units_unconfirmed 2",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
