//! # pocmesh-node
//!
//! The volunteer daemon.
pub mod executor;
