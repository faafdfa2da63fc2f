//! Integration tests of the node crate (one binary, a module per area).

mod http;
mod network_name;
mod receipts;
mod sandbox;
