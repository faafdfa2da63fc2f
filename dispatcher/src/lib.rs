//! # pocmesh-dispatcher
//!
//! The dispatcher.
pub mod registry;
pub mod scheduler;
