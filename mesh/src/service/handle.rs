//! The application's side of the network task: a cloneable handle sending typed commands, each
//! with a oneshot for its reply, and the token that answers an inbound request.

use std::sync::Arc;

use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use pocmesh_protocol::{Bytes, Topic};
use tokio::sync::{mpsc, oneshot};

use super::MeshError;

/// Where to send the answer to an inbound job-protocol request; pass it back to
/// [`MeshHandle::respond`].
#[derive(Debug)]
pub struct ReplyToken(pub(super) ResponseChannel<Bytes>);

pub(super) enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), MeshError>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), MeshError>>,
    },
    PeerScore {
        peer: PeerId,
        reply: oneshot::Sender<Option<f64>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Request {
        peer: PeerId,
        addr: Option<Multiaddr>,
        envelope: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, MeshError>>,
    },
    Respond {
        token: ReplyToken,
        envelope: Vec<u8>,
        reply: oneshot::Sender<Result<(), MeshError>>,
    },
}

/// A cheap, cloneable handle to the network task.
#[derive(Clone, Debug)]
pub struct MeshHandle {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) local_peer: PeerId,
    pub(super) counters: Arc<crate::limits::MeshCounters>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Publish { .. } => "Publish",
            Command::Dial { .. } => "Dial",
            Command::PeerScore { .. } => "PeerScore",
            Command::ConnectedPeers { .. } => "ConnectedPeers",
            Command::ListenAddrs { .. } => "ListenAddrs",
            Command::Request { .. } => "Request",
            Command::Respond { .. } => "Respond",
        })
    }
}

impl MeshHandle {
    /// This node's PeerId.
    pub fn local_peer(&self) -> PeerId {
        self.local_peer
    }

    /// What the mesh has refused so far (connections over a bound, failed job frames).
    pub fn counters(&self) -> crate::limits::CounterSnapshot {
        self.counters.snapshot()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, MeshError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| MeshError::Stopped)?;
        rx.await.map_err(|_| MeshError::Stopped)
    }

    /// Publishes already-encoded envelope bytes on `topic`.
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), MeshError> {
        self.ask(|reply| Command::Publish { topic, data, reply })
            .await?
    }

    /// Dials a peer.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), MeshError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// gossipsub's score of `peer` (0 for a peer it has no record of).
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>, MeshError> {
        self.ask(|reply| Command::PeerScore { peer, reply }).await
    }

    /// Sends a job-protocol request (envelope bytes) to `peer`, dialing `addr` if given and not
    /// connected, and waits for the answer envelope.
    pub async fn request(
        &self,
        peer: PeerId,
        addr: Option<Multiaddr>,
        envelope: Vec<u8>,
    ) -> Result<Vec<u8>, MeshError> {
        self.ask(|reply| Command::Request {
            peer,
            addr,
            envelope,
            reply,
        })
        .await?
    }

    /// Answers an inbound request.
    pub async fn respond(&self, token: ReplyToken, envelope: Vec<u8>) -> Result<(), MeshError> {
        self.ask(|reply| Command::Respond {
            token,
            envelope,
            reply,
        })
        .await?
    }

    /// Addresses the swarm listens on (without `/p2p/<peer id>`).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, MeshError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// Peers with an open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, MeshError> {
        self.ask(|reply| Command::ConnectedPeers { reply }).await
    }
}
