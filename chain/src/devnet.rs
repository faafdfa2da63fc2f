//! A local chain ready for pocmesh in one call: anvil started, `ProofOfCompute` deployed by
//! anvil's development account 0, and development account 1 (funded by anvil) granted
//! DISPATCHER_ROLE. The tests, `pocmesh bench dispatch` and the local testnet's chain start from
//! here instead of each repeating the same five steps.

use std::path::Path;

use pocmesh_protocol::{Address, SecretKey};

use crate::anvil::{Anvil, AnvilConfig, DEV_KEY_0, DEV_KEY_1, default_tool_dirs, locate_anvil};
use crate::{ChainClient, ChainError, Deployment, Recorder, TxPolicy, deploy};

/// A running anvil with the contract deployed and a dispatcher granted.
#[derive(Debug)]
pub struct Devnet {
    /// The chain (stopped when this is dropped).
    pub anvil: Anvil,
    /// The deployer, holding the admin role (development account 0).
    pub admin: SecretKey,
    /// A funded key holding DISPATCHER_ROLE (development account 1).
    pub dispatcher: SecretKey,
    /// The contract's deployment.
    pub deployment: Deployment,
}

impl Devnet {
    /// Starts anvil (`binary`, or the one found in pocmesh's tools folders, then on PATH) with
    /// `config`, deploys the contract and grants the dispatcher key.
    pub async fn start(binary: Option<&Path>, config: &AnvilConfig) -> Result<Devnet, ChainError> {
        let bin = locate_anvil(binary, &default_tool_dirs())?;
        let anvil = Anvil::spawn(&bin, config)?;
        let admin = SecretKey::from_hex(DEV_KEY_0).map_err(|e| dev_key(&e))?;
        let dispatcher = SecretKey::from_hex(DEV_KEY_1).map_err(|e| dev_key(&e))?;
        let admin_client =
            ChainClient::connect(&anvil.rpc_url(), &admin, TxPolicy::default()).await?;
        let deployment = deploy(&admin_client, &[dispatcher.address()]).await?;
        Ok(Devnet {
            anvil,
            admin,
            dispatcher,
            deployment,
        })
    }

    /// The JSON-RPC URL.
    pub fn rpc(&self) -> String {
        self.anvil.rpc_url()
    }

    /// The contract's address.
    pub fn contract(&self) -> Address {
        self.deployment.address
    }

    /// A client signing as `key`.
    pub async fn client(&self, key: &SecretKey) -> Result<ChainClient, ChainError> {
        ChainClient::connect(&self.rpc(), key, TxPolicy::default()).await
    }

    /// A batch recorder signing as the dispatcher key.
    pub async fn recorder(&self) -> Result<Recorder, ChainError> {
        Recorder::new(self.client(&self.dispatcher).await?, self.contract()).await
    }
}

fn dev_key(e: &dyn std::fmt::Display) -> ChainError {
    ChainError::Anvil(format!("anvil's development key is unreadable: {e}"))
}
