//! # pocmesh-node
//!
//! The volunteer daemon (`pocmesh node run`): it joins the mesh with the node's secp256k1 key,
//! publishes signed heartbeats with the machine's capabilities, accepts job offers from trusted
//! dispatchers only, runs them in sandboxed executors with hard limits, and delivers signed
//! results until the dispatcher acknowledges them — across restarts.
//!
//! - [`config::NodeConfig`]: the one typed configuration (file + environment + flags).
//! - [`daemon::run`]: the daemon; everything else is its parts.
//! - The executors (`hash`, `wasm`, the HTTP checks) live in `pocmesh-executor`, shared with
//!   the dispatcher's re-execution; this crate configures and drives them.
//! - [`consent`]: the consent text, its acceptance and the opted-out state (in the data dir);
//!   [`control`]: the local opt-out/opt-in API (loopback only) and its client.
//! - [`network_name`]: the network name read from the chain (`--rpc` without `--net`).
//! - [`store::NodeStore`]: sled trees for the sequence, jobs, the result outbox and receipts.
//! - [`receipts`]: receipts are checked against the batch roots on chain before their units
//!   count ([`receipts::ReceiptChecker`], [`receipts::ReceiptState`]).
//! - [`intake::evaluate`]: the pure accept/decline decision; [`trust::TrustPolicy`]: whose
//!   offers count (listed addresses, holders of DISPATCHER_ROLE on chain).
//! - [`status`]: Prometheus metrics and the local `/status` + `/metrics` endpoint; `activity`:
//!   the once-a-minute activity line in the log.
//!
//! Not here: the libp2p swarm (`pocmesh-mesh`), wire types and the consent text
//! (`pocmesh-protocol`), the executors (`pocmesh-executor`).

mod activity;
pub mod caps;
pub mod config;
pub mod consent;
pub mod control;
pub mod daemon;
mod delivery;
mod heartbeat;
pub mod intake;
mod jobs;
pub mod network_name;
mod participation;
pub mod receipts;
pub mod status;
pub mod store;
pub mod trust;

pub use config::NodeConfig;
pub use daemon::{NodeError, run};
pub use delivery::backoff;
pub use heartbeat::next_delay;
