//! # pocmesh-node
//!
//! The volunteer daemon (`pocmesh node run`): it joins the mesh with the node's secp256k1 key,
//! publishes signed heartbeats with the machine's capabilities, accepts job offers from trusted
//! dispatchers only, runs them in sandboxed executors with hard limits, and delivers signed
//! results until the dispatcher acknowledges them — across restarts.
//!
//! - [`config::NodeConfig`]: the one typed configuration (file + environment + flags).
//! - [`daemon::run`]: the daemon; everything else is its parts.
//! - [`executor`]: `hash` and `wasm` behind one [`executor::Executor`] trait.
//! - [`store::NodeStore`]: sled trees for the sequence, jobs, the result outbox and receipts.
//! - [`receipts`]: receipts are checked against the batch roots on chain before their units
//!   count ([`receipts::ReceiptChecker`], [`receipts::ReceiptState`]).
//! - [`intake::evaluate`]: the pure accept/decline decision; [`trust::TrustPolicy`]: whose
//!   offers count (listed addresses, holders of DISPATCHER_ROLE on chain).
//! - [`status`]: Prometheus metrics and the local `/status` + `/metrics` endpoint.
//!
//! Not here: the libp2p swarm (`pocmesh-mesh`), wire types (`pocmesh-protocol`).

pub mod caps;
pub mod config;
pub mod consent;
pub mod daemon;
mod delivery;
pub mod executor;
mod heartbeat;
pub mod intake;
mod jobs;
pub mod receipts;
pub mod status;
pub mod store;
pub mod trust;

pub use config::NodeConfig;
pub use daemon::{NodeError, run};
pub use delivery::backoff;
pub use heartbeat::next_delay;
