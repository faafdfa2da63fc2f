//! Peer scoring: how much a misbehaving peer loses, in one place.
//!
//! gossipsub scores peers per topic; the only behaviour pocmesh scores today is delivering
//! messages that fail validation. The penalty is `count² × weight` with the count decaying each
//! second, so one bad message costs a little and a stream of them quickly drives the sender
//! below the graylist threshold, where its messages are ignored and it is not gossiped to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams};

/// Penalty weight per invalid message (squared count): 4 recent invalid messages put a peer
/// below the publish threshold (−50 at 5), 7 below the graylist (−98 < −80).
pub const INVALID_MESSAGE_WEIGHT: f64 = -2.0;
/// Per-second decay of the invalid-message count (half-life ≈ 69 s).
pub const INVALID_MESSAGE_DECAY: f64 = 0.99;

/// Score parameters with invalid-message penalties on each of `topics`.
pub fn score_params(topics: &[TopicHash]) -> PeerScoreParams {
    let mut params = PeerScoreParams::default();
    // gossipsub penalises many peers behind one IP (Sybil defence). Loopback peers are the
    // operator's own local network (`pocmesh testnet`, tests, benchmarks): exempt them, or a
    // local network of more than 10 nodes would graylist itself.
    params.ip_colocation_factor_whitelist.extend([
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]);
    for topic in topics {
        params.topics.insert(
            topic.clone(),
            TopicScoreParams {
                topic_weight: 1.0,
                // Only invalid deliveries count: the mesh-time and delivery-rate terms reward
                // or punish quiet peers, which says nothing about honesty on small meshes.
                time_in_mesh_weight: 0.0,
                first_message_deliveries_weight: 0.0,
                mesh_message_deliveries_weight: 0.0,
                mesh_failure_penalty_weight: 0.0,
                invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
                invalid_message_deliveries_decay: INVALID_MESSAGE_DECAY,
                ..TopicScoreParams::default()
            },
        );
    }
    params
}

/// gossipsub's default thresholds (gossip −10, publish −50, graylist −80).
pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds::default()
}
