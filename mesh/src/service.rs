//! The network task: the only owner of the libp2p `Swarm`. The application talks to it through
//! a cloneable [`MeshHandle`] (typed commands, a oneshot per reply) and receives [`MeshEvent`]s.
//! Gossip validation runs signature checks on blocking workers and reports the verdict back to
//! gossipsub, which forwards only what was accepted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, identify, kad, mdns, noise, ping, tcp,
    yamux,
};
use pocmesh_protocol::{
    Bytes, JOB_PROTOCOL, MAX_ENVELOPE_BYTES, MAX_GOSSIP_BYTES, SecretKey, Topic, Validator,
    Verified, keccak256, unix_ms_now,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::MeshConfig;
use crate::gossip::{Rejection, ReplayFilter, Verdict, check_envelope};
use crate::identity::libp2p_keypair;
use crate::scoring;

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

/// Where to send the answer to an inbound job-protocol request; pass it back to
/// [`MeshHandle::respond`].
#[derive(Debug)]
pub struct ReplyToken(ResponseChannel<Bytes>);

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

enum Command {
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
    commands: mpsc::Sender<Command>,
    local_peer: PeerId,
    counters: Arc<crate::limits::MeshCounters>,
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

/// The composed libp2p behaviour of a pocmesh peer.
#[derive(NetworkBehaviour)]
#[behaviour(to_swarm = "BehaviourEvent")]
struct Behaviour {
    /// Heartbeat and dispatcher topics, application-validated, scored.
    gossipsub: gossipsub::Behaviour,
    /// The job protocol: offers, replies, results, receipts as envelopes, size-capped.
    jobs: request_response::Behaviour<crate::codec::FrameCodec>,
    /// Exchanges listen addresses and protocols with peers.
    identify: identify::Behaviour,
    /// Liveness of connections.
    ping: ping::Behaviour,
    /// Peer discovery beyond the bootstrap peers: a pocmesh-only Kademlia DHT.
    kad: kad::Behaviour<kad::store::MemoryStore>,
    /// LAN discovery; off when the operator says so (`--no-mdns`).
    mdns: Toggle<mdns::tokio::Behaviour>,
    /// Total, per-peer and pending-handshake connection bounds.
    limits: libp2p::connection_limits::Behaviour,
    /// Inbound connections per remote IP.
    per_ip: crate::limits::PerIp,
}

#[derive(Debug)]
enum BehaviourEvent {
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

/// A gossip message whose stateless checks finished on a worker.
struct Checked {
    id: MessageId,
    via: PeerId,
    topic: Topic,
    result: Result<Verified, Verdict>,
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

struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<MeshEvent>,
    topics: HashMap<TopicHash, Topic>,
    net: String,
    /// Bootstrap peers, dialled again whenever the connection to them is gone (a restarted
    /// dispatcher comes back on its address; nobody else would dial it).
    bootstrap: Vec<Multiaddr>,
    validator: Arc<Validator>,
    /// Wallets no heartbeat may name (the contract's own address).
    refused_wallets: Arc<Vec<pocmesh_protocol::Address>>,
    replay: ReplayFilter,
    workers: Arc<Semaphore>,
    checked: (mpsc::Sender<Checked>, mpsc::Receiver<Checked>),
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, MeshError>>>,
    counters: Arc<crate::limits::MeshCounters>,
}

impl EventLoop {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut refresh =
            tokio::time::interval_at(tokio::time::Instant::now() + KAD_REFRESH, KAD_REFRESH);
        let mut redial = tokio::time::interval_at(tokio::time::Instant::now() + REDIAL, REDIAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = redial.tick() => self.redial_bootstrap(),
                _ = refresh.tick() => {
                    // No known peers yet is normal for a lone first peer.
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(checked) = self.checked.1.recv() => self.on_checked(checked).await,
                event = self.swarm.select_next_some() => self.on_swarm_event(event).await,
            }
        }
        debug!("network task stopped");
    }

    fn redial_bootstrap(&mut self) {
        let lonely = self.swarm.connected_peers().next().is_none();
        for addr in self.bootstrap.clone() {
            let missing = match peer_of(&addr) {
                Some(peer) => !self.swarm.is_connected(&peer),
                None => lonely,
            };
            if missing {
                debug!(%addr, "dialling bootstrap peer again");
                let _ = self.swarm.dial(addr);
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic.name(&self.net)), data)
                    .map(|_| ())
                    .map_err(|e| MeshError::Publish {
                        topic,
                        no_peers: matches!(e, gossipsub::PublishError::NoPeersSubscribedToTopic),
                        reason: e.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::Dial { addr, reply } => {
                let result = self.swarm.dial(addr.clone()).map_err(|e| MeshError::Dial {
                    addr,
                    reason: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::PeerScore { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Request {
                peer,
                addr,
                envelope,
                reply,
            } => {
                if envelope.len() > MAX_ENVELOPE_BYTES {
                    let _ = reply.send(Err(MeshError::Request {
                        peer,
                        reason: format!(
                            "request is {} bytes, over the {MAX_ENVELOPE_BYTES}-byte cap",
                            envelope.len()
                        ),
                    }));
                    return;
                }
                if let Some(addr) = addr {
                    self.swarm.add_peer_address(peer, addr);
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .jobs
                    .send_request(&peer, Bytes(envelope));
                self.pending.insert(id, reply);
            }
            Command::Respond {
                token,
                envelope,
                reply,
            } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .jobs
                    .send_response(token.0, Bytes(envelope))
                    .map_err(|_| MeshError::Stopped);
                let _ = reply.send(result);
            }
        }
    }

    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.send_event(MeshEvent::Listening { address }).await;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } if num_established.get() == 1 => {
                self.send_event(MeshEvent::PeerConnected {
                    peer: peer_id,
                    address: endpoint.get_remote_address().clone(),
                })
                .await;
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.send_event(MeshEvent::PeerDisconnected { peer: peer_id })
                    .await;
            }
            SwarmEvent::IncomingConnectionError {
                error: libp2p::swarm::ListenError::Denied { cause },
                send_back_addr,
                ..
            } => {
                crate::limits::MeshCounters::bump(&self.counters.connections_refused);
                debug!(remote = %send_back_addr, %cause, "inbound connection refused");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => {
                self.on_gossipsub_event(*e).await
            }
            SwarmEvent::Behaviour(BehaviourEvent::Jobs(e)) => self.on_jobs_event(*e).await,
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => {
                if let identify::Event::Received { peer_id, info, .. } = *e {
                    // Addresses go to the swarm, not to the DHT: every routing-table insert
                    // makes kad re-bootstrap, and feeding it every identified peer swamps a
                    // dense mesh (`pocmesh bench gossip`, 100 peers on one host: p50 19 ms →
                    // over 1 s, no convergence). The DHT holds bootstrap and LAN peers only.
                    for addr in info.listen_addrs {
                        self.swarm.add_peer_address(peer_id, addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if self.swarm.is_connected(&peer) {
                        continue;
                    }
                    debug!(%peer, %addr, "found on the LAN");
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if let Err(e) = self.swarm.dial(addr.clone()) {
                        debug!(%peer, %addr, error = %e, "cannot dial LAN peer");
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => {
                if let kad::Event::RoutingUpdated { peer, .. } = *e
                    && !self.swarm.is_connected(&peer)
                    && self.swarm.connected_peers().count() < DISCOVERY_TARGET_PEERS
                {
                    // Discovered through the DHT: connect, so gossip has a mesh to form.
                    let _ = self.swarm.dial(peer);
                }
            }
            _ => {}
        }
    }

    async fn on_jobs_event(&mut self, event: request_response::Event<Bytes, Bytes>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                self.send_event(MeshEvent::Request {
                    peer,
                    envelope: request.0,
                    reply: ReplyToken(channel),
                })
                .await;
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(waiter) = self.pending.remove(&request_id) {
                    let _ = waiter.send(Ok(response.0));
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(waiter) = self.pending.remove(&request_id) {
                    let _ = waiter.send(Err(MeshError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                crate::limits::MeshCounters::bump(&self.counters.frames_refused);
                debug!(%peer, %error, "inbound job request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    async fn on_gossipsub_event(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let Some(topic) = self.topics.get(&message.topic).copied() else {
            // Not a topic we subscribed to (cannot happen with the whitelist; be safe).
            self.report(&message_id, &propagation_source, MessageAcceptance::Ignore);
            return;
        };
        let Ok(permit) = self.workers.clone().try_acquire_owned() else {
            debug!("validation workers busy; ignoring a gossip message");
            self.report(&message_id, &propagation_source, MessageAcceptance::Ignore);
            return;
        };
        let validator = self.validator.clone();
        let refused = self.refused_wallets.clone();
        let done = self.checked.0.clone();
        tokio::task::spawn_blocking(move || {
            let result = check_envelope(&validator, &refused, topic, &message.data, unix_ms_now());
            drop(permit);
            let _ = done.blocking_send(Checked {
                id: message_id,
                via: propagation_source,
                topic,
                result,
            });
        });
    }

    async fn on_checked(&mut self, checked: Checked) {
        let Checked {
            id,
            via,
            topic,
            result,
        } = checked;
        let verdict = match result {
            Ok(verified) => self.replay.check(verified, unix_ms_now()),
            Err(verdict) => verdict,
        };
        match verdict {
            Verdict::Accept(message) => {
                self.report(&id, &via, MessageAcceptance::Accept);
                self.send_event(MeshEvent::Gossip {
                    topic,
                    message,
                    via,
                })
                .await;
            }
            Verdict::Reject(reason) => {
                warn!(peer = %via, %topic, reason = reason.label, detail = %reason.detail, "rejected gossip");
                self.report(&id, &via, MessageAcceptance::Reject);
                self.send_event(MeshEvent::GossipDropped {
                    topic,
                    via,
                    reason,
                    rejected: true,
                })
                .await;
            }
            Verdict::Ignore(reason) => {
                self.report(&id, &via, MessageAcceptance::Ignore);
                self.send_event(MeshEvent::GossipDropped {
                    topic,
                    via,
                    reason,
                    rejected: false,
                })
                .await;
            }
        }
    }

    /// Hands an event to the application (dropped if it stopped listening). Borrows only the
    /// sender, which keeps the task's future `Send`.
    fn send_event(
        &self,
        event: MeshEvent,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let events = self.events.clone();
        async move {
            let _ = events.send(event).await;
        }
    }

    fn report(&mut self, id: &MessageId, via: &PeerId, acceptance: MessageAcceptance) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, via, acceptance);
    }
}

/// Kademlia for a mesh of small peers: routing-table entries only from bootstrap peers, the LAN
/// and identify (not from every inbound connection), and our own refresh schedule — kad's
/// automatic re-bootstrap on every new entry floods a 100-peer mesh with random walks.
fn kad_config() -> kad::Config {
    let mut c = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    c.set_kbucket_inserts(kad::BucketInserts::Manual);
    c.set_periodic_bootstrap_interval(None);
    c
}

/// The peer named by a multiaddr's trailing `/p2p/<id>`, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}
