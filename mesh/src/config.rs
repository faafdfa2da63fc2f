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
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Wallets a heartbeat or opt-out may not name (besides the zero address, which every
    /// receiver refuses): the contract's own address. Such messages are dropped, not relayed.
    pub refused_wallets: Vec<pocmesh_protocol::Address>,
    /// Least time between two heartbeats of one sender that are accepted and relayed, ms
    /// (nodes beat every 5 s ± 20 % by default and never faster than every 500 ms).
    pub min_heartbeat_gap_ms: u64,
    /// Connection bounds (total, per peer, per IP, pending handshakes).
    pub connections: crate::limits::ConnectionCaps,
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
            mdns: true,
            refused_wallets: Vec::new(),
            min_heartbeat_gap_ms: DEFAULT_MIN_HEARTBEAT_GAP_MS,
            connections: crate::limits::ConnectionCaps::default(),
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
        self.connections.validate()?;
        Ok(())
    }
}

/// Default least time between two accepted heartbeats of one sender, ms.
pub const DEFAULT_MIN_HEARTBEAT_GAP_MS: u64 = 250;

/// The network section of a daemon's config file (`[network]`), shared by node and dispatcher.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetSettings {
    /// Network name: `devnet-<chain id>` locally, `xdc-apothem` on Apothem.
    pub net: String,
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Multiaddrs of peers to join through, ideally ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// LAN discovery with mDNS.
    pub mdns: bool,
    /// Allowed clock difference for gossiped messages, milliseconds.
    pub max_skew_ms: u64,
    /// Established connections in total.
    pub max_connections: u32,
    /// Established inbound connections from one IP address.
    pub max_connections_per_ip: u32,
}

impl Default for NetSettings {
    fn default() -> Self {
        NetSettings {
            net: "xdc-apothem".into(),
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".into(),
                "/ip4/0.0.0.0/udp/0/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
            max_connections: crate::limits::ConnectionCaps::default().max_established,
            max_connections_per_ip: crate::limits::ConnectionCaps::default().max_per_ip,
        }
    }
}

impl NetSettings {
    /// The mesh configuration these settings describe; the error names the bad field.
    pub fn to_mesh_config(&self) -> Result<MeshConfig, String> {
        let parse = |field: &str, list: &[String]| -> Result<Vec<Multiaddr>, String> {
            list.iter()
                .map(|a| {
                    a.parse::<Multiaddr>().map_err(|e| {
                        format!("network.{field}: `{a}` is not a multiaddr ({e}); example: /ip4/127.0.0.1/tcp/4001")
                    })
                })
                .collect()
        };
        let mut config = MeshConfig::new(self.net.clone());
        config.listen = parse("listen", &self.listen)?;
        config.bootstrap = parse("bootstrap", &self.bootstrap)?;
        config.mdns = self.mdns;
        config.max_skew_ms = self.max_skew_ms;
        if self.max_connections == 0 {
            return Err("network.max_connections must be above 0 (default 4096)".into());
        }
        if self.max_connections_per_ip == 0 {
            return Err(
                "network.max_connections_per_ip (--max-connections-per-ip) must be above 0 (default 64)"
                    .into(),
            );
        }
        config.connections.max_established = self.max_connections;
        config.connections.max_per_ip = self.max_connections_per_ip;
        config.validate().map_err(|e| format!("network.{e}"))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_bounds_of_zero_are_refused_by_their_setting_name() {
        let ok = NetSettings {
            net: "devnet-551".into(),
            ..NetSettings::default()
        };
        assert!(ok.to_mesh_config().is_ok());
        let e = NetSettings {
            max_connections_per_ip: 0,
            ..ok.clone()
        }
        .to_mesh_config()
        .expect_err("zero per IP");
        assert!(e.contains("--max-connections-per-ip"), "{e}");
        let e = NetSettings {
            max_connections: 0,
            ..ok
        }
        .to_mesh_config()
        .expect_err("zero in total");
        assert!(e.contains("network.max_connections "), "{e}");
    }
}
