//! The network task: the only owner of the libp2p `Swarm`. The application talks to it through
//! a cloneable [`MeshHandle`] (typed commands, a oneshot per reply) and receives [`MeshEvent`]s.
//! Gossip validation runs signature checks on blocking workers and reports the verdict back to
//! gossipsub, which forwards only what was accepted.
//!
//! The room is split by what each part owns: `handle` is the application's side (commands and
//! their replies), `behaviour` composes the libp2p protocols and their events, `event_loop`
//! is the task that owns the swarm and turns its events into [`MeshEvent`]s; this module holds
//! the shared types and [`spawn`], which builds the swarm and wires them together.

mod behaviour;
mod event_loop;
mod handle;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::gossipsub::{self, IdentTopic, MessageId, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, SwarmBuilder, identify, kad, mdns, noise, ping, tcp, yamux,
};
use pocmesh_protocol::{
    JOB_PROTOCOL, MAX_ENVELOPE_BYTES, MAX_GOSSIP_BYTES, SecretKey, Topic, Validator, Verified,
    keccak256,
};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::MeshConfig;
use crate::gossip::{Rejection, ReplayFilter};
use crate::identity::libp2p_keypair;
use crate::scoring;

use self::behaviour::{Behaviour, kad_config};
use self::event_loop::EventLoop;
pub use self::handle::{MeshHandle, ReplyToken};

/// Commands queued to the network task.
const COMMAND_CAPACITY: usize = 256;
/// Events queued to the application; when full, the network task waits.
const EVENT_CAPACITY: usize = 1024;
/// Signature checks in flight at once; messages beyond that are ignored (dropped, no penalty).
const VALIDATION_WORKERS: usize = 64;
/// Largest gossip frame the transport accepts; the application cap (4 KiB) is checked after,
/// so an oversized message is rejected and its sender penalised rather than silently cut.
const TRANSPORT_MAX_BYTES: usize = 64 * 1024;
/// Largest job-protocol frame payload: one envelope (the frame's header declares its length,
/// so a bigger one is refused before it is read).
const JOB_FRAME_MAX_BYTES: u64 = MAX_ENVELOPE_BYTES as u64;
/// How long a job-protocol request may wait for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The Kademlia protocol name: pocmesh peers form their own DHT, apart from the public IPFS one.
const KAD_PROTOCOL: &str = "/pocmesh/kad/1";
/// How often bootstrap peers we are not connected to are dialled again.
const REDIAL: Duration = Duration::from_secs(3);
/// Below this many connections, peers found through the DHT are dialled.
const DISCOVERY_TARGET_PEERS: usize = 8;
/// How often a Kademlia bootstrap (random walk) refreshes the routing table.
const KAD_REFRESH: Duration = Duration::from_secs(300);

/// Why the mesh could not start or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The key cannot be a libp2p identity.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// Building the transport or behaviours failed.
    #[error("building the libp2p swarm: {0}")]
    Build(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}; choose another --listen address or port")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// Dialing failed at once.
    #[error("cannot dial {addr}: {reason}")]
    Dial {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// Publishing failed.
    #[error("publishing on {topic} failed: {reason}")]
    Publish {
        /// The topic.
        topic: Topic,
        /// Why (e.g. no peer subscribed yet).
        reason: String,
        /// Whether no peer is subscribed yet (a normal state at start-up).
        no_peers: bool,
    },
    /// A job-protocol request failed (peer unreachable, timeout, oversized, closed).
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Stopped,
}

/// What the network tells the application.
#[derive(Debug)]
pub enum MeshEvent {
    /// Listening on a new address.
    Listening {
        /// The address, with `/p2p/<peer id>` not appended.
        address: Multiaddr,
    },
    /// A connection to a peer opened.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The remote end of that connection (where the peer's traffic comes from), for the
        /// network-origin rules of quorums.
        address: Multiaddr,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A gossiped message passed every check.
    Gossip {
        /// The topic it came on.
        topic: Topic,
        /// The verified message.
        message: Box<Verified>,
        /// The peer that forwarded it to us (not necessarily its author).
        via: PeerId,
    },
    /// A peer sent a job-protocol request (an envelope, not yet checked: the application
    /// validates it with the protocol crate and answers through [`MeshHandle::respond`]).
    Request {
        /// The peer that sent it.
        peer: PeerId,
        /// The envelope bytes (at most the protocol's envelope cap).
        envelope: Vec<u8>,
        /// Where the answer goes.
        reply: ReplyToken,
    },
    /// A gossiped message was dropped; `rejected` ones also cost `via` score.
    GossipDropped {
        /// The topic.
        topic: Topic,
        /// The peer that forwarded it.
        via: PeerId,
        /// Why.
        reason: Rejection,
        /// Whether the sender was penalised (Reject) or not (Ignore).
        rejected: bool,
    },
}

/// Starts the network task for `key` on `config`; it runs until `shutdown` is cancelled or every
/// handle is dropped.
pub async fn spawn(
    key: &SecretKey,
    config: MeshConfig,
    shutdown: CancellationToken,
) -> Result<
    (
        MeshHandle,
        mpsc::Receiver<MeshEvent>,
        tokio::task::JoinHandle<()>,
    ),
    MeshError,
> {
    config.validate().map_err(MeshError::Build)?;
    let keypair = libp2p_keypair(key)?;
    let local_peer = keypair.public().to_peer_id();
    let topics: HashMap<TopicHash, Topic> = Topic::ALL
        .into_iter()
        .map(|t| (IdentTopic::new(t.name(&config.net)).hash(), t))
        .collect();
    let gossip_heartbeat = config.gossip_heartbeat;
    let use_mdns = config.mdns;
    let caps = config.connections;
    let counters = Arc::new(crate::limits::MeshCounters::default());
    let topic_hashes: Vec<TopicHash> = topics.keys().cloned().collect();
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| MeshError::Build(e.to_string()))?
        .with_quic()
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .validate_messages()
                .message_id_fn(|m: &gossipsub::Message| {
                    MessageId::from(keccak256(&m.data)[..20].to_vec())
                })
                .max_transmit_size(TRANSPORT_MAX_BYTES)
                .heartbeat_initial_delay(gossip_heartbeat)
                .heartbeat_interval(gossip_heartbeat)
                .build()
                .map_err(|e| e.to_string())?;
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Anonymous,
                gossip_config,
            )?;
            gossipsub
                .with_peer_score(scoring::score_params(&topic_hashes), scoring::thresholds())?;
            let codec = crate::codec::FrameCodec::new(JOB_FRAME_MAX_BYTES);
            let jobs = request_response::Behaviour::with_codec(
                codec,
                [(StreamProtocol::new(JOB_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
            );
            let peer = key.public().to_peer_id();
            let mut kad =
                kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), kad_config());
            kad.set_mode(Some(kad::Mode::Server));
            let mdns = if use_mdns {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer)?)
            } else {
                None
            };
            Ok(Behaviour {
                gossipsub,
                jobs,
                kad,
                mdns: Toggle::from(mdns),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/pocmesh/id/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                limits: libp2p::connection_limits::Behaviour::new(caps.libp2p()),
                per_ip: crate::limits::PerIp::new(caps.max_per_ip),
            })
        })
        .map_err(|e| MeshError::Build(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();

    for topic in Topic::ALL {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(topic.name(&config.net)))
            .map_err(|e| MeshError::Build(format!("subscribing to {topic}: {e}")))?;
    }
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| MeshError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
    }
    let mut kad_known = false;
    for addr in &config.bootstrap {
        if let Some(peer) = peer_of(addr) {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            kad_known = true;
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!(%addr, error = %e, "cannot dial bootstrap peer");
        }
    }
    if kad_known {
        // Fails only with no known peers, which the check above rules out.
        let _ = swarm.behaviour_mut().kad.bootstrap();
    }

    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (event_tx, event_rx) = mpsc::channel(EVENT_CAPACITY);
    let validator = Arc::new(Validator {
        net: config.net.clone(),
        max_bytes: MAX_GOSSIP_BYTES,
        max_skew_ms: config.max_skew_ms,
    });
    let replay = ReplayFilter::new(
        config.replay,
        config.max_skew_ms,
        config.min_heartbeat_gap_ms,
    )
    .map_err(MeshError::Build)?;
    let event_loop = EventLoop {
        swarm,
        commands: cmd_rx,
        events: event_tx,
        topics,
        net: config.net.clone(),
        bootstrap: config.bootstrap.clone(),
        validator,
        refused_wallets: Arc::new(config.refused_wallets.clone()),
        replay,
        workers: Arc::new(Semaphore::new(VALIDATION_WORKERS)),
        pending: HashMap::new(),
        checked: mpsc::channel(VALIDATION_WORKERS * 2),
        counters: counters.clone(),
    };
    let task = tokio::spawn(event_loop.run(shutdown));
    Ok((
        MeshHandle {
            commands: cmd_tx,
            local_peer,
            counters,
        },
        event_rx,
        task,
    ))
}

/// The peer named by a multiaddr's trailing `/p2p/<id>`, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}
