//! Integration tests of the protocol crate: the wire format, signatures checked against an
//! independent Ethereum implementation (ethers), tampering, replay, clocks and size caps.

mod ethereum_compat;
mod strategies;
mod validation;
mod wire_format;
