//! The node's one typed configuration: defaults < file (`--config`, TOML) < environment
//! (`POCMESH_…`, read by the CLI's flags) < flags. [`NodeConfig::validate`] stops start-up with
//! the field named.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pocmesh_mesh::NetSettings;
use pocmesh_protocol::{Address, Hash32, JobType};
use serde::{Deserialize, Serialize};

use pocmesh_executor::http::target::{DenyList, TargetRules};
use pocmesh_executor::{ExecutorCaps, ExecutorOptions, HttpPolicy};

pub use pocmesh_config::{ConfigError, default_data_dir, invalid, load_toml};

/// Everything a node runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The volunteer's wallet, credited for this node's work (required).
    pub wallet: Option<Address>,
    /// Where the key, the store and the status address live.
    pub data_dir: PathBuf,
    /// How the node joins the mesh.
    pub network: NetSettings,
    /// Heartbeat timing.
    pub heartbeat: HeartbeatSettings,
    /// What the node runs and within which limits.
    pub jobs: JobSettings,
    /// Whose offers the node accepts.
    pub trust: TrustSettings,
    /// The local status endpoint.
    pub status: StatusSettings,
    /// Result delivery retries.
    pub delivery: DeliverySettings,
    /// How receipts are checked against the chain (with `trust.rpc` and `trust.contract`).
    pub receipts: ReceiptSettings,
    /// Limits and refused targets of the HTTP check job types.
    pub http: HttpSettings,
    /// The hash of the consent text the volunteer accepts for this run (`--accept-policy`,
    /// printed by `pocmesh node run --show-consent`); stored in the data directory once
    /// accepted. Without it, the acceptance stored there must be of the current text.
    pub accept_policy: Option<Hash32>,
    /// How long running jobs may finish after Ctrl-C before they are handed back, ms.
    pub shutdown_grace_ms: u64,
}

/// `[heartbeat]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatSettings {
    /// Mean time between heartbeats, ms.
    pub interval_ms: u64,
    /// Random spread of each interval, percent (spreads the mesh's load; DESIGN.md).
    pub jitter_percent: u8,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        HeartbeatSettings {
            interval_ms: 5_000,
            jitter_percent: 20,
        }
    }
}

/// `[jobs]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Jobs run at once; 0 means one per CPU core.
    pub max_jobs: u32,
    /// Job types this node runs.
    pub job_types: Vec<JobType>,
    /// Longest wall-clock time a job may ask for, ms.
    pub max_ms: u64,
    /// Most memory a job may ask for, MiB.
    pub max_mem_mb: u64,
    /// Largest output a job may produce, bytes.
    pub max_output_bytes: u64,
    /// Most fuel (wasm instructions, hash iterations) a job may ask for.
    pub max_fuel: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        let caps = ExecutorCaps::default();
        JobSettings {
            max_jobs: 0,
            job_types: pocmesh_protocol::job_types::default_enabled(),
            max_ms: caps.max_ms,
            max_mem_mb: caps.max_mem_mb,
            max_output_bytes: caps.max_output_bytes,
            max_fuel: caps.max_fuel,
        }
    }
}

impl JobSettings {
    /// The executor caps these settings describe.
    pub fn caps(&self) -> ExecutorCaps {
        ExecutorCaps {
            max_ms: self.max_ms,
            max_mem_mb: self.max_mem_mb,
            max_output_bytes: self.max_output_bytes,
            max_fuel: self.max_fuel,
        }
    }

    /// Job slots: `max_jobs`, or the number of CPU cores when it is 0.
    ///
    /// (HTTP checks mostly wait on the network, but a slot per job keeps the node's load on
    /// sites as predictable as its CPU load.)
    pub fn slots(&self) -> u32 {
        if self.max_jobs > 0 {
            self.max_jobs
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        }
    }
}

/// `[http]`: what the node enforces on every HTTP check (`link_health`, `robots_recheck`),
/// whatever the offer says. Going over the timeout, the redirect cap or a body cap fails the job
/// naming the limit. The defaults are the most allowed (the consent text promises them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// The whole fetch (connect, redirects, body), ms; never above the job's own `max_ms`.
    pub timeout_ms: u64,
    /// Redirects followed at most.
    pub max_redirects: u32,
    /// Most body bytes a `link_health` reads.
    pub max_body_bytes: u64,
    /// Most body bytes a `robots_recheck` reads.
    pub max_robots_bytes: u64,
    /// Domains (with their subdomains) this node never checks: offers for them are declined,
    /// redirects into them fail the job.
    pub deny_domains: Vec<String>,
    /// Devnet only (the network name starts with `devnet-`): let HTTP checks reach loopback
    /// addresses (127.0.0.0/8, ::1), and fetch robots.txt over plain `http://`, so tests can
    /// serve on 127.0.0.1. Every other private range stays refused.
    pub allow_loopback_targets: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        let p = HttpPolicy::default();
        HttpSettings {
            timeout_ms: p.timeout_ms,
            max_redirects: p.max_redirects,
            max_body_bytes: p.max_body_bytes,
            max_robots_bytes: p.max_robots_bytes,
            deny_domains: Vec::new(),
            allow_loopback_targets: false,
        }
    }
}

impl HttpSettings {
    /// The executors' policy; an error names a deny-list entry that is not a domain.
    pub fn policy(&self) -> Result<HttpPolicy, ConfigError> {
        let deny = DenyList::new(&self.deny_domains)
            .map_err(|e| invalid("http.deny_domains", e.to_string()))?;
        Ok(HttpPolicy {
            timeout_ms: self.timeout_ms,
            max_redirects: self.max_redirects,
            max_body_bytes: self.max_body_bytes,
            max_robots_bytes: self.max_robots_bytes,
            rules: TargetRules {
                deny,
                allow_loopback: self.allow_loopback_targets,
            },
        })
    }

    /// The defaults are also the ceilings: the consent text promises the volunteer (and the
    /// sites) no more than 10 s, 5 redirects, 1 MiB and 512 KiB; a node may only go lower.
    fn validate(&self, net: &str) -> Result<(), ConfigError> {
        let most = HttpPolicy::default();
        let checks = [
            ("http.timeout_ms", self.timeout_ms, 1, most.timeout_ms),
            (
                "http.max_redirects",
                u64::from(self.max_redirects),
                0,
                u64::from(most.max_redirects),
            ),
            (
                "http.max_body_bytes",
                self.max_body_bytes,
                1,
                most.max_body_bytes,
            ),
            (
                "http.max_robots_bytes",
                self.max_robots_bytes,
                1,
                most.max_robots_bytes,
            ),
        ];
        for (field, value, low, high) in checks {
            if !(low..=high).contains(&value) {
                return Err(invalid(
                    field,
                    format!("must be between {low} and {high} (the consent text promises no more)"),
                ));
            }
        }
        if self.allow_loopback_targets && !net.starts_with("devnet-") {
            return Err(invalid(
                "http.allow_loopback_targets",
                format!(
                    "loopback targets are for devnets only, and this node runs on {net}; drop \
                     --allow-loopback-targets (or run on a devnet-<chain id> network)"
                ),
            ));
        }
        self.policy().map(|_| ())
    }
}

/// `[trust]`: a node runs jobs only for dispatchers it trusts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustSettings {
    /// Dispatcher addresses trusted outright.
    pub dispatchers: Vec<Address>,
    /// RPC of the chain whose contract decides trust (holders of DISPATCHER_ROLE).
    pub rpc: Option<String>,
    /// The ProofOfCompute contract.
    pub contract: Option<Address>,
    /// How long an on-chain answer is trusted before it is asked again, seconds.
    pub refresh_secs: u64,
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            dispatchers: Vec::new(),
            rpc: None,
            contract: None,
            refresh_secs: 300,
        }
    }
}

/// `[status]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusSettings {
    /// Address of the status and metrics endpoint; port 0 picks a free one (written to
    /// `<data-dir>/status.addr`).
    pub listen: SocketAddr,
}

impl Default for StatusSettings {
    fn default() -> Self {
        StatusSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_STATUS_PORT)),
        }
    }
}

/// The status endpoint's default port.
pub const DEFAULT_STATUS_PORT: u16 = 9187;

/// `[delivery]`: how unacknowledged results are re-sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// First retry delay, ms; doubles per try.
    pub retry_base_ms: u64,
    /// Longest retry delay, ms.
    pub retry_max_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            retry_base_ms: 500,
            retry_max_ms: 60_000,
        }
    }
}

/// `[receipts]`: how the node checks the receipts dispatchers send against the batch roots on
/// chain (through `trust.rpc` and `trust.contract`; without them receipts stay unchecked).
///
/// A receipt that cannot be checked yet (RPC unreachable, batch not visible yet) is checked
/// again after `retry_base_ms`, doubling per check up to `retry_max_ms`. A batch the chain does
/// not know fails the receipt only once *both* `not_recorded_tries` answers said so *and*
/// `not_recorded_grace_ms` have passed since the receipt began waiting: an RPC that lags behind
/// the dispatcher's must not turn a good receipt into a failed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiptSettings {
    /// First delay before a receipt that could not be checked is checked again, ms.
    pub retry_base_ms: u64,
    /// Longest delay between two checks of one receipt, ms.
    pub retry_max_ms: u64,
    /// "Batch not recorded" answers needed before the receipt fails.
    pub not_recorded_tries: u32,
    /// Time since the receipt began waiting before "batch not recorded" fails it, ms.
    pub not_recorded_grace_ms: u64,
}

impl Default for ReceiptSettings {
    fn default() -> Self {
        ReceiptSettings {
            retry_base_ms: 10_000,
            retry_max_ms: 300_000,
            not_recorded_tries: 5,
            not_recorded_grace_ms: 600_000,
        }
    }
}

/// Whether the TOML file at `path` names the network itself (`[network] net = …`), as opposed
/// to leaving it to the default (then a node with an RPC takes it from the chain).
pub fn file_names_network(path: &Path) -> Result<bool, ConfigError> {
    let table = pocmesh_config::load_table(path)?;
    Ok(table.get("network").and_then(|n| n.get("net")).is_some())
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            wallet: None,
            data_dir: default_data_dir("node"),
            network: NetSettings::default(),
            heartbeat: HeartbeatSettings::default(),
            jobs: JobSettings::default(),
            trust: TrustSettings::default(),
            status: StatusSettings::default(),
            delivery: DeliverySettings::default(),
            receipts: ReceiptSettings::default(),
            http: HttpSettings::default(),
            accept_policy: None,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl NodeConfig {
    /// Reads a TOML file over the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_toml(path)
    }

    /// The executors' options these settings describe.
    pub fn executor_options(&self) -> Result<ExecutorOptions, ConfigError> {
        Ok(ExecutorOptions {
            default_fuel: self.jobs.max_fuel,
            http: self.http.policy()?,
        })
    }

    /// Checks every field; the error names the first bad one and how to fix it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Some(wallet) = self.wallet else {
            return Err(invalid(
                "wallet",
                "no wallet address; pass --wallet 0x… (or xdc…) to say who is credited",
            ));
        };
        // A zero wallet poisons every batch that credits it (the contract reverts the whole
        // batch), and the contract's own address holds units nobody can ever use.
        if wallet == Address::ZERO {
            return Err(invalid(
                "wallet",
                format!(
                    "{wallet} can never be credited (the contract refuses the zero address); \
                     pass the address of a wallet you control"
                ),
            ));
        }
        if self.trust.contract == Some(wallet) {
            return Err(invalid(
                "wallet",
                format!(
                    "{wallet} is the ProofOfCompute contract itself (trust.contract, --contract): \
                     units credited to it cannot be used or moved by anyone; pass the address of \
                     a wallet you control"
                ),
            ));
        }
        self.network
            .to_mesh_config()
            .map_err(|e| invalid("network", e))?;
        let hb = &self.heartbeat;
        if !(500..=600_000).contains(&hb.interval_ms) {
            return Err(invalid(
                "heartbeat.interval_ms",
                "must be between 500 and 600000",
            ));
        }
        if hb.jitter_percent > 50 {
            return Err(invalid("heartbeat.jitter_percent", "must be at most 50"));
        }
        if self.jobs.max_jobs > 1024 {
            return Err(invalid("jobs.max_jobs", "must be at most 1024"));
        }
        if self.jobs.job_types.is_empty() {
            return Err(invalid(
                "jobs.job_types",
                format!(
                    "enable at least one job type ({})",
                    pocmesh_protocol::job_types::names()
                ),
            ));
        }
        if self.jobs.job_types.contains(&JobType::Unknown) {
            return Err(invalid(
                "jobs.job_types",
                format!(
                    "job type `unknown` has no executor; use any of {}",
                    pocmesh_protocol::job_types::names()
                ),
            ));
        }
        if self.jobs.max_ms == 0 || self.jobs.max_mem_mb == 0 || self.jobs.max_output_bytes == 0 {
            return Err(invalid(
                "jobs",
                "max_ms, max_mem_mb and max_output_bytes must be above 0",
            ));
        }
        self.http.validate(&self.network.net)?;
        let t = &self.trust;
        if t.rpc.is_some() != t.contract.is_some() {
            return Err(invalid(
                "trust",
                "rpc and contract go together: give both (trust holders of DISPATCHER_ROLE) or neither",
            ));
        }
        if t.dispatchers.is_empty() && t.contract.is_none() {
            return Err(invalid(
                "trust",
                "the node would trust no dispatcher; pass --rpc URL --contract ADDR (trust holders of \
                 DISPATCHER_ROLE on chain) or --trust-dispatcher ADDR",
            ));
        }
        if self.delivery.retry_base_ms == 0
            || self.delivery.retry_max_ms < self.delivery.retry_base_ms
        {
            return Err(invalid(
                "delivery",
                "retry_base_ms must be above 0 and at most retry_max_ms",
            ));
        }
        let r = &self.receipts;
        if r.retry_base_ms == 0 || r.retry_max_ms < r.retry_base_ms {
            return Err(invalid(
                "receipts",
                "retry_base_ms must be above 0 and at most retry_max_ms",
            ));
        }
        if r.not_recorded_tries == 0 {
            return Err(invalid(
                "receipts.not_recorded_tries",
                "must be at least 1 (how many \"batch not recorded\" answers fail a receipt)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_defaults_and_bad_fields_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "wallet = \"xdc5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"\n\
             [jobs]\nmax_jobs = 3\njob_types = [\"hash\"]\n\
             [trust]\ndispatchers = [\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"]\n",
        )
        .expect("write");
        let c = NodeConfig::load(&path).expect("loads");
        assert_eq!(c.jobs.max_jobs, 3);
        assert_eq!(c.jobs.job_types, vec![JobType::Hash]);
        assert_eq!(c.heartbeat.interval_ms, 5_000);
        c.validate().expect("valid");

        std::fs::write(&path, "wallet = \"0x123\"\n").expect("write");
        let e = NodeConfig::load(&path).expect_err("bad address");
        assert!(e.to_string().contains("wallet"), "{e}");
        std::fs::write(&path, "walet = \"0x123\"\n").expect("write");
        let e = NodeConfig::load(&path).expect_err("unknown field");
        assert!(e.to_string().contains("walet"), "{e}");

        let mut c = NodeConfig::default();
        assert!(
            c.validate()
                .expect_err("no wallet")
                .to_string()
                .contains("--wallet")
        );
        c.wallet = Some(Address::from([1u8; 20]));
        assert!(
            c.validate()
                .expect_err("no trust")
                .to_string()
                .contains("trust")
        );
        c.trust.dispatchers.push(Address::from([2u8; 20]));
        c.heartbeat.interval_ms = 10;
        assert!(
            c.validate()
                .expect_err("interval")
                .to_string()
                .contains("heartbeat.interval_ms")
        );
    }

    fn valid_config() -> NodeConfig {
        NodeConfig {
            wallet: Some(Address::from([1u8; 20])),
            trust: TrustSettings {
                rpc: Some("http://127.0.0.1:8545".into()),
                contract: Some(Address::from([3u8; 20])),
                ..TrustSettings::default()
            },
            ..NodeConfig::default()
        }
    }

    #[test]
    fn the_zero_address_is_refused_as_wallet() {
        let mut c = valid_config();
        c.validate().expect("valid");
        c.wallet = Some(Address::ZERO);
        let e = c.validate().expect_err("zero wallet");
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    field: "wallet",
                    ..
                }
            ),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains("0x0000000000000000000000000000000000000000"),
            "{text}"
        );
        assert!(text.contains("zero address"), "{text}");
        assert!(text.contains("wallet you control"), "{text}");
    }

    #[test]
    fn the_contract_is_refused_as_wallet() {
        let mut c = valid_config();
        c.wallet = c.trust.contract;
        let e = c.validate().expect_err("contract as wallet");
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    field: "wallet",
                    ..
                }
            ),
            "{e}"
        );
        let text = e.to_string();
        assert!(text.contains("contract itself"), "{text}");
        assert!(text.contains("wallet you control"), "{text}");
        // Without a contract configured, the same address is an ordinary wallet.
        c.trust.rpc = None;
        c.trust.contract = None;
        c.trust.dispatchers.push(Address::from([2u8; 20]));
        c.validate().expect("no contract: any non-zero wallet");
    }

    #[test]
    fn receipt_retry_settings_are_checked() {
        let mut c = valid_config();
        c.receipts.retry_max_ms = c.receipts.retry_base_ms - 1;
        assert!(
            c.validate()
                .expect_err("max below base")
                .to_string()
                .contains("config: receipts:")
        );
        c.receipts = ReceiptSettings {
            not_recorded_tries: 0,
            ..ReceiptSettings::default()
        };
        assert!(
            c.validate()
                .expect_err("zero tries")
                .to_string()
                .contains("receipts.not_recorded_tries")
        );
    }

    #[test]
    fn http_types_are_runnable_and_the_loopback_flag_is_for_devnets_only() {
        let mut c = valid_config();
        c.jobs.job_types = vec![
            JobType::Hash,
            JobType::Wasm,
            JobType::LinkHealth,
            JobType::RobotsRecheck,
        ];
        c.validate().expect("http check types are allowed");
        c.jobs.job_types.push(JobType::Unknown);
        assert!(
            c.validate()
                .expect_err("unknown")
                .to_string()
                .contains("jobs.job_types")
        );
        c.jobs.job_types.pop();

        c.http.allow_loopback_targets = true;
        c.network.net = "xdc-apothem".into();
        let e = c.validate().expect_err("not a devnet");
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    field: "http.allow_loopback_targets",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("--allow-loopback-targets"), "{e}");
        c.network.net = "devnet-551".into();
        c.validate().expect("devnet");
        let policy = c.http.policy().expect("policy");
        assert!(policy.rules.allow_loopback);

        c.http.deny_domains = vec!["ok.example".into(), "http://bad/".into()];
        let e = c.validate().expect_err("bad deny entry");
        assert!(e.to_string().contains("http.deny_domains"), "{e}");
        assert!(e.to_string().contains("http://bad/"), "{e}");
        c.http.deny_domains.pop();
        c.http.max_redirects = 21;
        assert!(
            c.validate()
                .expect_err("redirects")
                .to_string()
                .contains("http.max_redirects")
        );
        c.http.max_redirects = 0;
        c.http.timeout_ms = 0;
        assert!(
            c.validate()
                .expect_err("timeout")
                .to_string()
                .contains("http.timeout_ms")
        );
    }

    #[test]
    fn a_file_that_names_the_network_is_told_apart_from_one_that_does_not() {
        let dir = tempfile::tempdir().expect("tmp");
        let named = dir.path().join("named.toml");
        std::fs::write(&named, "[network]\nnet = \"devnet-551\"\n").expect("write");
        assert!(file_names_network(&named).expect("read"));
        let unnamed = dir.path().join("unnamed.toml");
        std::fs::write(
            &unnamed,
            "[network]\nmdns = false\n[http]\ndeny_domains = [\"x.org\"]\n",
        )
        .expect("write");
        assert!(!file_names_network(&unnamed).expect("read"));
        let c = NodeConfig::load(&unnamed).expect("loads");
        assert_eq!(c.http.deny_domains, vec!["x.org".to_string()]);
        assert_eq!(c.http.timeout_ms, 10_000);
    }
}
