//! The network name a node joins, read from its chain: a node started with `--rpc` and no
//! `--net` joins `pocmesh_protocol::topics::network_for_chain(chain id)` (a devnet-551 chain
//! gives `devnet-551`, Apothem `xdc-apothem`), and a `--net` that names another network than
//! the chain's is refused, since such a node would never meet the chain's dispatchers.

use std::time::Duration;

use pocmesh_chain::client::{self, RetryPolicy};
use pocmesh_protocol::topics::network_for_chain;

/// How long reading the chain id may take at start before the node gives up.
const CHAIN_ID_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the network name cannot be settled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkNameError {
    /// The RPC did not say its chain id.
    #[error(
        "cannot read the chain id from --rpc {url}: {reason}; check that the URL is right and the \
         chain node is running (the network name is taken from the chain)"
    )]
    Unreachable {
        /// The RPC URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// `--net` names another network than the chain's.
    #[error(
        "--net {given} does not match the chain at {url}: its chain id {chain_id} is network \
         {chain_net}; drop --net (the node then joins {chain_net}) or point --rpc at a {given} chain"
    )]
    Mismatch {
        /// The name given.
        given: String,
        /// The RPC URL.
        url: String,
        /// The chain's id.
        chain_id: u64,
        /// The chain's network name.
        chain_net: String,
    },
}

/// The network to join for a chain with `chain_id`, given the name the operator set (if any).
pub fn reconcile(
    given: Option<&str>,
    url: &str,
    chain_id: u64,
) -> Result<String, NetworkNameError> {
    let chain_net = network_for_chain(chain_id);
    match given {
        Some(given) if given != chain_net => Err(NetworkNameError::Mismatch {
            given: given.to_string(),
            url: url.to_string(),
            chain_id,
            chain_net,
        }),
        _ => Ok(chain_net),
    }
}

/// The chain id the RPC at `url` reports (a few retries, then a clear error).
pub async fn chain_id(url: &str) -> Result<u64, NetworkNameError> {
    let unreachable = |reason: String| NetworkNameError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let provider = client::provider(url).map_err(|e| unreachable(e.to_string()))?;
    let retry = RetryPolicy {
        attempts: 3,
        initial: Duration::from_millis(300),
        max: Duration::from_secs(2),
    };
    match tokio::time::timeout(CHAIN_ID_TIMEOUT, client::chain_id(&provider, url, retry)).await {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CHAIN_ID_TIMEOUT.as_secs()
        ))),
    }
}

/// The network to join: the chain's at `url`, refusing a `given` name that differs.
pub async fn resolve(given: Option<&str>, url: &str) -> Result<String, NetworkNameError> {
    reconcile(given, url, chain_id(url).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_the_network_and_a_different_net_is_refused() {
        assert_eq!(
            reconcile(None, "http://rpc", 551).as_deref(),
            Ok("devnet-551")
        );
        assert_eq!(
            reconcile(Some("xdc-apothem"), "http://rpc", 51).as_deref(),
            Ok("xdc-apothem")
        );
        let e = reconcile(Some("xdc-apothem"), "http://rpc", 551).expect_err("mismatch");
        let text = e.to_string();
        assert!(text.contains("--net xdc-apothem"), "{text}");
        assert!(
            text.contains("chain id 551 is network devnet-551"),
            "{text}"
        );
        assert!(text.contains("drop --net"), "{text}");
    }
}
