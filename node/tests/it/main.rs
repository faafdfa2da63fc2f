//! Integration tests of the node crate (one binary, a module per area).

mod receipts;
mod sandbox;
