//! The whole local network behind `pocmesh testnet up|down|status`: anvil with XDC-like
//! settings and its state in the network's folder, the contract, a funded dispatcher key
//! holding DISPATCHER_ROLE, a dispatcher process and N node processes (each with its own key,
//! wallet, data dir and log), and demo jobs of every type followed until they are on chain.
//! Everything it starts is written to `<dir>/testnet.json` so `down` can stop it by PID and a
//! later `up` resumes the same chain, contract and totals.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pocmesh_chain::anvil::{DEV_KEY_0, DEVNET_CHAIN_ID};
use pocmesh_chain::{ChainClient, ProofOfCompute, TxPolicy, deploy, grant_dispatcher};
use pocmesh_dispatcher::StatusView;
use pocmesh_dispatcher::api::client::ApiClient;
use pocmesh_dispatcher::api::{SubmitRequest, Submitted};
use pocmesh_protocol::{Address, Bytes, SecretKey};
use serde::{Deserialize, Serialize};

use crate::TestnetError;
use crate::procs::{self, Proc};

/// How to run the local network.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The `pocmesh` executable to start the dispatcher and nodes with.
    pub exe: PathBuf,
    /// The network's folder (state, keys, logs).
    pub dir: PathBuf,
    /// Volunteer nodes.
    pub nodes: usize,
    /// Demo jobs of each type; `None`: 5 on a new network, none on a resumed one.
    pub jobs: Option<usize>,
    /// anvil executable (default: tools folders, then PATH).
    pub anvil: Option<PathBuf>,
    /// RPC port (0: a free one).
    pub rpc_port: u16,
    /// Dispatcher API port (0: a free one).
    pub api_port: u16,
    /// Chain id.
    pub chain_id: u64,
    /// Node heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// How long to wait for the demo jobs.
    pub jobs_timeout: Duration,
}

impl UpOptions {
    /// Defaults for `exe` and `dir`.
    pub fn new(exe: PathBuf, dir: PathBuf) -> Self {
        UpOptions {
            exe,
            dir,
            nodes: 3,
            jobs: None,
            anvil: None,
            rpc_port: 8545,
            api_port: 8645,
            chain_id: DEVNET_CHAIN_ID,
            heartbeat_ms: 2_000,
            jobs_timeout: Duration::from_secs(300),
        }
    }
}

/// A node of the local network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// `node-1`, …
    pub name: String,
    /// The wallet it credits.
    pub wallet: Address,
    /// Its data dir.
    pub data_dir: String,
}

/// What `<dir>/testnet.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestnetState {
    /// Chain id.
    pub chain_id: u64,
    /// pocmesh network name.
    pub net: String,
    /// RPC URL.
    pub rpc: String,
    /// The contract.
    pub contract: Address,
    /// The block it was deployed in (0 in states written before it was kept).
    #[serde(default)]
    pub contract_block: u64,
    /// The dispatcher's address.
    pub dispatcher: Address,
    /// The dispatcher API URL.
    pub api: String,
    /// The dispatcher's mesh port (fixed, so nodes find a restarted dispatcher).
    pub mesh_port: u16,
    /// The nodes.
    pub nodes: Vec<NodeEntry>,
    /// Demo jobs submitted so far.
    pub demo_jobs: Vec<String>,
    /// Processes running now (empty after `down`).
    pub procs: Vec<Proc>,
}

/// A wallet's units, from the contract and from the dispatcher's records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WalletReport {
    /// The node.
    pub node: String,
    /// The wallet.
    pub wallet: Address,
    /// `computeUnits(wallet)` on chain.
    pub units: u128,
}

/// What `up` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkReport {
    /// RPC URL.
    pub rpc: String,
    /// Chain id.
    pub chain_id: u64,
    /// The contract.
    pub contract: Address,
    /// The dispatcher API.
    pub api: String,
    /// The dashboard.
    pub dashboard: String,
    /// The dispatcher's address.
    pub dispatcher: Address,
    /// The API token file.
    pub token_file: String,
    /// Each node's wallet and units.
    pub wallets: Vec<WalletReport>,
    /// `totalUnits()`.
    pub total_units: u128,
    /// Demo jobs by final state.
    pub jobs: std::collections::BTreeMap<String, u64>,
    /// The network's folder.
    pub dir: String,
    /// Whether an existing network was resumed.
    pub resumed: bool,
}

/// Progress of `up`: a step, or the demo jobs' count recorded out of total.
pub enum Progress<'a> {
    /// A step began.
    Step(&'a str),
    /// Demo jobs recorded so far, of total.
    Jobs {
        /// Recorded.
        done: u64,
        /// Total.
        total: u64,
    },
    /// Nodes the dispatcher has heard so far, of total.
    Nodes {
        /// Online at the dispatcher.
        online: usize,
        /// Started.
        total: usize,
    },
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("testnet.json")
}

/// Reads `<dir>/testnet.json`, if there is one.
pub fn load_state(dir: &Path) -> Result<Option<TestnetState>, TestnetError> {
    match std::fs::read(state_path(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TestnetError::Internal(format!("{}: {e}", state_path(dir).display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&state_path(dir), e)),
    }
}

fn save_state(dir: &Path, state: &TestnetState) -> Result<(), TestnetError> {
    let path = state_path(dir);
    let tmp = dir.join("testnet.json.tmp");
    let text =
        serde_json::to_vec_pretty(state).map_err(|e| TestnetError::Internal(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
}

fn io(path: &Path, e: std::io::Error) -> TestnetError {
    TestnetError::Io(format!("{}: {e}", path.display()))
}

fn free_port() -> Result<u16, TestnetError> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| TestnetError::Io(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| TestnetError::Io(e.to_string()))
}

fn port_or_free(port: u16) -> Result<u16, TestnetError> {
    if port == 0 { free_port() } else { Ok(port) }
}

/// Processes of `state` that still run.
pub fn running(state: &TestnetState) -> Vec<&Proc> {
    state.procs.iter().filter(|p| procs::alive(p)).collect()
}

async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T, TestnetError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(TestnetError::Timeout(format!(
                "{what} within {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Brings the network up (or resumes it), runs the demo jobs, and reports where to look. On
/// error, whatever this call started is stopped again.
pub async fn up(
    opts: &UpOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<NetworkReport, TestnetError> {
    std::fs::create_dir_all(opts.dir.join("logs")).map_err(|e| io(&opts.dir, e))?;
    let previous = load_state(&opts.dir)?;
    if let Some(prev) = &previous {
        let live = running(prev);
        if !live.is_empty() {
            let names: Vec<&str> = live.iter().map(|p| p.name.as_str()).collect();
            return Err(TestnetError::AlreadyRunning(format!(
                "{} (running: {}); stop it with `pocmesh testnet down --dir {}`",
                opts.dir.display(),
                names.join(", "),
                opts.dir.display()
            )));
        }
    }
    let mut started: Vec<Proc> = Vec::new();
    let result = up_inner(opts, previous, &mut started, progress).await;
    if result.is_err() {
        for p in started.iter().rev() {
            procs::stop(p, Duration::from_secs(5));
        }
    }
    result
}

/// What the steps of one `up` share: the options, the folder, what a previous run left, the
/// processes started so far (stopped again if a later step fails) and the progress callback.
struct Launch<'a> {
    opts: &'a UpOptions,
    dir: PathBuf,
    logs: PathBuf,
    previous: Option<TestnetState>,
    started: &'a mut Vec<Proc>,
    progress: &'a mut dyn for<'x> FnMut(Progress<'x>),
}

/// The running chain.
struct Chain {
    rpc: String,
    chain_id: u64,
}

/// The deployed contract and the dispatcher's key, funded and holding DISPATCHER_ROLE.
struct Deployment {
    contract: Address,
    contract_block: u64,
    dispatcher_key: SecretKey,
    dispatcher_dir: PathBuf,
}

/// The running dispatcher.
struct DispatcherUp {
    api: String,
    net: String,
    mesh_port: u16,
    bootstrap: String,
}

async fn up_inner(
    opts: &UpOptions,
    previous: Option<TestnetState>,
    started: &mut Vec<Proc>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<NetworkReport, TestnetError> {
    let dir = std::fs::canonicalize(&opts.dir).map_err(|e| io(&opts.dir, e))?;
    let mut launch = Launch {
        opts,
        logs: dir.join("logs"),
        dir,
        previous,
        started,
        progress,
    };
    let resumed = launch.previous.is_some();
    let chain = launch.start_chain().await?;
    let deployment = launch.deploy(&chain).await?;
    let dispatcher = launch.start_dispatcher(&chain, &deployment).await?;
    let nodes = launch.start_nodes(&chain, &deployment, &dispatcher).await?;
    let mut state = TestnetState {
        chain_id: chain.chain_id,
        net: dispatcher.net.clone(),
        rpc: chain.rpc.clone(),
        contract: deployment.contract,
        contract_block: deployment.contract_block,
        dispatcher: deployment.dispatcher_key.address(),
        api: dispatcher.api.clone(),
        mesh_port: dispatcher.mesh_port,
        nodes: nodes.clone(),
        demo_jobs: launch
            .previous
            .take()
            .map(|p| p.demo_jobs)
            .unwrap_or_default(),
        procs: launch.started.clone(),
    };
    save_state(&launch.dir, &state)?;
    let finals = launch
        .run_demo_jobs(&deployment, &dispatcher, &mut state, resumed)
        .await?;
    launch
        .report(&chain, &deployment, &dispatcher, &nodes, finals, resumed)
        .await
}

impl Launch<'_> {
    /// Step 1: the chain, with its state in the folder so the next `up` finds the same contract.
    async fn start_chain(&mut self) -> Result<Chain, TestnetError> {
        (self.progress)(Progress::Step(
            "starting anvil (EVM paris, legacy transactions)",
        ));
        let progress = &mut *self.progress;
        let anvil_bin = crate::install::ensure_anvil(self.opts.anvil.as_deref(), &mut |m| {
            progress(Progress::Step(m))
        })?;
        let rpc_port = match &self.previous {
            Some(p) => p
                .rpc
                .rsplit(':')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(self.opts.rpc_port),
            None => port_or_free(self.opts.rpc_port)?,
        };
        let chain_id = self
            .previous
            .as_ref()
            .map(|p| p.chain_id)
            .unwrap_or(self.opts.chain_id);
        let anvil_state = self.dir.join("anvil-state.json");
        let anvil_args: Vec<String> = vec![
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            rpc_port.to_string(),
            "--chain-id".into(),
            chain_id.to_string(),
            "--hardfork".into(),
            "paris".into(),
            "--state".into(),
            anvil_state.display().to_string(),
            "--state-interval".into(),
            "2".into(),
        ];
        let anvil = procs::spawn(
            "anvil",
            &anvil_bin,
            &anvil_args,
            &self.logs.join("anvil.log"),
            &anvil_state.display().to_string(),
        )
        .map_err(|e| TestnetError::Io(format!("starting {}: {e}", anvil_bin.display())))?;
        self.started.push(anvil.clone());
        let rpc = format!("http://127.0.0.1:{rpc_port}");
        (self.progress)(Progress::Step("waiting for anvil to answer"));
        wait_for("anvil to answer", Duration::from_secs(20), || async {
            if !procs::alive(&anvil) {
                return None;
            }
            let provider = pocmesh_chain::client::provider(&rpc).ok()?;
            let once = pocmesh_chain::RetryPolicy {
                attempts: 1,
                ..Default::default()
            };
            pocmesh_chain::client::chain_id(&provider, &rpc, once)
                .await
                .ok()
        })
        .await
        .map_err(|_| {
            TestnetError::Io(format!(
                "anvil did not answer on {rpc}; is the port in use? see {}",
                self.logs.join("anvil.log").display()
            ))
        })?;
        Ok(Chain { rpc, chain_id })
    }

    /// Step 2: the contract and dispatcher key: reused when the chain still has them.
    async fn deploy(&mut self, chain: &Chain) -> Result<Deployment, TestnetError> {
        let rpc = &chain.rpc;
        let admin =
            SecretKey::from_hex(DEV_KEY_0).map_err(|e| TestnetError::Internal(e.to_string()))?;
        let admin_client = ChainClient::connect(rpc, &admin, TxPolicy::default()).await?;
        let dispatcher_dir = self.dir.join("dispatcher");
        std::fs::create_dir_all(&dispatcher_dir).map_err(|e| io(&dispatcher_dir, e))?;
        let (dispatcher_key, _) = SecretKey::load_or_create(&dispatcher_dir.join("dispatcher.key"))
            .map_err(|e| TestnetError::Internal(e.to_string()))?;
        let previous = self
            .previous
            .as_ref()
            .map(|p| (p.contract, p.contract_block));
        let (contract, contract_block) = match previous {
            // `at` checks that a ProofOfCompute answers there.
            Some((c, block)) if ProofOfCompute::at(rpc, c).await.is_ok() => {
                (self.progress)(Progress::Step(
                    "resuming: the contract is on the saved chain",
                ));
                (c, block)
            }
            _ => {
                (self.progress)(Progress::Step("deploying ProofOfCompute"));
                let d = deploy(&admin_client, &[]).await?;
                (d.address, d.block)
            }
        };
        (self.progress)(Progress::Step(
            "funding the dispatcher key and granting DISPATCHER_ROLE",
        ));
        let balance = ChainClient::connect(rpc, &dispatcher_key, TxPolicy::default())
            .await?
            .balance()
            .await?;
        if balance < 10u128.pow(18).into() {
            admin_client
                .transfer(dispatcher_key.address(), (100u128 * 10u128.pow(18)).into())
                .await?;
        }
        grant_dispatcher(&admin_client, contract, dispatcher_key.address()).await?;
        Ok(Deployment {
            contract,
            contract_block,
            dispatcher_key,
            dispatcher_dir,
        })
    }

    /// Step 3: the dispatcher, waited for until it has written where it listens.
    async fn start_dispatcher(
        &mut self,
        chain: &Chain,
        deployment: &Deployment,
    ) -> Result<DispatcherUp, TestnetError> {
        (self.progress)(Progress::Step("starting the dispatcher"));
        let net = pocmesh_protocol::topics::network_for_chain(chain.chain_id);
        let api_port = match &self.previous {
            Some(p) => p
                .api
                .rsplit(':')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(self.opts.api_port),
            None => port_or_free(self.opts.api_port)?,
        };
        let api = format!("http://127.0.0.1:{api_port}");
        let mesh_port = match &self.previous {
            Some(p) => p.mesh_port,
            None => free_port()?,
        };
        let dispatcher_dir = &deployment.dispatcher_dir;
        let listen = format!("/ip4/127.0.0.1/tcp/{mesh_port}");
        let hb = self.opts.heartbeat_ms.to_string();
        let dispatcher_args: Vec<String> = [
            "dispatcher",
            "run",
            "--rpc",
            &chain.rpc,
            "--contract",
            &deployment.contract.to_string(),
            "--contract-block",
            &deployment.contract_block.to_string(),
            "--key",
            &dispatcher_dir.join("dispatcher.key").display().to_string(),
            "--data-dir",
            &dispatcher_dir.display().to_string(),
            "--api",
            &format!("127.0.0.1:{api_port}"),
            "--net",
            &net,
            "--listen",
            &listen,
            "--no-mdns",
            "--heartbeat-ms",
            &hb,
            "--batch-age-ms",
            "1500",
            // Every node of a local network runs on this machine.
            "--loopback-quorum",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let _ = std::fs::remove_file(pocmesh_dispatcher::daemon::info_path(dispatcher_dir));
        let dispatcher = procs::spawn(
            "dispatcher",
            &self.opts.exe,
            &dispatcher_args,
            &self.logs.join("dispatcher.log"),
            &dispatcher_dir.display().to_string(),
        )
        .map_err(|e| TestnetError::Io(format!("starting {}: {e}", self.opts.exe.display())))?;
        self.started.push(dispatcher.clone());
        let info_file = pocmesh_dispatcher::daemon::info_path(dispatcher_dir);
        let bootstrap: String = wait_for(
            "the dispatcher to start",
            Duration::from_secs(30),
            || async {
                if !procs::alive(&dispatcher) {
                    return None;
                }
                let text = std::fs::read_to_string(&info_file).ok()?;
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                v["listen"].as_array()?.first()?.as_str().map(String::from)
            },
        )
        .await
        .map_err(|e| {
            TestnetError::Io(format!(
                "{e}; see {}",
                self.logs.join("dispatcher.log").display()
            ))
        })?;
        Ok(DispatcherUp {
            api,
            net,
            mesh_port,
            bootstrap,
        })
    }

    /// Step 4: the nodes (the saved ones, plus new ones up to the number asked for), waited for
    /// until the dispatcher has heard every one.
    async fn start_nodes(
        &mut self,
        chain: &Chain,
        deployment: &Deployment,
        dispatcher: &DispatcherUp,
    ) -> Result<Vec<NodeEntry>, TestnetError> {
        let mut nodes: Vec<NodeEntry> = self
            .previous
            .as_ref()
            .map(|p| p.nodes.clone())
            .unwrap_or_default();
        while nodes.len() < self.opts.nodes.max(nodes.len()) {
            let name = format!("node-{}", nodes.len() + 1);
            let data_dir = self.dir.join("nodes").join(&name);
            std::fs::create_dir_all(&data_dir).map_err(|e| io(&data_dir, e))?;
            let (wallet_key, _) = SecretKey::load_or_create(&data_dir.join("wallet.key"))
                .map_err(|e| TestnetError::Internal(e.to_string()))?;
            nodes.push(NodeEntry {
                name,
                wallet: wallet_key.address(),
                data_dir: data_dir.display().to_string(),
            });
        }
        (self.progress)(Progress::Step("starting the volunteer nodes"));
        let hb = self.opts.heartbeat_ms.to_string();
        let consent = pocmesh_protocol::consent::consent_hash().to_string();
        for node in &nodes {
            let args: Vec<String> = [
                "node",
                "run",
                "--wallet",
                &node.wallet.to_string(),
                "--data-dir",
                &node.data_dir,
                "--net",
                &dispatcher.net,
                "--bootstrap",
                &dispatcher.bootstrap,
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--no-mdns",
                "--status",
                "127.0.0.1:0",
                "--rpc",
                &chain.rpc,
                "--contract",
                &deployment.contract.to_string(),
                "--heartbeat-ms",
                &hb,
                "--max-jobs",
                "2",
                // The developer running a local network is its nodes' volunteer; the text is
                // `pocmesh node run --show-consent`.
                "--accept-policy",
                &consent,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let p = procs::spawn(
                &node.name,
                &self.opts.exe,
                &args,
                &self.logs.join(format!("{}.log", node.name)),
                &node.data_dir,
            )
            .map_err(|e| TestnetError::Io(format!("starting {}: {e}", self.opts.exe.display())))?;
            self.started.push(p);
        }
        let client = ApiClient::new(&dispatcher.api);
        let total = nodes.len();
        (self.progress)(Progress::Nodes { online: 0, total });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let online = client
                .status()
                .await
                .map(|s: StatusView| s.nodes_online)
                .unwrap_or(0);
            (self.progress)(Progress::Nodes { online, total });
            if online >= total {
                return Ok(nodes);
            }
            if Instant::now() > deadline {
                return Err(TestnetError::Timeout(format!(
                    "every node to come online within 60 s ({online} of {total} heard); see {}",
                    self.logs.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Step 5: demo jobs of each type, followed until they are on chain; their final states.
    async fn run_demo_jobs(
        &mut self,
        deployment: &Deployment,
        dispatcher: &DispatcherUp,
        state: &mut TestnetState,
        resumed: bool,
    ) -> Result<std::collections::BTreeMap<String, u64>, TestnetError> {
        let per_type = self.opts.jobs.unwrap_or(if resumed { 0 } else { 5 });
        let token_file = pocmesh_dispatcher::daemon::token_path(&deployment.dispatcher_dir);
        let token = std::fs::read_to_string(&token_file)
            .map_err(|e| io(&token_file, e))?
            .trim()
            .to_string();
        let client = ApiClient::new(&dispatcher.api).with_token(token);
        let mut ids = Vec::new();
        if per_type > 0 {
            (self.progress)(Progress::Step("submitting demo jobs"));
            for i in 0..per_type {
                for request in demo_requests(i as u64) {
                    let s: Submitted = client.submit(&request).await?;
                    ids.push(s.id.to_string());
                }
            }
            state.demo_jobs.extend(ids.iter().cloned());
            save_state(&self.dir, state)?;
        }
        let total = ids.len() as u64;
        let deadline = Instant::now() + self.opts.jobs_timeout;
        let mut finals = std::collections::BTreeMap::new();
        while !ids.is_empty() {
            finals.clear();
            for id in &ids {
                if let Ok(j) = client.job(id).await
                    && matches!(j.state.as_str(), "recorded" | "failed" | "rejected")
                {
                    *finals.entry(j.state).or_insert(0u64) += 1;
                }
            }
            let done: u64 = finals.values().sum();
            (self.progress)(Progress::Jobs {
                done: finals.get("recorded").copied().unwrap_or(0),
                total,
            });
            if done == total {
                break;
            }
            if Instant::now() > deadline {
                return Err(TestnetError::Timeout(format!(
                    "demo jobs: {done} of {total} finished within {} s; see {}",
                    self.opts.jobs_timeout.as_secs(),
                    self.logs.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(finals)
    }

    /// Step 6: where to look: the units on chain per wallet, the dashboard, the token file.
    async fn report(
        &self,
        chain: &Chain,
        deployment: &Deployment,
        dispatcher: &DispatcherUp,
        nodes: &[NodeEntry],
        jobs: std::collections::BTreeMap<String, u64>,
        resumed: bool,
    ) -> Result<NetworkReport, TestnetError> {
        let poc = ProofOfCompute::at(&chain.rpc, deployment.contract).await?;
        let mut wallets = Vec::new();
        for n in nodes {
            wallets.push(WalletReport {
                node: n.name.clone(),
                wallet: n.wallet,
                units: poc.units(n.wallet).await?,
            });
        }
        Ok(NetworkReport {
            dashboard: format!("{}/", dispatcher.api),
            token_file: pocmesh_dispatcher::daemon::token_path(&deployment.dispatcher_dir)
                .display()
                .to_string(),
            total_units: poc.total_units().await?,
            rpc: chain.rpc.clone(),
            chain_id: chain.chain_id,
            contract: deployment.contract,
            api: dispatcher.api.clone(),
            dispatcher: deployment.dispatcher_key.address(),
            wallets,
            jobs,
            dir: self.dir.display().to_string(),
            resumed,
        })
    }
}

/// The demo jobs of round `i`: one `hash` and one `wasm` (the bundled kernel).
pub fn demo_requests(i: u64) -> Vec<SubmitRequest> {
    let input =
        pocmesh_executor::kernel_input(20_000, format!("pocmesh demo input {i}").as_bytes());
    vec![
        SubmitRequest {
            job_type: "hash".into(),
            iterations: Some(1_000_000 + i * 250_000),
            ..SubmitRequest::default()
        },
        SubmitRequest {
            job_type: "wasm".into(),
            module: Some(Bytes(pocmesh_executor::KERNEL_WAT.as_bytes().to_vec())),
            input: Some(Bytes(input)),
            ..SubmitRequest::default()
        },
    ]
}

/// Stops every process of the network in `dir` by PID (nodes, dispatcher, then anvil, which
/// saves the chain on the way out). Returns the processes that would not stop.
pub fn down(dir: &Path) -> Result<Vec<Proc>, TestnetError> {
    let Some(mut state) = load_state(dir)? else {
        return Err(TestnetError::NotFound(format!(
            "no local network in {} (no testnet.json)",
            dir.display()
        )));
    };
    let mut order = state.procs.clone();
    // Nodes first, then the dispatcher, the chain last.
    order.sort_by_key(|p| match p.name.as_str() {
        "anvil" => 2,
        "dispatcher" => 1,
        _ => 0,
    });
    let mut stuck = Vec::new();
    for p in &order {
        if !procs::stop(p, Duration::from_secs(15)) {
            stuck.push(p.clone());
        }
    }
    state.procs = stuck.clone();
    save_state(dir, &state)?;
    Ok(stuck)
}

/// A network's saved state and each of its processes with whether it runs.
pub type NetworkStatus = (TestnetState, Vec<(Proc, bool)>);

/// The network in `dir`, if there is one.
pub fn status(dir: &Path) -> Result<Option<NetworkStatus>, TestnetError> {
    let Some(state) = load_state(dir)? else {
        return Ok(None);
    };
    let procs = state
        .procs
        .iter()
        .map(|p| (p.clone(), procs::alive(p)))
        .collect();
    Ok(Some((state, procs)))
}
