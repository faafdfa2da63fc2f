//! The node daemon: checks the volunteer's consent, opens the store, joins the mesh, and runs
//! its tasks — heartbeats, the network event loop (offers, receipts), job execution, result
//! delivery, receipt checks (with a chain configured), opt-out/opt-in requests — until
//! shutdown, then lets running jobs finish within a grace period and hands back the rest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pocmesh_mesh::{MeshEvent, MeshHandle};
use pocmesh_protocol::{
    Address, Body, JobId, MAX_ENVELOPE_BYTES, SecretKey, Topic, Validator, unix_ms_now,
};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::caps::{self, Machine};
use crate::config::{ConfigError, NodeConfig};
use crate::consent::{ConsentError, ConsentState};
use crate::control::CONTROL_QUEUE;
use crate::receipts::ReceiptChecker;
use crate::status::{NodeInfo, NodeMetrics, StatusSource};
use crate::store::{JobState, NodeStore, StoreError};
use crate::trust::TrustPolicy;
use crate::{delivery, heartbeat, jobs, participation, receipts};
use pocmesh_executor::http::target::TargetRules;
use pocmesh_executor::{ExecutorCaps, Executors};

/// Why the node stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The consent text is not accepted, or its record cannot be read or written.
    #[error(transparent)]
    Consent(#[from] ConsentError),
    /// The key file could not be read or created.
    #[error("node key {path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: pocmesh_protocol::KeyError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mesh could not start.
    #[error(transparent)]
    Mesh(#[from] pocmesh_mesh::MeshError),
    /// The executors could not be set up.
    #[error(transparent)]
    Executor(#[from] pocmesh_executor::ExecutorError),
    /// The status endpoint could not bind.
    #[error("status endpoint on {addr}: {source}; choose another with --status 127.0.0.1:PORT")]
    Status {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory could not be prepared.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What every task of the node shares. Fields are read-only or internally synchronised.
pub(crate) struct NodeCore {
    pub(crate) key: SecretKey,
    pub(crate) address: Address,
    pub(crate) wallet: Address,
    pub(crate) net: String,
    pub(crate) config: NodeConfig,
    pub(crate) store: NodeStore,
    pub(crate) executors: Arc<Executors>,
    pub(crate) caps: ExecutorCaps,
    /// Which HTTP check targets offers may name.
    pub(crate) targets: TargetRules,
    pub(crate) trust: TrustPolicy,
    /// Checks receipts on chain; `None` without `trust.rpc`/`trust.contract`.
    pub(crate) receipt_checker: Option<Arc<ReceiptChecker>>,
    pub(crate) mesh: MeshHandle,
    pub(crate) metrics: Arc<NodeMetrics>,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) slots_total: u32,
    pub(crate) machine: Machine,
    /// The volunteer's consent and participation; written by the participation task only.
    pub(crate) consent: watch::Sender<ConsentState>,
    /// Held from taking a sequence number to publishing it (heartbeat or opt_out), so the
    /// mesh sees them in sequence order.
    pub(crate) publishing: tokio::sync::Mutex<()>,
    /// Opted out, and no peer has heard the `opt_out` yet: the heartbeat task sends one.
    pub(crate) opt_out_unannounced: AtomicBool,
    pub(crate) shutting_down: AtomicBool,
    /// Wakes the delivery task when a result is ready.
    pub(crate) results_ready: Notify,
    /// Wakes the receipts task when a receipt is waiting for its check.
    pub(crate) receipts_ready: Notify,
    /// Wakes the heartbeat task early (first connection).
    pub(crate) beat_now: Notify,
    /// Validates job-protocol envelopes (offers, receipts, replies).
    pub(crate) validator: Validator,
    /// Dispatchers' PeerIds seen in offers, by address (for receipts and replies).
    pub(crate) dispatchers: std::sync::Mutex<HashMap<Address, String>>,
    /// Results being delivered right now (so a slow try is not started twice).
    pub(crate) delivering: std::sync::Mutex<std::collections::HashSet<(JobId, u32)>>,
    /// Dispatchers (PeerIds) whose `job_offers` this node took work from since this start: they
    /// take `job_results`.
    pub(crate) batching: std::sync::Mutex<std::collections::HashSet<libp2p::PeerId>>,
}

impl NodeCore {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// The key file inside a data directory.
pub fn key_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("node.key")
}

/// The file a running node writes its status address to.
pub fn status_addr_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("status.addr")
}

/// The file a running node writes its identity and listen addresses to (JSON).
pub fn node_info_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("node.json")
}

/// Runs the node until `shutdown` is cancelled, then shuts down gracefully.
pub async fn run(config: NodeConfig, shutdown: CancellationToken) -> Result<(), NodeError> {
    config.validate()?;
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let mut consent = ConsentState::load(&data_dir)?;
    if consent.start(config.accept_policy, unix_ms_now())? {
        consent.save(&data_dir)?;
        info!(
            policy = %crate::consent::consent_hash(),
            version = crate::consent::CONSENT_VERSION,
            "consent text accepted"
        );
    }
    if consent.is_opted_out() {
        warn!(
            "the volunteer has opted out: no heartbeats, every offer declined; `pocmesh node opt-in` takes part again"
        );
    }
    let executor_options = config.executor_options()?;
    let key_file = key_path(&data_dir);
    let (key, created) = SecretKey::load_or_create(&key_file).map_err(|source| NodeError::Key {
        path: key_file.clone(),
        source,
    })?;
    if created {
        info!(path = %key_file.display(), address = %key.address(), "created the node key");
    }
    let store = NodeStore::open(&data_dir.join("store"))?;
    let receipt_checker = ReceiptChecker::from_config(&config, key.address()).map(Arc::new);
    let moved = store.reconcile_receipts(receipt_checker.is_some(), unix_ms_now())?;
    if moved > 0 && receipt_checker.is_some() {
        info!(
            receipts = moved,
            "receipts stored unchecked will now be checked on chain"
        );
    } else if moved > 0 {
        warn!(
            receipts = moved,
            "receipts waiting for their check stay unchecked: pass --rpc and --contract to confirm them"
        );
    }
    let mut mesh_config =
        config
            .network
            .to_mesh_config()
            .map_err(|reason| ConfigError::Invalid {
                field: "network",
                reason,
            })?;
    // Heartbeats naming the contract as their wallet are not relayed.
    mesh_config.refused_wallets = config.trust.contract.into_iter().collect();
    let net = mesh_config.net.clone();
    let max_skew_ms = mesh_config.max_skew_ms;
    let mesh_stop = CancellationToken::new();
    let (mesh, events, mesh_task) =
        pocmesh_mesh::spawn(&key, mesh_config, mesh_stop.clone()).await?;
    let executors = Arc::new(Executors::with_options(
        &config.jobs.job_types,
        &executor_options,
    )?);
    let slots_total = config.jobs.slots();
    let metrics = Arc::new(NodeMetrics::new());
    metrics.set_receipt_totals(&store.totals()?);
    let wallet = config.wallet.unwrap_or_default();
    let core = Arc::new(NodeCore {
        address: key.address(),
        wallet,
        net: net.clone(),
        caps: config.jobs.caps(),
        targets: executor_options.http.rules.clone(),
        trust: TrustPolicy::new(&config.trust),
        receipt_checker: receipt_checker.clone(),
        store: store.clone(),
        executors,
        mesh: mesh.clone(),
        metrics: metrics.clone(),
        slots: Arc::new(Semaphore::new(slots_total as usize)),
        slots_total,
        machine: caps::detect(),
        opt_out_unannounced: AtomicBool::new(consent.is_opted_out()),
        consent: watch::Sender::new(consent),
        publishing: tokio::sync::Mutex::new(()),
        shutting_down: AtomicBool::new(false),
        results_ready: Notify::new(),
        receipts_ready: Notify::new(),
        beat_now: Notify::new(),
        validator: Validator {
            net: net.clone(),
            max_bytes: MAX_ENVELOPE_BYTES,
            max_skew_ms,
        },
        dispatchers: std::sync::Mutex::new(HashMap::new()),
        delivering: std::sync::Mutex::new(std::collections::HashSet::new()),
        batching: std::sync::Mutex::new(std::collections::HashSet::new()),
        key,
        config,
    });

    let status_source = Arc::new(StatusSource {
        info: NodeInfo {
            address: core.address,
            wallet: core.wallet,
            peer_id: mesh.local_peer().to_string(),
            net,
            version: env!("CARGO_PKG_VERSION").to_string(),
            job_types: core.executors.enabled(),
            slots: slots_total,
        },
        metrics: metrics.clone(),
        store: store.clone(),
        listen: std::sync::Mutex::new(Vec::new()),
        started: Instant::now(),
        checks_receipts: receipt_checker.is_some(),
        consent: core.consent.subscribe(),
    });
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let status_stop = CancellationToken::new();
    let status_listen = core.config.status.listen;
    let (status_addr, status_task) = crate::status::serve(
        status_listen,
        status_source.clone(),
        crate::control::router(control_tx),
        status_stop.clone(),
    )
    .await
    .map_err(|source| NodeError::Status {
        addr: status_listen,
        source,
    })?;
    write_file(&status_addr_path(&data_dir), &status_addr.to_string());
    info!(
        address = %core.address,
        wallet = %core.wallet,
        peer = %mesh.local_peer(),
        status = %status_addr,
        slots = slots_total,
        receipts_checked_on_chain = core.receipt_checker.is_some(),
        opted_out = core.consent.borrow().is_opted_out(),
        "node started"
    );

    // Attempts that were running when the node last stopped cannot finish now: hand them back.
    for record in store.jobs_in(|s| matches!(s, JobState::Running))? {
        jobs::hand_back(
            &core,
            &record,
            "the node restarted while the job was running",
        )
        .await;
    }

    let work_stop = CancellationToken::new();
    let heartbeat_task = tokio::spawn(heartbeat::run(core.clone(), work_stop.clone()));
    let delivery_task = tokio::spawn(delivery::run(core.clone(), work_stop.clone()));
    let activity_task = tokio::spawn(crate::activity::run(core.clone(), work_stop.clone()));
    let participation_task = tokio::spawn(participation::run(
        core.clone(),
        control_rx,
        work_stop.clone(),
    ));
    let receipts_task = receipt_checker
        .map(|checker| tokio::spawn(receipts::run(core.clone(), checker, work_stop.clone())));
    let events_task = tokio::spawn(event_loop(
        core.clone(),
        events,
        status_source,
        data_dir.clone(),
        status_addr,
    ));

    shutdown.cancelled().await;
    core.shutting_down.store(true, Ordering::SeqCst);
    let running = slots_total as usize - core.slots.available_permits();
    let grace = Duration::from_millis(core.config.shutdown_grace_ms);
    info!(
        running,
        grace_ms = grace.as_millis() as u64,
        "shutting down: new offers are declined"
    );
    let deadline = tokio::time::Instant::now() + grace;
    // Every slot back means every job finished (and stored its result).
    let all = tokio::time::timeout_at(deadline, core.slots.acquire_many(slots_total)).await;
    drop(all);
    for record in store.jobs_in(|s| matches!(s, JobState::Running))? {
        jobs::hand_back(&core, &record, "the node shut down before the job finished").await;
    }
    // One last delivery round for what just finished; the rest waits in the store.
    let _ = tokio::time::timeout(Duration::from_secs(3), delivery::deliver_due(&core, true)).await;
    work_stop.cancel();
    let _ = heartbeat_task.await;
    let _ = delivery_task.await;
    let _ = activity_task.await;
    let _ = participation_task.await;
    if let Some(task) = receipts_task {
        let _ = task.await;
    }
    mesh_stop.cancel();
    let _ = mesh_task.await;
    events_task.abort();
    status_stop.cancel();
    let _ = status_task.await;
    store.flush()?;
    info!("node stopped");
    Ok(())
}

fn write_file(path: &std::path::Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        warn!(path = %path.display(), error = %e, "cannot write");
    }
}

/// Handles what the network reports, until the mesh stops.
async fn event_loop(
    core: Arc<NodeCore>,
    mut events: mpsc::Receiver<MeshEvent>,
    status: Arc<StatusSource>,
    data_dir: PathBuf,
    status_addr: std::net::SocketAddr,
) {
    let local_peer = core.mesh.local_peer();
    while let Some(event) = events.recv().await {
        match event {
            MeshEvent::Listening { address } => {
                let full = format!("{address}/p2p/{local_peer}");
                let list = match status.listen.lock() {
                    Ok(mut l) => {
                        l.push(full);
                        l.clone()
                    }
                    Err(_) => Vec::new(),
                };
                let info = serde_json::json!({
                    "address": core.address,
                    "wallet": core.wallet,
                    "peer_id": local_peer.to_string(),
                    "listen": list,
                    "status": status_addr.to_string(),
                    "pid": std::process::id(),
                });
                write_file(&node_info_path(&data_dir), &info.to_string());
            }
            MeshEvent::PeerConnected { peer, .. } => {
                core.metrics.peers.inc();
                debug!(%peer, "peer connected");
                if core.metrics.peers.get() == 1 {
                    core.beat_now.notify_one();
                }
            }
            MeshEvent::PeerDisconnected { peer } => {
                core.metrics.peers.dec();
                debug!(%peer, "peer disconnected");
            }
            MeshEvent::Gossip { topic, message, .. } => {
                if topic == Topic::Heartbeat
                    && matches!(message.message.body, Body::Heartbeat(_))
                    && message.message.from != core.address
                {
                    core.metrics.heartbeats_received.inc();
                }
            }
            MeshEvent::GossipDropped { rejected, .. } => {
                if rejected {
                    core.metrics.gossip_rejected.inc();
                }
            }
            MeshEvent::Request {
                peer,
                envelope,
                reply,
            } => {
                tokio::spawn(jobs::on_request(core.clone(), peer, envelope, reply));
            }
        }
    }
}

/// Remembers the PeerId a dispatcher spoke from.
pub(crate) fn remember_dispatcher(core: &NodeCore, address: Address, peer: &str) {
    if let Ok(mut map) = core.dispatchers.lock() {
        if map.len() > 1024 {
            map.clear();
        }
        map.insert(address, peer.to_string());
    }
}

/// The job key used in logs.
pub(crate) fn job_label(job: &JobId, attempt: u32) -> String {
    format!("{job}#{attempt}")
}
