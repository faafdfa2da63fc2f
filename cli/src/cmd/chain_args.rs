//! Flags shared by the commands that talk to a chain: RPC, contract, signing key.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use pocmesh_protocol::{Address, SecretKey};

/// Where the chain and the contract are.
#[derive(Debug, Clone, Args)]
pub(crate) struct RpcArgs {
    /// JSON-RPC URL of the chain (XDC Apothem: https://rpc.apothem.network; local: see `pocmesh testnet`).
    #[arg(long, env = "POCMESH_RPC", value_name = "URL")]
    pub(crate) rpc: String,
}

/// The contract.
#[derive(Debug, Clone, Args)]
pub(crate) struct ContractArgs {
    /// Address of the ProofOfCompute contract (0x… or xdc…).
    #[arg(long, env = "POCMESH_CONTRACT", value_name = "ADDR")]
    pub(crate) contract: Address,
}

/// The key that signs transactions.
#[derive(Debug, Clone, Args)]
pub(crate) struct SignerArgs {
    /// Key file (as written by `pocmesh keys new`; mode 0600).
    #[arg(
        long,
        env = "POCMESH_KEY",
        value_name = "FILE",
        conflicts_with = "private_key"
    )]
    pub(crate) key: Option<PathBuf>,
    /// The secret key as hex. Visible to other local users in the process list: prefer --key.
    #[arg(
        long,
        env = "POCMESH_PRIVATE_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    pub(crate) private_key: Option<String>,
}

impl SignerArgs {
    /// Loads the key from whichever flag was given.
    pub(crate) fn load(&self) -> anyhow::Result<SecretKey> {
        match (&self.key, &self.private_key) {
            (Some(path), _) => SecretKey::load(path)
                .with_context(|| format!("loading the signing key {}", path.display())),
            (None, Some(hex)) => SecretKey::from_hex(hex).context("--private-key"),
            (None, None) => bail!(
                "a signing key is needed: pass --key FILE (see `pocmesh keys new`) or --private-key HEX"
            ),
        }
    }
}

/// A tokio runtime for one command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
