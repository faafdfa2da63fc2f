//! Rust bindings generated from the committed ABI, and the committed creation bytecode.
#![allow(missing_docs, unreachable_pub, clippy::all)]

ethers::contract::abigen!(
    ProofOfComputeContract,
    "../contracts/artifacts/ProofOfCompute.abi.json"
);
