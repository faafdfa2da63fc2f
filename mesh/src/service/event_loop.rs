//! The network task: owns the swarm, carries out commands, validates gossip on workers and
//! hands events to the application.

use std::collections::HashMap;
use std::sync::Arc;

use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns};
use pocmesh_protocol::{Bytes, MAX_ENVELOPE_BYTES, Topic, Validator, Verified, unix_ms_now};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::gossip::{ReplayFilter, Verdict, check_envelope};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::handle::{Command, ReplyToken};
use super::{DISCOVERY_TARGET_PEERS, KAD_REFRESH, MeshError, MeshEvent, REDIAL, peer_of};

/// A gossip message whose stateless checks finished on a worker.
pub(super) struct Checked {
    id: MessageId,
    via: PeerId,
    topic: Topic,
    result: Result<Verified, Verdict>,
}

pub(super) struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) events: mpsc::Sender<MeshEvent>,
    pub(super) topics: HashMap<TopicHash, Topic>,
    pub(super) net: String,
    /// Bootstrap peers, dialled again whenever the connection to them is gone (a restarted
    /// dispatcher comes back on its address; nobody else would dial it).
    pub(super) bootstrap: Vec<Multiaddr>,
    pub(super) validator: Arc<Validator>,
    /// Wallets no heartbeat may name (the contract's own address).
    pub(super) refused_wallets: Arc<Vec<pocmesh_protocol::Address>>,
    pub(super) replay: ReplayFilter,
    pub(super) workers: Arc<Semaphore>,
    pub(super) checked: (mpsc::Sender<Checked>, mpsc::Receiver<Checked>),
    pub(super) pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, MeshError>>>,
    pub(super) counters: Arc<crate::limits::MeshCounters>,
}

impl EventLoop {
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
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
            Ok(verified) => {
                let relayed = crate::identity::peer_address(&via) != Some(verified.signer);
                self.replay.check(verified, relayed, unix_ms_now())
            }
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
