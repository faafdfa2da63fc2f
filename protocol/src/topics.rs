//! Names on the wire: network ids, gossip topics and request-response protocol ids.

use std::fmt;

/// The request-response protocol for offers, replies, results and receipts.
pub const JOB_PROTOCOL: &str = "/pocmesh/job/1";

/// The network name of a local devnet with this chain id.
pub fn devnet_name(chain_id: u64) -> String {
    format!("devnet-{chain_id}")
}

/// The network name for an EVM chain id: XDC's public networks by name, anything else a devnet.
pub fn network_for_chain(chain_id: u64) -> String {
    match chain_id {
        50 => "xdc-mainnet".into(),
        51 => "xdc-apothem".into(),
        other => devnet_name(other),
    }
}

/// Why a network name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "network name {0:?} is invalid: use 1-64 characters of a-z, 0-9 and '-' (e.g. xdc-apothem, devnet-551)"
)]
pub struct NetworkNameError(pub String);

/// Checks a network name (it becomes part of topic names).
pub fn validate_network_name(name: &str) -> Result<(), NetworkNameError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NetworkNameError(name.to_string()))
    }
}

/// The gossip topics of a network. There is no "other" topic: subscribing is a whitelist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Node heartbeats and opt-outs.
    Heartbeat,
    /// Dispatcher announcements.
    Dispatcher,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 2] = [Topic::Heartbeat, Topic::Dispatcher];

    /// The full topic name on network `net`, e.g. `/pocmesh/devnet-551/heartbeat/1`.
    pub fn name(self, net: &str) -> String {
        let short = match self {
            Topic::Heartbeat => "heartbeat",
            Topic::Dispatcher => "dispatcher",
        };
        format!("/pocmesh/{net}/{short}/1")
    }

    /// The topic a full name refers to on network `net`, if any.
    pub fn from_name(name: &str, net: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name(net) == name)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Heartbeat => f.write_str("heartbeat"),
            Topic::Dispatcher => f.write_str("dispatcher"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_networks_are_validated() {
        for t in Topic::ALL {
            assert_eq!(
                Topic::from_name(&t.name("devnet-551"), "devnet-551"),
                Some(t)
            );
            assert_eq!(Topic::from_name(&t.name("devnet-551"), "xdc-apothem"), None);
        }
        assert_eq!(network_for_chain(51), "xdc-apothem");
        assert_eq!(network_for_chain(551), "devnet-551");
        assert!(validate_network_name("devnet-551").is_ok());
        assert!(validate_network_name("Dev/net").is_err());
        assert!(validate_network_name("").is_err());
    }
}
