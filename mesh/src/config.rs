//! Settings of the network layer, shared by node and dispatcher.

use std::time::Duration;

use libp2p::Multiaddr;
use pocmesh_protocol::{DEFAULT_MAX_SKEW_MS, ReplayConfig};

/// How a peer joins the mesh.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Network name (`xdc-apothem`, `devnet-<chain id>`); part of every topic name.
    pub net: String,
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/4001`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start.
    pub bootstrap: Vec<Multiaddr>,
    /// Allowed clock difference for gossiped messages, milliseconds.
    pub max_skew_ms: u64,
    /// gossipsub's own heartbeat (mesh maintenance), not pocmesh's node heartbeat.
    pub gossip_heartbeat: Duration,
    /// Memory bounds of the per-sender sequence tracking.
    pub replay: ReplayConfig,
}

impl MeshConfig {
    /// Defaults for network `net`, listening on all interfaces on a port the OS picks.
    pub fn new(net: impl Into<String>) -> Self {
        MeshConfig {
            net: net.into(),
            listen: Vec::new(),
            bootstrap: Vec::new(),
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
            gossip_heartbeat: Duration::from_secs(1),
            replay: ReplayConfig::default(),
        }
    }

    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        pocmesh_protocol::topics::validate_network_name(&self.net)
            .map_err(|e| format!("net: {e}"))?;
        if self.gossip_heartbeat.is_zero() {
            return Err("gossip_heartbeat must be above zero".into());
        }
        if self.max_skew_ms == 0 {
            return Err("max_skew_ms must be above zero".into());
        }
        Ok(())
    }
}
