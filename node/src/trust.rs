//! Whose offers this node accepts: dispatchers listed in the config, and holders of
//! DISPATCHER_ROLE on the configured ProofOfCompute contract, asked on chain and cached.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pocmesh_chain::ProofOfCompute;
use pocmesh_protocol::Address;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::config::TrustSettings;

/// How long a "not a dispatcher" answer is remembered (shorter than a yes: a grant should be
/// picked up soon).
const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Most addresses remembered; the cache is fed by whoever sends offers.
const CACHE_CAPACITY: usize = 4096;

/// The node's trust decision.
#[derive(Debug)]
pub struct TrustPolicy {
    listed: Vec<Address>,
    chain: Option<ChainTrust>,
}

#[derive(Debug)]
struct ChainTrust {
    rpc: String,
    contract: Address,
    ttl: Duration,
    cache: Mutex<HashMap<Address, (bool, Instant)>>,
}

impl TrustPolicy {
    /// The policy of `settings`.
    pub fn new(settings: &TrustSettings) -> Self {
        TrustPolicy {
            listed: settings.dispatchers.clone(),
            chain: match (&settings.rpc, settings.contract) {
                (Some(rpc), Some(contract)) => Some(ChainTrust {
                    rpc: rpc.clone(),
                    contract,
                    ttl: Duration::from_secs(settings.refresh_secs.max(1)),
                    cache: Mutex::new(HashMap::new()),
                }),
                _ => None,
            },
        }
    }

    /// Whether offers signed by `dispatcher` are accepted. An unreachable RPC keeps the last
    /// answer; with none, the dispatcher is not trusted (fail closed).
    pub async fn is_trusted(&self, dispatcher: Address) -> bool {
        if self.listed.contains(&dispatcher) {
            return true;
        }
        let Some(chain) = &self.chain else {
            return false;
        };
        let cached = chain.cache.lock().await.get(&dispatcher).copied();
        if let Some((yes, at)) = cached {
            let ttl = if yes { chain.ttl } else { NEGATIVE_TTL };
            if at.elapsed() < ttl {
                return yes;
            }
        }
        // Asked without holding the cache: a slow RPC must not stall every other offer.
        let answer = match ProofOfCompute::at(&chain.rpc, chain.contract).await {
            Ok(contract) => contract.is_dispatcher(dispatcher).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(yes) => {
                let mut cache = chain.cache.lock().await;
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(dispatcher, (yes, Instant::now()));
                info!(%dispatcher, trusted = yes, "checked DISPATCHER_ROLE on chain");
                yes
            }
            Err(e) => {
                warn!(%dispatcher, error = %e, "cannot check DISPATCHER_ROLE; keeping the last answer");
                cached.map(|(yes, _)| yes).unwrap_or(false)
            }
        }
    }
}
