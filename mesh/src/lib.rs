//! # pocmesh-mesh
//!
//! How pocmesh messages travel: one libp2p swarm (TCP and QUIC, noise, yamux, identify, ping,
//! Kademlia on `/pocmesh/kad/1` holding bootstrap and LAN peers, mDNS on the LAN, gossipsub)
//! shared by node and dispatcher, owned by one task ([`service::spawn`]) that the application
//! drives through a [`MeshHandle`] and hears from through [`MeshEvent`]s.
//!
//! Gossip runs in strict application-validation mode: gossipsub carries unsigned frames (every
//! envelope is already signed by its author), hands each one to [`gossip::check_envelope`] and
//! the [`gossip::ReplayFilter`], and forwards only what they accept; senders of invalid messages
//! lose score ([`scoring`]). The libp2p identity is the node's own secp256k1 key ([`identity`]).
//!
//! The job protocol (`/pocmesh/job/1`) is request-response with a CBOR codec carrying one
//! envelope each way, capped at the protocol's envelope size; the application validates both.

pub mod bench;
mod codec;
pub mod config;
pub mod gossip;
pub mod identity;
pub mod limits;
pub mod scoring;
pub mod service;

pub use config::{MeshConfig, NetSettings};
pub use limits::{ConnectionCaps, CounterSnapshot, MeshCounters};
pub use service::{MeshError, MeshEvent, MeshHandle, ReplyToken, peer_of, spawn};
