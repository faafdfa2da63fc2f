//! # pocmesh-testnet
//!
//! The local XDC-like network behind `pocmesh testnet up|down|status` ([`network`]): a real
//! anvil on 127.0.0.1 with XDC-like settings (EVM `paris`, legacy transactions, devnet chain id)
//! whose state lives in the network's folder, the `ProofOfCompute` contract, a funded
//! dispatcher key holding `DISPATCHER_ROLE`, a dispatcher process and N volunteer-node
//! processes ([`procs`]: detached, logged, stopped by PID), and demo jobs followed until their
//! credits are on chain.
//!
//! [`bench`] is `pocmesh bench dispatch`: a chain, a dispatcher and nodes, measured end to end
//! (it lives here because it starts both daemons); [`bench_pages`] is `pocmesh bench pages`, the
//! Provider Hub's pages timed over HTTP on the same kind of network.
//!
//! [`start_chain`] is the in-process chain part alone (anvil + contract + a demo batch), for
//! tests and tools that need a chain without the mesh.
//!
//! It owns no chain or mesh logic: everything goes through `pocmesh-chain`, and the dispatcher
//! and nodes are the `pocmesh` binary's own daemons.

pub mod bench;
pub mod bench_pages;
pub mod install;
pub mod network;
pub mod procs;

use std::path::PathBuf;

use pocmesh_chain::anvil::{Anvil, AnvilConfig, DEVNET_CHAIN_ID};
use pocmesh_chain::{ChainError, Devnet, RecordOutcome};
use pocmesh_protocol::{Address, BatchPlan, Hash32, JobId, ReceiptLeaf, keccak256};
use serde::Serialize;

/// Why the local network could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    /// A chain step failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A built-in key or demo batch is invalid (a bug).
    #[error("internal: {0}")]
    Internal(String),
    /// A file or process could not be handled.
    #[error("{0}")]
    Io(String),
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A network already runs in that folder.
    #[error("a local network already runs in {0}")]
    AlreadyRunning(String),
    /// No network in that folder.
    #[error("{0}")]
    NotFound(String),
    /// The dispatcher's API refused or did not answer.
    #[error(transparent)]
    Api(#[from] pocmesh_dispatcher::api::client::ClientError),
}

/// How to start the local chain.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// anvil executable; default: pocmesh's tools folders, then PATH.
    pub anvil: Option<PathBuf>,
    /// RPC port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Chain id.
    pub chain_id: u64,
    /// Demo receipts recorded at start (0: none).
    pub demo_receipts: u64,
    /// Where anvil's log goes.
    pub log_file: Option<PathBuf>,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            anvil: None,
            port: 8545,
            chain_id: DEVNET_CHAIN_ID,
            demo_receipts: 30,
            log_file: None,
        }
    }
}

/// A wallet and its units on the local chain.
#[derive(Debug, Clone, Serialize)]
pub struct WalletUnits {
    /// The wallet.
    pub wallet: Address,
    /// Its units, read from the contract.
    pub units: u128,
}

/// Where everything is, for printing.
#[derive(Debug, Clone, Serialize)]
pub struct ChainInfo {
    /// JSON-RPC URL.
    pub rpc: String,
    /// Chain id.
    pub chain_id: u64,
    /// The pocmesh network name (`devnet-<chain id>`).
    pub net: String,
    /// The contract.
    pub contract: Address,
    /// Its deployment transaction.
    pub deploy_tx: Hash32,
    /// The admin account (anvil development key 0).
    pub admin: Address,
    /// The dispatcher account (anvil development key 1), granted DISPATCHER_ROLE.
    pub dispatcher: Address,
    /// The demo batch, if one was recorded.
    pub demo_batch: Option<RecordOutcome>,
    /// Demo wallets with their units.
    pub wallets: Vec<WalletUnits>,
}

/// The running local chain; anvil stops when this is dropped.
#[derive(Debug)]
pub struct LocalChain {
    /// The anvil process.
    pub anvil: Anvil,
    /// What runs where.
    pub info: ChainInfo,
}

/// The demo wallets credited by the demo batch.
pub fn demo_wallets() -> [Address; 3] {
    [1u8, 2, 3].map(|i| {
        let h = keccak256([b"pocmesh demo wallet ".as_slice(), &[i]].concat());
        let mut a = [0u8; 20];
        a.copy_from_slice(&h[12..]);
        Address(a)
    })
}

fn demo_plan(n: u64) -> Result<BatchPlan, TestnetError> {
    let wallets = demo_wallets();
    let receipts = (0..n)
        .map(|j| ReceiptLeaf {
            job: JobId::from(keccak256(
                [b"pocmesh demo job ".as_slice(), &j.to_be_bytes()].concat(),
            )),
            provider: wallets[(j % 3) as usize],
            node: wallets[(j % 3) as usize],
            units: 1 + j % 5,
            result_hash: Hash32::keccak(j.to_be_bytes()),
        })
        .collect();
    BatchPlan::new(receipts).map_err(|e| TestnetError::Internal(e.to_string()))
}

/// Starts anvil, deploys the contract, grants the dispatcher, records the demo batch.
pub async fn start_chain(
    config: &ChainConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<LocalChain, TestnetError> {
    progress("starting anvil (EVM paris, legacy transactions) and deploying ProofOfCompute");
    let devnet = Devnet::start(
        config.anvil.as_deref(),
        &AnvilConfig {
            chain_id: config.chain_id,
            port: config.port,
            log_file: config.log_file.clone(),
            ..AnvilConfig::default()
        },
    )
    .await?;
    let recorder = devnet.recorder().await?;
    let Devnet {
        anvil,
        admin: admin_key,
        dispatcher: dispatcher_key,
        deployment,
    } = devnet;
    let demo_batch = if config.demo_receipts > 0 {
        progress("recording a demo batch");
        Some(recorder.record(&demo_plan(config.demo_receipts)?).await?)
    } else {
        None
    };
    let mut wallets = Vec::new();
    for wallet in demo_wallets() {
        wallets.push(WalletUnits {
            wallet,
            units: recorder.contract().units(wallet).await?,
        });
    }
    let info = ChainInfo {
        rpc: anvil.rpc_url(),
        chain_id: anvil.chain_id(),
        net: pocmesh_protocol::topics::network_for_chain(anvil.chain_id()),
        contract: deployment.address,
        deploy_tx: deployment.tx,
        admin: admin_key.address(),
        dispatcher: dispatcher_key.address(),
        demo_batch,
        wallets,
    };
    Ok(LocalChain { anvil, info })
}
