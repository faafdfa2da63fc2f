//! The dispatcher's one typed configuration: defaults < file (`--config`, TOML) < environment
//! (`POCMESH_…`, read by the CLI's flags) < flags. [`DispatcherConfig::validate`] stops start-up
//! with the field named.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pocmesh_mesh::NetSettings;
use pocmesh_protocol::{Address, Limits};
use serde::{Deserialize, Serialize};

use crate::policy::VerifySettings;
use crate::registry::RegistryConfig;

pub use pocmesh_config::ConfigError;
use pocmesh_config::{invalid, load_toml};

/// Everything a dispatcher runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatcherConfig {
    /// Where the store and status files live.
    pub data_dir: PathBuf,
    /// The key file: the dispatcher's mesh identity and its chain account (needs
    /// DISPATCHER_ROLE).
    pub key_file: Option<PathBuf>,
    /// Chain RPC URL.
    pub rpc: Option<String>,
    /// The ProofOfCompute contract.
    pub contract: Option<Address>,
    /// The block the contract was deployed in (`pocmesh contract deploy` prints it): chain logs
    /// (credit histories, a batch's transaction after a restart) are searched from here instead
    /// of from block 0, which on a long chain is thousands of `eth_getLogs` pages.
    pub contract_block: Option<u64>,
    /// Confirmations to wait for each batch.
    pub confirmations: u64,
    /// How the dispatcher joins the mesh.
    pub network: NetSettings,
    /// The HTTP API.
    pub api: ApiSettings,
    /// The node registry.
    pub registry: RegistryConfig,
    /// Assignment.
    pub jobs: JobSettings,
    /// Verification: audits, trust, quorum independence.
    pub verify: VerifySettings,
    /// Batching to the chain.
    pub batch: BatchSettings,
    /// How often the dispatcher announces itself on gossip, ms.
    pub announce_ms: u64,
    /// Take the network name from the chain's id at start (set when no name was given);
    /// otherwise a name that does not match the chain stops start-up.
    #[serde(skip)]
    pub net_from_chain: bool,
}

/// `[api]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Address to serve on (127.0.0.1 unless you put a TLS proxy in front).
    pub listen: SocketAddr,
    /// Bearer tokens allowed to submit jobs; empty means a token is generated at start and
    /// written to `<data-dir>/api.token`.
    pub tokens: Vec<String>,
    /// Write requests (submissions, imports) per token per minute.
    pub rate_limit_per_minute: u32,
    /// Requests of any kind per client address per minute.
    pub client_rate_limit_per_minute: u32,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// The RPC URL shown to browsers (`/v1/info`, the dashboard reads units with it). Default:
    /// the dispatcher's own RPC when it is on this machine, otherwise none — a provider URL
    /// may carry an API key.
    pub public_rpc: Option<String>,
    /// Demo jobs anyone may ask for without a token (the dashboard's "Request a compute task"),
    /// per hour, for the whole dispatcher. Default: 120 on a local devnet (`devnet-…`), none
    /// elsewhere; 0 turns them off.
    pub demo_jobs_per_hour: Option<u32>,
    /// A public block explorer to link transactions to: its base URL, pages at `<base>/tx/<hash>`
    /// and `<base>/address/<addr>`. Default: xdcscan for XDC Apothem (chain 51) and mainnet (50);
    /// elsewhere none, and the links go to this dispatcher's own `/explorer/…` pages.
    pub explorer_url: Option<String>,
}

impl ApiSettings {
    /// The public explorer for chain `chain_id` (see [`ApiSettings::explorer_url`]).
    pub fn explorer_for(&self, chain_id: u64) -> Option<String> {
        match &self.explorer_url {
            Some(u) if u.is_empty() => None,
            Some(u) => Some(u.trim_end_matches('/').to_string()),
            None => match chain_id {
                51 => Some("https://testnet.xdcscan.com".into()),
                50 => Some("https://xdcscan.io".into()),
                _ => None,
            },
        }
    }

    /// The demo quota in force on network `net`.
    pub fn demo_quota(&self, net: &str) -> u32 {
        self.demo_jobs_per_hour
            .unwrap_or(if net.starts_with("devnet-") { 120 } else { 0 })
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8645)),
            tokens: Vec::new(),
            rate_limit_per_minute: 6_000,
            client_rate_limit_per_minute: 12_000,
            max_body_bytes: 4 * 1024 * 1024,
            public_rpc: None,
            demo_jobs_per_hour: None,
            explorer_url: None,
        }
    }
}

/// `[jobs]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Attempts (offers that were accepted, declined, timed out or failed) before a job fails.
    pub max_attempts: u32,
    /// Lease added to a job's own time limit, ms.
    pub lease_margin_ms: u64,
    /// Limits for jobs submitted without their own.
    pub default_limits: Limits,
    /// Largest `redundancy` a submitter may ask for.
    pub max_redundancy: u32,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            max_attempts: 6,
            lease_margin_ms: 15_000,
            default_limits: Limits {
                max_ms: 30_000,
                max_mem_mb: 64,
                max_output_bytes: 64 * 1024,
                max_fuel: Some(2_000_000_000),
            },
            max_redundancy: 5,
        }
    }
}

/// `[batch]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSettings {
    /// Credits per batch at most (a batch is sent when this many wait).
    pub max_credits: usize,
    /// Longest a credit waits before a smaller batch is sent, ms.
    pub max_age_ms: u64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_credits: 256,
            max_age_ms: 3_000,
        }
    }
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            data_dir: pocmesh_config::default_data_dir("dispatcher"),
            key_file: None,
            rpc: None,
            contract: None,
            contract_block: None,
            confirmations: 1,
            network: NetSettings::default(),
            api: ApiSettings::default(),
            registry: RegistryConfig::default(),
            jobs: JobSettings::default(),
            verify: VerifySettings::default(),
            batch: BatchSettings::default(),
            announce_ms: 30_000,
            net_from_chain: false,
        }
    }
}

impl DispatcherConfig {
    /// Reads a TOML file over the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_toml(path)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.key_file.is_none() {
            return Err(invalid(
                "key_file",
                "no key; pass --key FILE (create one with `pocmesh keys new --out FILE`)",
            ));
        }
        if self.rpc.is_none() {
            return Err(invalid("rpc", "no chain RPC; pass --rpc URL"));
        }
        if self.contract.is_none() {
            return Err(invalid(
                "contract",
                "no contract; pass --contract ADDR (deploy one with `pocmesh contract deploy`)",
            ));
        }
        self.network
            .to_mesh_config()
            .map_err(|e| invalid("network", e))?;
        self.registry
            .validate()
            .map_err(|e| invalid("registry", e))?;
        let j = &self.jobs;
        if j.max_attempts == 0 || j.max_attempts > 100 {
            return Err(invalid("jobs.max_attempts", "must be between 1 and 100"));
        }
        if j.max_redundancy == 0 || j.max_redundancy > crate::scheduler::MAX_REDUNDANCY {
            return Err(invalid(
                "jobs.max_redundancy",
                format!("must be between 1 and {}", crate::scheduler::MAX_REDUNDANCY),
            ));
        }
        // With the name still to come from the chain, devnet-only settings are checked once it
        // is known (`run` validates again).
        let net = if self.net_from_chain {
            "devnet-"
        } else {
            self.network.net.as_str()
        };
        self.verify
            .validate(net)
            .map_err(|e| invalid("verify", e))?;
        if self.jobs.default_limits.max_fuel.is_none() {
            return Err(invalid(
                "jobs.default_limits.max_fuel",
                "set a fuel limit: a wasm job's units are bounded by it",
            ));
        }
        if self.batch.max_credits == 0 || self.batch.max_credits > 2_000 {
            return Err(invalid(
                "batch.max_credits",
                "must be between 1 and 2000 (a recordBatch of more may not fit a block)",
            ));
        }
        if self.api.max_body_bytes < 1024 {
            return Err(invalid("api.max_body_bytes", "must be at least 1024"));
        }
        if let Some(u) = &self.api.explorer_url
            && !u.is_empty()
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(invalid(
                "api.explorer_url",
                format!(
                    "`{u}` is not an http(s) URL; e.g. https://testnet.xdcscan.com (\"\" for none)"
                ),
            ));
        }
        if self.api.demo_jobs_per_hour.is_some_and(|n| n > 100_000) {
            return Err(invalid(
                "api.demo_jobs_per_hour",
                "must be at most 100000 (0 turns demo jobs off)",
            ));
        }
        if self.api.rate_limit_per_minute == 0 {
            return Err(invalid("api.rate_limit_per_minute", "must be above 0"));
        }
        if self.api.client_rate_limit_per_minute == 0 {
            return Err(invalid(
                "api.client_rate_limit_per_minute",
                "must be above 0",
            ));
        }
        if self.announce_ms < 1_000 {
            return Err(invalid("announce_ms", "must be at least 1000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdc_chains_link_to_xdcscan_others_to_the_built_in_explorer_unless_set() {
        let api = ApiSettings::default();
        assert_eq!(
            api.explorer_for(51).as_deref(),
            Some("https://testnet.xdcscan.com")
        );
        assert_eq!(api.explorer_for(50).as_deref(), Some("https://xdcscan.io"));
        assert_eq!(api.explorer_for(551), None);
        let set = ApiSettings {
            explorer_url: Some("https://explorer.example/".into()),
            ..ApiSettings::default()
        };
        assert_eq!(
            set.explorer_for(551).as_deref(),
            Some("https://explorer.example")
        );
        let none = ApiSettings {
            explorer_url: Some(String::new()),
            ..ApiSettings::default()
        };
        assert_eq!(none.explorer_for(51), None);
    }

    #[test]
    fn an_explorer_url_that_is_not_http_is_refused_naming_the_key() {
        let mut c = DispatcherConfig {
            key_file: Some("dispatcher.key".into()),
            rpc: Some("http://127.0.0.1:8545".into()),
            contract: Some(Address::from([5; 20])),
            ..DispatcherConfig::default()
        };
        c.validate().expect("otherwise valid");
        c.api.explorer_url = Some("javascript:alert(1)".into());
        let err = c.validate().expect_err("not a URL").to_string();
        assert!(err.contains("api.explorer_url"), "{err}");
    }
}
