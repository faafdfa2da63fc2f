//! # pocmesh-dispatcher
//!
//! Where compute tasks come in and proofs go out (`pocmesh dispatcher run`). The dispatcher
//! learns the mesh from verified heartbeats ([`registry`]), assigns each job to nodes directly
//! over libp2p ([`scheduler`] picks, `assign` offers and leases), verifies what comes back
//! ([`policy`]: the units rule, adaptive audits a node cannot predict, quorums of independent
//! operators, trust that survives restarts), and records verified work on the ProofOfCompute
//! contract in batches through a [`submitter::ProofSubmitter`], quarantining any credit the
//! contract could never take.
//!
//! One task, the engine, owns all state; it commits every burst of changes to the sled
//! [`store`] before it acknowledges anything, so no accepted job is lost and a verified unit is
//! credited once (batch ids are content-derived; the contract refuses repeats).
//!
//! - [`config::DispatcherConfig`], [`daemon::run`]: configuration and start-up.
//! - [`lifecycle`]: the job and attempt state machines.
//! - [`api`]: the HTTP API and its JSON types; [`api::EngineHandle`] for in-process callers.
//! - [`metrics`]: Prometheus metrics.

pub mod allowlist;
pub mod api;
mod assign;
mod batcher;
pub mod clock;
pub mod community;
pub mod config;
pub mod daemon;
mod engine;
#[cfg(test)]
mod engine_tests;
pub mod health;
pub mod job_index;
pub mod lifecycle;
pub mod metrics;
mod net;
pub mod policy;
pub mod registry;
pub mod scheduler;
pub mod store;
pub mod submitter;
mod verify;
pub mod verify_sim;

pub use config::DispatcherConfig;
pub use daemon::{DispatcherError, Running, run, run_with, start};
pub use engine::{StatusView, SubmitError};
