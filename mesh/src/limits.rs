//! Connection bounds: how many connections a peer of the mesh keeps (in total, per peer, per
//! remote IP address, pending handshakes) and the counters of what was refused.
//!
//! Total, per-peer and pending limits are libp2p's own `connection_limits` behaviour; the
//! per-IP limit is [`PerIp`] here (one host opening many connections under fresh peer ids is
//! the flood the per-peer limit cannot see). Refusals are counted in [`MeshCounters`], read
//! through the handle and exported by each daemon's metrics.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// The connection bounds of one peer (defaults suit a dispatcher with thousands of nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Established connections in total.
    pub max_established: u32,
    /// Established connections to one peer id.
    pub max_per_peer: u32,
    /// Established inbound connections from one IP address.
    pub max_per_ip: u32,
    /// Inbound handshakes in progress.
    pub max_pending_incoming: u32,
}

impl Default for ConnectionCaps {
    fn default() -> Self {
        ConnectionCaps {
            max_established: 4_096,
            max_per_peer: 4,
            max_per_ip: 64,
            max_pending_incoming: 128,
        }
    }
}

impl ConnectionCaps {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("max_established", self.max_established),
            ("max_per_peer", self.max_per_peer),
            ("max_per_ip", self.max_per_ip),
            ("max_pending_incoming", self.max_pending_incoming),
        ] {
            if v == 0 {
                return Err(format!("connections.{name} must be above 0"));
            }
        }
        Ok(())
    }

    /// libp2p's limits for the total, per-peer and pending bounds.
    pub(crate) fn libp2p(&self) -> libp2p::connection_limits::ConnectionLimits {
        libp2p::connection_limits::ConnectionLimits::default()
            .with_max_established(Some(self.max_established))
            .with_max_established_per_peer(Some(self.max_per_peer))
            .with_max_pending_incoming(Some(self.max_pending_incoming))
    }
}

/// What the mesh refused or dropped, since start (monotonic counters).
#[derive(Debug, Default)]
pub struct MeshCounters {
    /// Inbound connections refused by a connection bound.
    pub connections_refused: AtomicU64,
    /// Job-protocol frames that failed before reaching the application (over the size cap,
    /// not CBOR, timed out).
    pub frames_refused: AtomicU64,
}

impl MeshCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            connections_refused: self.connections_refused.load(Ordering::Relaxed),
            frames_refused: self.frames_refused.load(Ordering::Relaxed),
        }
    }
}

/// A copy of [`MeshCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CounterSnapshot {
    /// Inbound connections refused by a connection bound.
    pub connections_refused: u64,
    /// Job-protocol frames that failed before reaching the application.
    pub frames_refused: u64,
}

/// Refuses an inbound connection when its remote IP already holds `max` established ones.
#[derive(Debug)]
pub(crate) struct PerIp {
    max: u32,
    by_connection: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, u32>,
}

/// The connection came from an address that holds too many already.
#[derive(Debug)]
struct TooManyFromIp {
    ip: IpAddr,
    max: u32,
}

impl std::fmt::Display for TooManyFromIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} already holds {} connections, the most one address may",
            self.ip, self.max
        )
    }
}

impl std::error::Error for TooManyFromIp {}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl PerIp {
    pub(crate) fn new(max: u32) -> Self {
        PerIp {
            max,
            by_connection: HashMap::new(),
            per_ip: HashMap::new(),
        }
    }

    fn check(&self, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        match ip_of(remote) {
            Some(ip) if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.max => {
                Err(ConnectionDenied::new(TooManyFromIp { ip, max: self.max }))
            }
            _ => Ok(()),
        }
    }
}

impl NetworkBehaviour for PerIp {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check(remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(remote)?;
        if let Some(ip) = ip_of(remote) {
            *self.per_ip.entry(ip).or_default() += 1;
            self.by_connection.insert(id, ip);
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) = event
            && let Some(ip) = self.by_connection.remove(&connection_id)
            && let Some(n) = self.per_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bounds_are_refused_with_the_field_named() {
        assert!(ConnectionCaps::default().validate().is_ok());
        let caps = ConnectionCaps {
            max_per_ip: 0,
            ..ConnectionCaps::default()
        };
        let e = caps.validate().expect_err("zero");
        assert!(e.contains("max_per_ip"), "{e}");
    }

    #[test]
    fn the_per_ip_bound_counts_established_inbound_connections_and_frees_closed_ones() {
        let mut limit = PerIp::new(2);
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().expect("addr");
        let a: Multiaddr = "/ip4/10.0.0.1/tcp/5000".parse().expect("addr");
        let b: Multiaddr = "/ip4/10.0.0.2/tcp/5000".parse().expect("addr");
        let peer = PeerId::random();
        let mut ids = (1..=4).map(ConnectionId::new_unchecked);
        let first = ids.next().expect("id");
        assert!(
            limit
                .handle_established_inbound_connection(first, peer, &local, &a)
                .is_ok()
        );
        let second = ids.next().expect("id");
        assert!(
            limit
                .handle_established_inbound_connection(second, peer, &local, &a)
                .is_ok()
        );
        let third = ids.next().expect("id");
        let Err(denied) = limit.handle_established_inbound_connection(third, peer, &local, &a)
        else {
            panic!("a third connection from one address is refused");
        };
        assert!(format!("{denied:?}").contains("10.0.0.1"), "{denied:?}");
        assert!(
            limit
                .handle_pending_inbound_connection(third, &local, &a)
                .is_err()
        );
        // Another address is not affected.
        assert!(
            limit
                .handle_established_inbound_connection(third, peer, &local, &b)
                .is_ok()
        );
        // Closing one frees a place.
        limit.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: first,
            endpoint: &libp2p::core::ConnectedPoint::Listener {
                local_addr: local.clone(),
                send_back_addr: a.clone(),
            },
            cause: None,
            remaining_established: 1,
        }));
        let fourth = ids.next().expect("id");
        assert!(
            limit
                .handle_established_inbound_connection(fourth, peer, &local, &a)
                .is_ok()
        );
    }
}
