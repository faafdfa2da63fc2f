//! The composed libp2p behaviour of a pocmesh peer and its events.

use libp2p::gossipsub::{self};
use libp2p::request_response::{self};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{StreamProtocol, identify, kad, mdns, ping};
use pocmesh_protocol::Bytes;

use super::KAD_PROTOCOL;

/// The composed libp2p behaviour of a pocmesh peer.
#[derive(NetworkBehaviour)]
#[behaviour(to_swarm = "BehaviourEvent")]
pub(super) struct Behaviour {
    /// Heartbeat and dispatcher topics, application-validated, scored.
    pub(super) gossipsub: gossipsub::Behaviour,
    /// The job protocol: offers, replies, results, receipts as envelopes, size-capped.
    pub(super) jobs: request_response::Behaviour<crate::codec::FrameCodec>,
    /// Exchanges listen addresses and protocols with peers.
    pub(super) identify: identify::Behaviour,
    /// Liveness of connections.
    pub(super) ping: ping::Behaviour,
    /// Peer discovery beyond the bootstrap peers: a pocmesh-only Kademlia DHT.
    pub(super) kad: kad::Behaviour<kad::store::MemoryStore>,
    /// LAN discovery; off when the operator says so (`--no-mdns`).
    pub(super) mdns: Toggle<mdns::tokio::Behaviour>,
    /// Total, per-peer and pending-handshake connection bounds.
    pub(super) limits: libp2p::connection_limits::Behaviour,
    /// Inbound connections per remote IP.
    pub(super) per_ip: crate::limits::PerIp,
}

#[derive(Debug)]
pub(super) enum BehaviourEvent {
    Gossipsub(Box<gossipsub::Event>),
    Jobs(Box<request_response::Event<Bytes, Bytes>>),
    Identify(Box<identify::Event>),
    Kad(Box<kad::Event>),
    Mdns(mdns::Event),
    Ping,
}

impl From<kad::Event> for BehaviourEvent {
    fn from(e: kad::Event) -> Self {
        BehaviourEvent::Kad(Box::new(e))
    }
}
impl From<mdns::Event> for BehaviourEvent {
    fn from(e: mdns::Event) -> Self {
        BehaviourEvent::Mdns(e)
    }
}

impl From<gossipsub::Event> for BehaviourEvent {
    fn from(e: gossipsub::Event) -> Self {
        BehaviourEvent::Gossipsub(Box::new(e))
    }
}
impl From<request_response::Event<Bytes, Bytes>> for BehaviourEvent {
    fn from(e: request_response::Event<Bytes, Bytes>) -> Self {
        BehaviourEvent::Jobs(Box::new(e))
    }
}
impl From<identify::Event> for BehaviourEvent {
    fn from(e: identify::Event) -> Self {
        BehaviourEvent::Identify(Box::new(e))
    }
}
impl From<std::convert::Infallible> for BehaviourEvent {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}
impl From<ping::Event> for BehaviourEvent {
    fn from(_: ping::Event) -> Self {
        BehaviourEvent::Ping
    }
}

/// Kademlia for a mesh of small peers: routing-table entries only from bootstrap peers, the LAN
/// and identify (not from every inbound connection), and our own refresh schedule — kad's
/// automatic re-bootstrap on every new entry floods a 100-peer mesh with random walks.
pub(super) fn kad_config() -> kad::Config {
    let mut c = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    c.set_kbucket_inserts(kad::BucketInserts::Manual);
    c.set_periodic_bootstrap_interval(None);
    c
}
