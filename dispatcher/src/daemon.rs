//! Starting and stopping a dispatcher: checks the chain first (reachable RPC, DISPATCHER_ROLE),
//! then opens the store, joins the mesh, starts the engine, the network loop, the announcer
//! and the API, and on shutdown stops taking work and lets the engine commit what it has.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pocmesh_chain::{ChainClient, ChainError, Recorder, TxPolicy};
use pocmesh_executor::Executors;
use pocmesh_protocol::{JobType, MAX_ENVELOPE_BYTES, SecretKey, Validator};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{ApiParts, EngineHandle};
use crate::config::{ConfigError, DispatcherConfig};
use crate::engine::{Engine, EngineParts, INPUT_CAPACITY};
use crate::metrics::DispatcherMetrics;
use crate::net::{self, AuditRunner, NetCtx};
use crate::store::{DispatcherStore, StoreError};
use crate::submitter::ProofSubmitter;

/// Why the dispatcher could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key file could not be read.
    #[error("dispatcher key {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: pocmesh_protocol::KeyError,
    },
    /// The chain refused or could not be reached at start.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mesh could not start.
    #[error(transparent)]
    Mesh(#[from] pocmesh_mesh::MeshError),
    /// The re-execution sandbox could not start.
    #[error(transparent)]
    Executor(#[from] pocmesh_executor::ExecutorError),
    /// The API could not bind.
    #[error("API on {addr}: {source}; choose another with --api 127.0.0.1:PORT")]
    Api {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The engine stopped because the job store could not be written (see the log).
    #[error(
        "the job store could not be written (disk full or failing?); nothing unwritten was acknowledged — fix the disk and start again"
    )]
    EngineStopped,
    /// A file in the data dir could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The file the API token is kept in (mode 0600), inside the data dir.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("api.token")
}

/// The file a running dispatcher describes itself in (JSON: address, peer, listen, api, pid).
pub fn info_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dispatcher.json")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DispatcherError + '_ {
    move |source| DispatcherError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The API token: from the config, else the one in the data dir, else a new one written there.
fn api_tokens(config: &DispatcherConfig) -> Result<Vec<String>, DispatcherError> {
    if !config.api.tokens.is_empty() {
        return Ok(config.api.tokens.clone());
    }
    let path = token_path(&config.data_dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let t = text.trim().to_string();
        if !t.is_empty() {
            return Ok(vec![t]);
        }
    }
    let token = hex::encode(rand::random::<[u8; 24]>());
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        writeln!(f, "{token}").map_err(io_err(&path))?;
    }
    info!(path = %path.display(), "created an API token");
    Ok(vec![token])
}

/// Runs a dispatcher with the chain's real recorder until `shutdown`.
pub async fn run(
    mut config: DispatcherConfig,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    config.validate()?;
    let key_file = config.key_file.clone().unwrap_or_default();
    let key = SecretKey::load(&key_file).map_err(|source| DispatcherError::Key {
        path: key_file.clone(),
        source,
    })?;
    let rpc = config.rpc.clone().unwrap_or_default();
    let contract = config.contract.unwrap_or_default();
    let policy = TxPolicy {
        confirmations: config.confirmations.max(1),
        ..TxPolicy::default()
    };
    // Refuse to start on an unreachable RPC or a key without the role: better now than at the
    // first batch.
    let client = ChainClient::connect(&rpc, &key, policy).await?;
    let chain_net = pocmesh_protocol::topics::network_for_chain(client.chain_id());
    if config.network.net != chain_net {
        if !config.net_from_chain {
            return Err(ConfigError::Invalid {
                field: "network.net",
                reason: format!(
                    "network `{}` is not the network of the chain at {rpc} (chain id {}, network `{chain_net}`); pass --net {chain_net}, or leave --net out to take it from the chain",
                    config.network.net,
                    client.chain_id()
                ),
            }
            .into());
        }
        info!(net = %chain_net, chain_id = client.chain_id(), "network name taken from the chain");
        config.network.net = chain_net;
    }
    config.net_from_chain = false;
    config.validate()?;
    let mut recorder = Recorder::new(client, contract).await?;
    if let Some(block) = config.contract_block {
        recorder.log_from_block = block;
    }
    info!(%rpc, %contract, dispatcher = %key.address(), "chain checked: DISPATCHER_ROLE held");
    run_with(config, key, Arc::new(recorder), shutdown).await
}

/// Runs a dispatcher recording through `submitter` (the chain's recorder in production).
pub async fn run_with(
    config: DispatcherConfig,
    key: SecretKey,
    submitter: Arc<dyn ProofSubmitter>,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    let running = start(config, key, submitter).await?;
    let engine_failed = running.engine_stop.clone();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        // The engine stops on its own only when it cannot write the store.
        _ = engine_failed.cancelled() => {}
    }
    let failed = engine_failed.is_cancelled() && !shutdown.is_cancelled();
    running.stop().await;
    if failed {
        return Err(DispatcherError::EngineStopped);
    }
    Ok(())
}

/// A dispatcher running in this process.
#[derive(Debug)]
pub struct Running {
    /// Submit and query jobs without HTTP.
    pub handle: EngineHandle,
    /// Where the API listens.
    pub api: std::net::SocketAddr,
    /// Mesh addresses with `/p2p/<peer>`, for nodes to bootstrap from.
    pub listen: Vec<String>,
    store: DispatcherStore,
    api_stop: CancellationToken,
    api_task: tokio::task::JoinHandle<()>,
    engine_stop: CancellationToken,
    engine_task: tokio::task::JoinHandle<()>,
    announce_task: tokio::task::JoinHandle<()>,
    mesh_stop: CancellationToken,
    mesh_task: tokio::task::JoinHandle<()>,
    events_task: tokio::task::JoinHandle<()>,
    audit_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops taking work, lets the engine commit what it has, and leaves the mesh.
    pub async fn stop(self) {
        info!("shutting down: committing state");
        self.api_stop.cancel();
        let _ = self.api_task.await;
        self.engine_stop.cancel();
        let _ = self.engine_task.await;
        // Workers stop at the same signal; a run in progress finishes on its blocking thread.
        for t in self.audit_tasks {
            let _ = t.await;
        }
        self.announce_task.abort();
        self.mesh_stop.cancel();
        let _ = self.mesh_task.await;
        self.events_task.abort();
        if let Err(e) = store_flush(&self.store) {
            warn!(error = %e, "final flush failed");
        }
        info!("dispatcher stopped");
    }
}

/// Starts a dispatcher recording through `submitter`; it runs until [`Running::stop`].
pub async fn start(
    config: DispatcherConfig,
    key: SecretKey,
    submitter: Arc<dyn ProofSubmitter>,
) -> Result<Running, DispatcherError> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(io_err(&data_dir))?;
    let tokens = api_tokens(&config)?;
    let chain_id = submitter.chain_id();
    let store = DispatcherStore::open(&data_dir.join("store"))?;
    let mut mesh_config =
        config
            .network
            .to_mesh_config()
            .map_err(|reason| ConfigError::Invalid {
                field: "network",
                reason,
            })?;
    // Heartbeats naming the contract as their wallet are rejected at gossip validation.
    mesh_config.refused_wallets = config.contract.into_iter().collect();
    let validator = Validator {
        net: mesh_config.net.clone(),
        max_bytes: MAX_ENVELOPE_BYTES,
        max_skew_ms: mesh_config.max_skew_ms,
    };
    let mesh_stop = CancellationToken::new();
    let (mesh, events, mesh_task) =
        pocmesh_mesh::spawn(&key, mesh_config, mesh_stop.clone()).await?;
    let metrics = Arc::new(DispatcherMetrics::new());
    let (inputs, input_rx) = crate::engine::Lanes::new(INPUT_CAPACITY);
    let engine_stop = CancellationToken::new();
    let (audits, audit_tasks) = AuditRunner::start(
        Arc::new(Executors::new(&[JobType::Hash, JobType::Wasm])?),
        config.verify.audit_workers,
        config.verify.audit_queue,
        inputs.clone(),
        metrics.clone(),
        engine_stop.clone(),
    );
    let net = Arc::new(NetCtx::new(
        mesh.clone(),
        key.clone(),
        validator,
        inputs.clone(),
        metrics.clone(),
        audits,
        engine_stop.clone(),
    ));
    let config = Arc::new(config);
    let engine = Engine::load(EngineParts {
        config: config.clone(),
        address: key.address(),
        store: store.clone(),
        metrics: metrics.clone(),
        shutdown: engine_stop.clone(),
        clock: Arc::new(crate::clock::SystemClock),
    })?;
    let io = net::EngineIo {
        net: net.clone(),
        submitter,
    };
    let engine_task = tokio::spawn(engine.run(input_rx, io));
    let events_task = tokio::spawn(net::event_loop(net.clone(), events));
    // The mesh's refusal counters, copied into the metrics every second.
    // (It ends with the engine.)
    {
        let (mesh, metrics, stop) = (mesh.clone(), metrics.clone(), engine_stop.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = every.tick() => metrics.set_mesh(mesh.counters()),
                }
            }
        });
    }
    let announce_task = tokio::spawn(net::announce(
        net.clone(),
        config.contract.unwrap_or_default(),
        Duration::from_millis(config.announce_ms),
    ));
    let api_stop = CancellationToken::new();
    let info = serde_json::json!({
        "address": key.address(),
        "peer_id": mesh.local_peer().to_string(),
        "net": net.net,
        "contract": config.contract,
        "rpc": public_rpc(&config),
        "chain_id": chain_id,
        "explorer": chain_id.and_then(|id| config.api.explorer_for(id)),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let (api_addr, api_task) = crate::api::serve(
        config.api.listen,
        ApiParts {
            engine: EngineHandle {
                inputs: inputs.clone(),
            },
            store: store.clone(),
            chain: config.rpc.clone().zip(config.contract),
            contract_block: config.contract_block,
            tokens,
            demo_jobs_per_hour: config.api.demo_quota(&config.network.net),
            rate_limit_per_minute: config.api.rate_limit_per_minute,
            client_rate_limit_per_minute: config.api.client_rate_limit_per_minute,
            max_body_bytes: config.api.max_body_bytes,
            default_limits: config.jobs.default_limits,
            metrics: metrics.clone(),
            info: info.clone(),
        },
        api_stop.clone(),
    )
    .await
    .map_err(|source| DispatcherError::Api {
        addr: config.api.listen,
        source,
    })?;
    // Listen addresses arrive as events; give the swarm a moment, then describe ourselves.
    let listen = wait_listen(&mesh).await;
    let mut described = info;
    described["listen"] = serde_json::json!(listen.clone());
    described["api"] = serde_json::json!(format!("http://{api_addr}"));
    described["pid"] = serde_json::json!(std::process::id());
    let info_file = info_path(&data_dir);
    std::fs::write(&info_file, described.to_string()).map_err(io_err(&info_file))?;
    info!(api = %api_addr, address = %key.address(), peer = %mesh.local_peer(), "dispatcher started");
    Ok(Running {
        handle: EngineHandle { inputs },
        api: api_addr,
        listen,
        store,
        api_stop,
        api_task,
        engine_stop,
        engine_task,
        announce_task,
        mesh_stop,
        mesh_task,
        events_task,
        audit_tasks,
    })
}

/// The RPC URL browsers may see (see [`crate::config::ApiSettings::public_rpc`]).
fn public_rpc(config: &DispatcherConfig) -> Option<String> {
    if config.api.public_rpc.is_some() {
        return config.api.public_rpc.clone();
    }
    let rpc = config.rpc.as_deref()?;
    let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| rpc.starts_with(p));
    local.then(|| rpc.to_string())
}

fn store_flush(store: &DispatcherStore) -> Result<(), StoreError> {
    store.commit(&crate::store::Changes {
        counters: Some(store.counters()?),
        ..Default::default()
    })
}

/// The swarm's listen addresses with `/p2p/<peer>`, once it has some (at most ~2 s).
async fn wait_listen(mesh: &pocmesh_mesh::MeshHandle) -> Vec<String> {
    for _ in 0..40 {
        if let Ok(addrs) = mesh.listen_addrs().await
            && !addrs.is_empty()
        {
            return addrs
                .into_iter()
                .map(|a| format!("{a}/p2p/{}", mesh.local_peer()))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Vec::new()
}
