//! Shared setup: one anvil per test on a port the OS picks, killed by PID when dropped.

use pocmesh_chain::anvil::{Anvil, AnvilConfig, DEV_KEY_0, default_tool_dirs, locate_anvil};
use pocmesh_chain::{ChainClient, Deployment, Recorder, TxPolicy, deploy};
use pocmesh_protocol::SecretKey;

/// A running anvil, its admin/dispatcher client, a deployed contract and a recorder.
pub(crate) struct Chain {
    pub(crate) anvil: Anvil,
    pub(crate) admin: ChainClient,
    pub(crate) deployment: Deployment,
    pub(crate) recorder: Recorder,
}

pub(crate) fn key(hex: &str) -> SecretKey {
    SecretKey::from_hex(hex).expect("test key")
}

pub(crate) fn start_anvil(config: AnvilConfig) -> Anvil {
    let bin = locate_anvil(None, &default_tool_dirs())
        .unwrap_or_else(|e| panic!("{e} (the test needs a real anvil; .ci/run installs it)"));
    Anvil::spawn(&bin, &config).expect("anvil starts")
}

/// anvil + contract deployed by dev key 0, which is also granted DISPATCHER_ROLE.
pub(crate) async fn chain() -> Chain {
    let anvil = start_anvil(AnvilConfig::default());
    let admin = ChainClient::connect(&anvil.rpc_url(), &key(DEV_KEY_0), TxPolicy::default())
        .await
        .expect("connect");
    let deployment = deploy(&admin, &[admin.address()]).await.expect("deploy");
    let recorder = Recorder::new(admin.clone(), deployment.address)
        .await
        .expect("recorder");
    Chain {
        anvil,
        admin,
        deployment,
        recorder,
    }
}

/// `expect_recorded()` on a record outcome, with the outcome in the panic message.
pub(crate) trait ExpectRecorded {
    /// Panics unless the batch was recorded by this call.
    fn expect_recorded(self) -> pocmesh_chain::RecordOutcome;
}

impl ExpectRecorded for pocmesh_chain::RecordOutcome {
    fn expect_recorded(self) -> pocmesh_chain::RecordOutcome {
        assert!(
            matches!(self, pocmesh_chain::RecordOutcome::Recorded { .. }),
            "expected Recorded, got {self:?}"
        );
        self
    }
}
